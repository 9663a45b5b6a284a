// Runs plans on a device's backend. The Metal backend joins here on macOS.
#include "qmetal/ops.h"
#include "qmetal/error.h"
#include "sim/library.h"

namespace qmetal {

void execute(const Device& device, const std::vector<DispatchPlan>& plans) {
  for (const DispatchPlan& plan : plans) {
    switch (device.backend()) {
      case Backend::sim: sim::execute(plan); break;
      case Backend::metal: runtime_error("the Metal backend is not part of this build");
    }
  }
}

}  // namespace qmetal
