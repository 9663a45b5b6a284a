// MoE routing ids that only the GPU has seen (written by an earlier op on
// the same stream): the plans that make them into the gather kernels' row
// lists and check them afterwards (shaders/gather.metal). Ids given as
// host arrays are validated and sorted on the host instead (ops/common.h).
#pragma once

#include <cstdint>

#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

// lhs and rhs: one id per output matrix (uint32 or int32, read as uint32),
// of x's matrices (lhs_count of them) and of the experts (rhs_count); each
// matrix has rows_per_matrix rows of x. The plans write row_lhs (x row),
// row_rhs (expert) per row, ids clamped into range; with `sort` the rows are
// stably sorted by expert and row_order holds each one's output row.
struct GatherRows {
  BufferPtr row_lhs, row_rhs, row_order;  // row_order only when sorted
  DispatchPlan plan;
};
GatherRows plan_gather_rows(const Device& device, const BufferPtr& lhs, const BufferPtr& rhs,
                            uint32_t rows_per_matrix, uint32_t lhs_count, uint32_t rhs_count, bool sort);

// After a gather kernel that read lhs/rhs on the device: NaN for each output
// matrix of y whose lhs is not below lhs_count or rhs not below rhs_count,
// and the matching bit (qmetal_args::kGatherBadLhs / kGatherBadRhs) set in
// `flags` (one uint32).
DispatchPlan plan_gather_check(const Device& device, const BufferPtr& lhs, const BufferPtr& rhs, const BufferPtr& y,
                               const BufferPtr& flags, uint32_t lhs_count, uint32_t rhs_count);

}  // namespace qmetal
