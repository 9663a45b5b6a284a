// MoE index lists that only the GPU has seen (routing ids written by an
// earlier op on the same stream): the host never reads them, so these
// kernels turn them into the row lists the gather kernels take, with every
// id clamped into range, and report the ids that were out of range.
//
// gather_rows: the row list as given (GGML mul_mv_id): one thread per row.
// gather_sort: the rows sorted by expert, stably (mul_mm_id, qmm_sorted):
//   one thread per expert, which counts the rows of smaller experts and
//   writes its own rows in order. Each thread reads the id list twice, which
//   costs far less than the tiled matmul the sort is for (it runs only when
//   there are at least 16 rows per expert, planning.h).
// gather_check: after the gather kernel; an output matrix whose x matrix
//   (lhs) or expert (rhs) was out of range was computed from clamped ids: it
//   becomes NaN, and a flag bit tells the host which argument was wrong
//   (reported at Stream.synchronize()). One thread per output matrix.
#include <metal_stdlib>

#include "qmetal_args.h"

using namespace metal;
using namespace qmetal_args;

// Ids as given (uint32, or int32 whose negatives read as huge) clamped into
// [0, count); the host guarantees count >= 1.
inline uint clamped(uint id, uint count) { return min(id, count - 1); }

[[kernel]] void gather_rows(constant GatherRowsArgs& args [[buffer(kArgsBufferIndex)]],
                            const device uint32_t* lhs [[buffer(kGatherRowsLhs)]],
                            const device uint32_t* rhs [[buffer(kGatherRowsRhs)]],
                            device uint32_t* row_lhs [[buffer(kGatherRowsLhsOut)]],
                            device uint32_t* row_rhs [[buffer(kGatherRowsRhsOut)]],
                            uint row [[thread_position_in_grid]]) {
  if (row >= args.matrices * args.rows_per_matrix) return;
  const uint z = row / args.rows_per_matrix, m = row % args.rows_per_matrix;
  row_lhs[row] = clamped(lhs[z], args.lhs_count) * args.rows_per_matrix + m;
  row_rhs[row] = clamped(rhs[z], args.rhs_count);
}

[[kernel]] void gather_sort(constant GatherRowsArgs& args [[buffer(kArgsBufferIndex)]],
                            const device uint32_t* lhs [[buffer(kGatherRowsLhs)]],
                            const device uint32_t* rhs [[buffer(kGatherRowsRhs)]],
                            device uint32_t* row_lhs [[buffer(kGatherRowsLhsOut)]],
                            device uint32_t* row_rhs [[buffer(kGatherRowsRhsOut)]],
                            device uint32_t* row_order [[buffer(kGatherRowsOrder)]],
                            uint expert [[thread_position_in_grid]]) {
  if (expert >= args.rhs_count) return;
  uint position = 0;  // matrices of smaller experts
  for (uint z = 0; z < args.matrices; ++z) position += clamped(rhs[z], args.rhs_count) < expert ? 1u : 0u;
  const uint R = args.rows_per_matrix;
  for (uint z = 0; z < args.matrices; ++z) {
    if (clamped(rhs[z], args.rhs_count) != expert) continue;
    const uint x_row = clamped(lhs[z], args.lhs_count) * R;
    for (uint m = 0; m < R; ++m) {
      const uint sorted_row = position * R + m;
      row_lhs[sorted_row] = x_row + m;
      row_rhs[sorted_row] = expert;
      row_order[sorted_row] = z * R + m;
    }
    ++position;
  }
}

template <typename T>
[[kernel]] void gather_check(constant GatherCheckArgs& args [[buffer(kArgsBufferIndex)]],
                             const device uint32_t* lhs [[buffer(kGatherCheckLhs)]],
                             const device uint32_t* rhs [[buffer(kGatherCheckRhs)]],
                             device T* y [[buffer(kGatherCheckY)]],
                             device atomic_uint* flags [[buffer(kGatherCheckFlags)]],
                             uint z [[thread_position_in_grid]]) {
  if (z >= args.matrices) return;
  const uint bad = (lhs[z] >= args.lhs_count ? kGatherBadLhs : 0u) | (rhs[z] >= args.rhs_count ? kGatherBadRhs : 0u);
  if (bad == 0) return;
  atomic_fetch_or_explicit(flags, bad, memory_order_relaxed);
  device T* matrix = y + ulong(z) * args.matrix_size;
  for (uint i = 0; i < args.matrix_size; ++i) matrix[i] = T(NAN);
}

#define QMETAL_GATHER_CHECK(type, type_name) \
  template [[host_name("gather_check_" #type_name)]] [[kernel]] decltype(gather_check<type>) gather_check<type>;
QMETAL_GATHER_CHECK(float, float32)
QMETAL_GATHER_CHECK(half, float16)
QMETAL_GATHER_CHECK(bfloat, bfloat16)
