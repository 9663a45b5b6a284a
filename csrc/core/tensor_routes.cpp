#include "tensor_routes.h"

#include "planning.h"
#include "qmetal/error.h"

namespace qmetal::tensor_routes {

bool preferred(const Device& device, DType activations) {
  return device.capabilities().tensor_ops && (activations == DType::f16 || activations == DType::bf16);
}

void check_forced(const Device& device, const char* route) {
  if (device.capabilities().tensor_ops || device.backend() == Backend::sim) return;
  value_error("route: '", route, "' needs Metal 4 tensor operations, which ", device.name(),
              " does not run (python -m qmetal info says why)");
}

void set_geometry(DispatchPlan& plan, uint32_t M, uint32_t N, uint32_t matrices) {
  plan.grid = {planning::ceil_div(N, kRowsW), planning::ceil_div(M, kRowsX), matrices};
  plan.threadgroup = {kThreads, 1, 1};
}

}  // namespace qmetal::tensor_routes
