// Runs plans on a device's backend; the one place that knows which backends
// this build has.
#include <mutex>

#include "qmetal/error.h"
#include "qmetal/ops.h"
#include "sim/library.h"
#ifdef QMETAL_HAVE_METAL
#include "metal/metal.h"
#endif

namespace qmetal {

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QMETAL_HAVE_METAL
    register_backend(Backend::metal, BackendFactory{&metal::available, &metal::create_device});
#endif
  });
}

void execute(const Device& device, const std::vector<DispatchPlan>& plans) {
  switch (device.backend()) {
    case Backend::sim:
      for (const DispatchPlan& plan : plans) sim::execute(plan);
      return;
    case Backend::metal:
#ifdef QMETAL_HAVE_METAL
      metal::execute(device, plans);
      return;
#else
      runtime_error("the Metal backend is not part of this build");
#endif
  }
}

}  // namespace qmetal
