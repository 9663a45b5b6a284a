// The public C++ API of qmetal.
#pragma once

#include "qmetal/affine.h"
#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal/dtype.h"
#include "qmetal/dwq.h"
#include "qmetal/error.h"
#include "qmetal/ggml.h"
#include "qmetal/plan.h"

namespace qmetal {
// The package version, set by the build from pyproject.toml.
const char* version();
}  // namespace qmetal
