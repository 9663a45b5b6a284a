// Plans of the kernels that handle MoE ids read on the device (shaders/gather.metal).
#include "qmetal/gather.h"

#include <algorithm>

#include "planning.h"
#include "qmetal_args.h"

namespace qmetal {

using planning::ceil_div;
using planning::checked_u32;

namespace {
constexpr uint32_t kGatherThreads = 64;  // small kernels: any width fills a GPU's few rows of ids
}  // namespace

GatherRows plan_gather_rows(const Device& device, const BufferPtr& lhs, const BufferPtr& rhs,
                            uint32_t rows_per_matrix, uint32_t lhs_count, uint32_t rhs_count, bool sort) {
  if (lhs_count == 0 || rhs_count == 0) {
    value_error("lhs_count and rhs_count: the ids are clamped into range, which needs at least 1 of each, got ",
                lhs_count, " and ", rhs_count);
  }
  const uint32_t matrices = checked_u32(lhs->size(), "the number of output matrices");
  const int64_t rows = int64_t(matrices) * rows_per_matrix;
  const qmetal_args::GatherRowsArgs args{matrices, rows_per_matrix, lhs_count, rhs_count};
  GatherRows out;
  out.row_lhs = Buffer::allocate(DType::u32, {rows});
  out.row_rhs = Buffer::allocate(DType::u32, {rows});
  DispatchPlan& plan = out.plan;
  plan.set_args(args);
  plan.bind(qmetal_args::kGatherRowsLhs, lhs, Access::read);
  plan.bind(qmetal_args::kGatherRowsRhs, rhs, Access::read);
  plan.bind(qmetal_args::kGatherRowsLhsOut, out.row_lhs, Access::write);
  plan.bind(qmetal_args::kGatherRowsRhsOut, out.row_rhs, Access::write);
  if (sort) {
    out.row_order = Buffer::allocate(DType::u32, {rows});
    plan.bind(qmetal_args::kGatherRowsOrder, out.row_order, Access::write);
    plan.kernel = "gather_sort";
    plan.grid = {ceil_div(rhs_count, kGatherThreads), 1, 1};  // one thread per expert
  } else {
    plan.kernel = "gather_rows";
    plan.grid = {std::max<uint32_t>(1, ceil_div(checked_u32(rows, "the rows of the gather"), kGatherThreads)), 1, 1};
  }
  plan.threadgroup = {kGatherThreads, 1, 1};
  plan.validate(device.capabilities());
  return out;
}

DispatchPlan plan_gather_check(const Device& device, const BufferPtr& lhs, const BufferPtr& rhs, const BufferPtr& y,
                               const BufferPtr& flags, uint32_t lhs_count, uint32_t rhs_count) {
  const int64_t matrices = lhs->size();
  qmetal_args::GatherCheckArgs args{checked_u32(matrices, "the number of output matrices"),
                                    checked_u32(matrices == 0 ? 0 : y->size() / matrices, "an output matrix's size"),
                                    lhs_count, rhs_count};
  DispatchPlan plan;
  plan.kernel = "gather_check_" + std::string(dtype_name(y->dtype()));
  plan.set_args(args);
  plan.bind(qmetal_args::kGatherCheckLhs, lhs, Access::read);
  plan.bind(qmetal_args::kGatherCheckRhs, rhs, Access::read);
  plan.bind(qmetal_args::kGatherCheckY, y, Access::write);
  plan.bind(qmetal_args::kGatherCheckFlags, flags, Access::write);
  plan.grid = {std::max<uint32_t>(1, ceil_div(matrices, kGatherThreads)), 1, 1};
  plan.threadgroup = {kGatherThreads, 1, 1};
  plan.validate(device.capabilities());
  return plan;
}

}  // namespace qmetal
