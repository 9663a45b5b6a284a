// The simdgroup-matrix core shared by the tiled kernels: tiles of x and of
// dequantized w staged in threadgroup memory as float, multiplied in 8x8
// simdgroup matrices with float accumulation.
#pragma once

#include <metal_stdlib>

#include "qmetal_args.h"

using namespace metal;

namespace tile {

constant constexpr int kFrag = 8;  // simdgroup_matrix side
constant constexpr int kK = int(qmetal_args::kTileK);  // K per step of every tiled kernel

// The loops over fragments are unrolled (`#pragma unroll`, which Apple's
// clang-based compiler and nvcc both take) so that the fragments stay in
// registers: the CUDA translation of mul_mm's 2 x 4 block otherwise kept
// them in local memory (a stack frame; ptxas -v), the loads of which went
// through the L1 pipe that bounds the tiles (ncu on the H200).
//
// acc (a simdgroup's frags_m x frags_n block of 8x8 results, at rows frag_m
// and columns frag_n of the output tile) += xs * ws over one K step. xs
// holds x rows by K; ws holds w rows by K (`w_rows_by_k`, weights [N, K]) or
// K rows by N. Both with row stride `stride` floats.
template <bool w_rows_by_k, int frags_m, int frags_n>
inline void multiply(thread simdgroup_float8x8 (&acc)[frags_m][frags_n], const threadgroup float* xs,
                     const threadgroup float* ws, uint stride, uint frag_m, uint frag_n) {
  for (int kk = 0; kk < kK; kk += kFrag) {
    simdgroup_float8x8 a[frags_m], b[frags_n];
#pragma unroll
    for (int i = 0; i < frags_m; ++i) simdgroup_load(a[i], xs, stride, ulong2(kk, frag_m + i * kFrag));
#pragma unroll
    for (int j = 0; j < frags_n; ++j) {
      if (w_rows_by_k) {
        simdgroup_load(b[j], ws, stride, ulong2(kk, frag_n + j * kFrag), true);
      } else {
        simdgroup_load(b[j], ws, stride, ulong2(frag_n + j * kFrag, kk));
      }
    }
#pragma unroll
    for (int i = 0; i < frags_m; ++i)
#pragma unroll
      for (int j = 0; j < frags_n; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

// n consecutive values from device memory as floats, 4 at a time (`from`
// lies on 4 values: the callers' runs start on 4 and rows on 32).
template <int n, typename T>
inline void load4(const device T* from, thread float* out) {
  static_assert(n % 4 == 0, "whole vectors of 4");
  const device vec<T, 4>* quads = reinterpret_cast<const device vec<T, 4>*>(from);
  for (int q = 0; q < n / 4; ++q) {
    const float4 values = float4(quads[q]);
    for (int i = 0; i < 4; ++i) out[4 * q + i] = values[i];
  }
}

// n staged values into threadgroup memory as float4s. `to` must lie on 16
// bytes: the tiles' rows are whole float4s and runs start on 4 values (the
// callers' offsets are visibly multiples of 4; the CUDA translation stored
// a run of 16 as 16 scalar stores where nvcc could not see it, bench/README.md).
template <int n>
inline void store4(thread const float* values, threadgroup float* to) {
  static_assert(n % 4 == 0, "whole float4s");
  threadgroup float4* quads = reinterpret_cast<threadgroup float4*>(to);
  for (int q = 0; q < n / 4; ++q) quads[q] = float4(values[4 * q], values[4 * q + 1], values[4 * q + 2], values[4 * q + 3]);
}

template <int frags_m, int frags_n>
inline void clear(thread simdgroup_float8x8 (&acc)[frags_m][frags_n]) {
#pragma unroll
  for (int i = 0; i < frags_m; ++i)
#pragma unroll
    for (int j = 0; j < frags_n; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
}

// Writes the accumulators into `out` (a free staging tile of row stride
// `stride`), so that edge tiles can store only what is in range.
template <int frags_m, int frags_n>
inline void stage(thread simdgroup_float8x8 (&acc)[frags_m][frags_n], threadgroup float* out, uint stride,
                  uint frag_m, uint frag_n) {
#pragma unroll
  for (int i = 0; i < frags_m; ++i)
#pragma unroll
    for (int j = 0; j < frags_n; ++j)
      simdgroup_store(acc[i][j], out, stride, ulong2(frag_n + j * kFrag, frag_m + i * kFrag));
  threadgroup_barrier(mem_flags::mem_threadgroup);
}

}  // namespace tile
