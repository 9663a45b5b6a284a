// The ops, and running plans on a device (library qmetal_ops, which links
// the backends).
#pragma once

#include <vector>

#include "qmetal/affine.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

// Runs plans on the device's backend, in order.
void execute(const Device& device, const std::vector<DispatchPlan>& plans);

}  // namespace qmetal
