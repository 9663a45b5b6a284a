// The Metal 4 tensor-op prefill routes (shaders/metal4/*): when the planners
// take them, and their geometry. Shared by the affine and GGML planners.
#pragma once

#include <cstdint>
#include <string>

#include "qmetal/device.h"
#include "qmetal/dtype.h"
#include "qmetal/plan.h"

namespace qmetal::tensor_routes {

// The tile of shaders/metal4/tensor_tile.h: 64 activation rows x 32 weight
// rows per threadgroup of 4 simdgroups.
inline constexpr uint32_t kRowsX = 64;
inline constexpr uint32_t kRowsW = 32;
inline constexpr uint32_t kThreads = 128;

// The automatic choice: a device whose GPU runs Metal 4 tensor operations
// (the Metal backend's probe decided it, or a simulator device made with
// tensor_ops) and half or bfloat16 activations. float32 activations keep
// the simdgroup-matrix kernels: the tensor op would run them with relaxed
// precision (operands truncated to 10 mantissa bits on M5), a precision
// change qmetal does not make silently; route= forces it.
bool preferred(const Device& device, DType activations);

// A forced tensor route: fine on a device with the capability and on the
// simulator (whose library always has the kernels); elsewhere a ValueError
// naming the route.
void check_forced(const Device& device, const char* route);

// Grid and threadgroup of a tensor-op tile kernel over an M x N output
// (times `matrices`).
void set_geometry(DispatchPlan& plan, uint32_t M, uint32_t N, uint32_t matrices);

}  // namespace qmetal::tensor_routes
