// The affine ops: validate, plan, run.
#include <algorithm>
#include <cstring>

#include "qmetal/error.h"
#include "qmetal/ops.h"
#include "core/planning.h"
#include "ops/common.h"

namespace qmetal {

using namespace ops_detail;

namespace {

// x feeds the kernels in the weight's dtype (Python casts as MLX promotes).
void check_activations(const BufferPtr& x, const QuantizedWeight& w) {
  if (!x) value_error("x is required");
  check_float_activations(*x);
  if (x->dtype() != w.dtype()) {
    type_error("x: expected ", dtype_name(w.dtype()), " (the dtype of the weight's scales), got ", dtype_name(x->dtype()));
  }
}

}  // namespace

namespace detail {
std::vector<DispatchPlan> plan_affine_quantize(const Device& device, const BufferPtr& dense, const QuantizedWeight& w,
                                               bool quantize);
void check_affine_quantize_input(const Buffer& w, int bits, int group_size);
}  // namespace detail

QuantizedWeight affine_quantize(const Device& device, const BufferPtr& w, int bits, int group_size) {
  if (!w) value_error("w is required");
  detail::check_affine_quantize_input(*w, bits, group_size);
  Shape packed_shape = w->shape();
  packed_shape.back() = packed_shape.back() * bits / 32;
  Shape groups = w->shape();
  groups.back() /= group_size;
  QuantizedWeight q{Buffer::allocate(DType::u32, packed_shape), Buffer::allocate(w->dtype(), groups),
                    Buffer::allocate(w->dtype(), groups), bits, group_size};
  execute(device, detail::plan_affine_quantize(device, w, q, true));
  return q;
}

BufferPtr affine_dequantize(const Device& device, const QuantizedWeight& w) {
  auto dense = Buffer::allocate(w.dtype(), w.shape());
  execute(device, detail::plan_affine_quantize(device, dense, w, false));
  return dense;
}

BufferPtr affine_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w, bool transpose,
                        const BufferPtr& out, AffineRoute route, Stream* stream) {
  check_activations(x, w);
  const BufferPtr y = output_buffer(out, x->dtype(), affine_matmul_shape(x->shape(), w, transpose),
                                    {input_range("x", x), input_range("w's packed codes", w.packed),
                                     input_range("w's scales", w.scales), input_range("w's biases", w.biases)});
  const std::vector<DispatchPlan> plans = plan_affine_matmul(device, x, w, transpose, y, route);
  if (plans.empty()) std::memset(y->data(), 0, y->nbytes());  // nothing to sum (K == 0) or nothing to write
  run(device, plans, stream);
  return y;
}

BufferPtr affine_gather_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                               const BufferPtr& lhs_indices, const BufferPtr& rhs_indices, bool transpose,
                               bool sorted_indices, const BufferPtr& out, AffineRoute route, Stream* stream) {
  check_activations(x, w);
  const Shape ws = w.shape();
  const Shape& xs = x->shape();
  if (ws.size() < 3) value_error("w: expected experts stacked as [E, ..., rows, cols], got shape ", shape_str(ws));
  if (xs.size() < 2) value_error("x: expected [..., M, K], got shape ", shape_str(xs));
  const int64_t K = transpose ? ws.back() : ws[ws.size() - 2];
  const int64_t N = transpose ? ws[ws.size() - 2] : ws.back();
  if (xs.back() != K) value_error("x: expected last dimension ", K, " (K of the experts), got shape ", shape_str(xs));
  const Shape x_batch(xs.begin(), xs.end() - 2), w_batch(ws.begin(), ws.end() - 2);
  // On a stream the indices may come from an earlier op still queued: the
  // kernels read them and gather_check reports bad ones at synchronize().
  // Without one they are read, checked and sorted here, before any work.
  const bool indices_on_device = stream != nullptr;
  const GatherIndexLists lists = gather_index_lists(lhs_indices, rhs_indices, x_batch, w_batch, indices_on_device);
  const Shape& batch = lists.batch;
  Shape shape = batch;
  shape.push_back(xs[xs.size() - 2]);
  shape.push_back(N);
  const BufferPtr y = output_buffer(out, x->dtype(), shape,
                                    {input_range("x", x), input_range("w's packed codes", w.packed),
                                     input_range("w's scales", w.scales), input_range("w's biases", w.biases),
                                     input_range("lhs_indices", lhs_indices), input_range("rhs_indices", rhs_indices)});
  const int64_t matrices = shape_size(batch), x_count = shape_size(x_batch), w_count = shape_size(w_batch);
  const bool sort = route == AffineRoute::qmm_sorted ||
                    (route == AffineRoute::automatic &&
                     affine_gather_prefers_sorted(device, transpose, xs[xs.size() - 2], matrices, w_count));
  if (indices_on_device) {
    // sorted_indices only saves a sort, which the device does cheaply.
    const BufferPtr lhs_list = device_indices(lhs_indices, x_batch, batch, x_count, "lhs_indices");
    const BufferPtr rhs_list = device_indices(rhs_indices, w_batch, batch, w_count, "rhs_indices");
    if (y->size() == 0) return y;
    std::vector<DispatchPlan> plans;
    BufferPtr lhs_rows = lhs_list, rhs_rows = rhs_list, order;
    if (sort) {
      GatherRows rows = plan_gather_rows(device, lhs_list, rhs_list, 1, planning::checked_u32(x_count, "x's matrices"),
                                         planning::checked_u32(w_count, "the experts of w"), true);
      plans.push_back(std::move(rows.plan));
      lhs_rows = rows.row_lhs, rhs_rows = rows.row_rhs, order = rows.row_order;
    }
    std::vector<DispatchPlan> gather =
        plan_affine_gather_matmul(device, x, w, lhs_rows, rhs_rows, transpose, y, route, order);
    if (gather.empty()) std::memset(y->data(), 0, y->nbytes());  // K == 0: zeros, still checked below
    plans.insert(plans.end(), gather.begin(), gather.end());
    run_checked_gather(device, std::move(plans), lhs_list, rhs_list, y, static_cast<uint32_t>(x_count),
                       static_cast<uint32_t>(w_count), stream);
    return y;
  }
  BufferPtr lhs_flat = broadcast_to(lists.lhs, batch), rhs_flat = broadcast_to(lists.rhs, batch);
  const auto* experts = static_cast<const uint32_t*>(rhs_flat->data());
  if (sorted_indices && !std::is_sorted(experts, experts + matrices)) {
    value_error("rhs_indices: sorted_indices=True, but the indices are not sorted");
  }
  const BufferPtr rows = sort ? sort_rows_by_expert(lhs_flat, rhs_flat, sorted_indices) : nullptr;
  const std::vector<DispatchPlan> plans =
      plan_affine_gather_matmul(device, x, w, lhs_flat, rhs_flat, transpose, y, route, rows);
  if (plans.empty()) std::memset(y->data(), 0, y->nbytes());  // nothing to sum (K == 0) or nothing to write
  run(device, plans, stream);
  return y;
}

}  // namespace qmetal
