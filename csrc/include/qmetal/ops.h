// The ops, and running plans on a device (library qmetal_ops, which links
// the backends).
#pragma once

#include <vector>

#include "qmetal/affine.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

// Registers the backends compiled into this build (Metal on macOS) with
// the device registry. Call once before asking for devices; ops call it too.
void initialize();

// Runs plans on the device's backend, in order, and waits for them.
void execute(const Device& device, const std::vector<DispatchPlan>& plans);

}  // namespace qmetal
