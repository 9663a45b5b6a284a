// The Metal 4 tensor-op core of the prefill kernels (affine_qmm_tensor.metal,
// ggml_mm_tensor.metal): a 64 x 32 output tile per threadgroup of 4
// simdgroups, x rows and dequantized w rows staged in threadgroup memory in
// the activation type, multiplied by mpp::tensor_ops::matmul2d into a
// cooperative float destination, K steps of 32. Built only with
// -std=metal4.0 (a separate library, so older SDKs build the rest); on the
// GPU the op runs on M5-class matrix hardware. Facts and sources:
// ../shared/design/METAL4_TENSOR_OPS.md.
#pragma once

#include <metal_stdlib>
#include <metal_tensor>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>

using namespace metal;

namespace tensor_tile {

constant constexpr int kRowsX = 64;  // activation rows per tile: the op's m (a multiple of 16)
constant constexpr int kRowsW = 32;  // weight rows per tile: the op's n
constant constexpr int kK = 32;      // K per step: a static K (a multiple of 16; K is a multiple of 32)
constant constexpr int kSimdgroups = 4;
constant constexpr int kThreads = kSimdgroups * 32;
constant constexpr int kElementsX = kRowsX * kK;  // staged tile sizes, in elements
constant constexpr int kElementsW = kRowsW * kK;

// float activations run with relaxed precision (operands truncated to 10
// mantissa bits on M5, as MLX's default TF32 and llama.cpp's tensor
// mul_mm); half and bfloat are exact products either way.
template <typename T>
struct precision {
  static constant constexpr bool relaxed = is_same<T, float>::value;
};

// C[x row][w row] += sum_k xs[x row][k] * ws[w row][k]: the weights are
// stored N x K, hence transpose_right.
template <typename T>
using Op = mpp::tensor_ops::matmul2d<
    mpp::tensor_ops::matmul2d_descriptor(kRowsX, kRowsW, kK, false, true, precision<T>::relaxed,
                                         mpp::tensor_ops::matmul2d_descriptor::mode::multiply_accumulate),
    execution_simdgroups<kSimdgroups>>;

// Views of the staged tiles: extents innermost first, (K, rows).
template <typename T>
using TileView = tensor<threadgroup T, dextents<int32_t, 2>, tensor_inline>;

template <typename T>
inline TileView<T> x_view(threadgroup T* xs) {
  return TileView<T>(xs, dextents<int32_t, 2>(kK, kRowsX));
}

template <typename T>
inline TileView<T> w_view(threadgroup T* ws) {
  return TileView<T>(ws, dextents<int32_t, 2>(kK, kRowsW));
}

}  // namespace tensor_tile
