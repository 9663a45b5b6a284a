// The probe the Metal backend runs once at device creation before it routes
// anything to the tensor-op kernels (csrc/metal/device.mm): a 16 x 16 x 16
// matmul2d of small exact values over 4 simdgroups, as the prefill kernels
// run it. If this library does not load, its pipeline does not build or the
// result is wrong (an OS whose MetalPerformancePrimitives cannot compile or
// miscompiles the op), qmetal falls back to the simdgroup-matrix kernels.
#include <metal_stdlib>
#include <metal_tensor>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>

using namespace metal;
using namespace mpp::tensor_ops;

constant constexpr int kProbeSide = 16;

// C = A B, each kProbeSide x kProbeSide and row-major.
kernel void qmetal_tensor_probe(device half* A [[buffer(0)]], device half* B [[buffer(1)]],
                                device float* C [[buffer(2)]]) {
  auto tA = tensor(A, dextents<int32_t, 2>(kProbeSide, kProbeSide));
  auto tB = tensor(B, dextents<int32_t, 2>(kProbeSide, kProbeSide));
  auto tC = tensor(C, dextents<int32_t, 2>(kProbeSide, kProbeSide));
  matmul2d<matmul2d_descriptor(kProbeSide, kProbeSide, dynamic_extent), execution_simdgroups<4>> op;
  op.run(tA, tB, tC);
}
