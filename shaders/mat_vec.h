// What the mat-vec kernels of both families (affine qmv, GGML mul_mv) share:
// how a threadgroup's simdgroups divide rows and K, and how their sums reach y.
//
// A threadgroup has `row_groups` simdgroups on different rows of w, times
// `slices` (1 to kMatVecMaxSlices, chosen by the host from the grid and the
// GPU's core count: planning::mat_vec_slices) that split each row's K. A
// lane walks the steps slice * 32 + lane, + 32 * slices, ... of its rows, so
// with few rows the GPU still has enough simdgroups in flight, and each
// walks a shorter K. The slices' sums meet in threadgroup memory, which the
// kernel declares (kSliceSums floats) and passes down.
#pragma once

#include <metal_stdlib>

#include "qmetal_args.h"

using namespace metal;
using namespace qmetal_args;

namespace mat_vec {

// Floats of threadgroup memory for the slices' sums of a kernel with
// `row_groups` row simdgroups, `rows` rows of w each and `x_rows` activation rows.
template <int row_groups, int rows, int x_rows>
struct SliceSums {
  static constant constexpr int floats = int(kMatVecMaxSlices) * row_groups * rows * x_rows;
};

struct Slicing {
  uint row_group;  // which of the threadgroup's row simdgroups
  uint slice;      // which part of K; slice >= slices: an idle simdgroup
  uint slices;
};

// Simdgroups past whole slices, or past kMatVecMaxSlices of them (a plan
// with another threadgroup size than the host's), are idle: they write
// nothing, so no plan can make slices race or overrun slice_sums.
inline Slicing slicing(uint simd_group, uint simdgroups, uint row_groups) {
  return {simd_group % row_groups, simd_group / row_groups, clamp(simdgroups / row_groups, 1u, kMatVecMaxSlices)};
}

// y[m0 + m][n0 + r] = the sum over the simdgroup's lanes and the slices of
// acc[m][r], for the rows in range (m0 + m < M, n0 + r < N). Every thread
// of the threadgroup calls it (a barrier when there are slices).
template <int row_groups, int rows, int x_rows, typename O>
inline void store_sums(thread const float (&acc)[x_rows][rows], Slicing s, uint lane, uint M, uint N, uint m0,
                       uint n0, device O* y, threadgroup float* slice_sums) {
  const bool idle = s.slice >= s.slices;
  if (s.slices == 1) {
    if (idle) return;
    for (int m = 0; m < x_rows; ++m) {
      for (int r = 0; r < rows; ++r) {
        const float total = simd_sum(acc[m][r]);
        if (lane == 0 && m0 + m < M && n0 + r < N) y[ulong(m0 + m) * N + n0 + r] = O(total);
      }
    }
    return;
  }
  constexpr uint per_simdgroup = x_rows * rows;
  static_assert(per_simdgroup <= kSimdWidth, "one lane adds up each sum");
  threadgroup float* mine = slice_sums + (min(s.slice, s.slices - 1) * row_groups + s.row_group) * per_simdgroup;
  for (int m = 0; m < x_rows; ++m) {
    for (int r = 0; r < rows; ++r) {
      const float total = simd_sum(acc[m][r]);
      if (lane == 0 && !idle) mine[m * rows + r] = total;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  // The first slice's lanes add the slices up, one sum each.
  if (s.slice != 0 || lane >= per_simdgroup) return;
  const uint m = lane / rows, r = lane % rows;
  float total = 0.0f;
  for (uint slice = 0; slice < s.slices; ++slice) total += slice_sums[(slice * row_groups + s.row_group) * per_simdgroup + lane];
  if (m0 + m < M && n0 + r < N) y[ulong(m0 + m) * N + n0 + r] = O(total);
}

}  // namespace mat_vec
