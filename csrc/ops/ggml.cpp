// The GGML ops: validate, build row lists for stacked weights and MoE, plan, run.
#include "qmetal/ggml.h"

#include "core/planning.h"
#include "ops/common.h"
#include "qmetal/error.h"
#include "qmetal/ops.h"

namespace qmetal {

using namespace ops_detail;

namespace detail {
std::vector<DispatchPlan> plan_ggml_dequantize(const Device& device, const GGMLWeight& w, const BufferPtr& out);
}  // namespace detail

namespace {

void check_activations(const Device& device, const Buffer& x, DType output) {
  check_float_activations(x);
  if (x.dtype() == DType::bf16 && !device.capabilities().bfloat) {
    type_error("x: bfloat16 needs a device with bfloat (", device.name(), " has none); use float16 or float32");
  }
  if (output != DType::f32 && output != x.dtype()) {
    type_error("dtype: the output is float32 or the activations' dtype (", dtype_name(x.dtype()), "), got ",
               dtype_name(output));
  }
}

InputRange weight_range(const GGMLWeight& w) { return input_range("w", w.data, w.offset, w.expected_bytes()); }

// Output rows z * M + m of matrix z: x row x_matrix[z] * M + m, expert
// w_matrix[z]; sorted by expert when that pays (or is asked for).
void run_rows(const Device& device, const BufferPtr& x, const GGMLWeight& w, const BufferPtr& y, const uint32_t* x_matrix,
              const uint32_t* w_matrix, int64_t matrices, uint32_t M, int64_t experts, GGMLRoute route,
              Stream* stream) {
  const int64_t count = matrices * M;
  if (count > int64_t(UINT32_MAX)) value_error("x: ", count, " output rows do not fit 32-bit indices");
  GGMLRows rows;
  rows.count = static_cast<uint32_t>(count);
  rows.lhs = Buffer::allocate(DType::u32, {count});
  rows.rhs = Buffer::allocate(DType::u32, {count});
  auto* lhs = static_cast<uint32_t*>(rows.lhs->data());
  auto* rhs = static_cast<uint32_t*>(rows.rhs->data());
  for (int64_t z = 0; z < matrices; ++z) {
    for (uint32_t m = 0; m < M; ++m) {
      lhs[z * M + m] = x_matrix[z] * M + m;
      rhs[z * M + m] = w_matrix[z];
    }
  }
  if (route == GGMLRoute::mm_id || route == GGMLRoute::mm_id_tensor ||
      (route == GGMLRoute::automatic && ggml_gather_prefers_sorted(count, experts))) {
    rows.rows = sort_rows_by_expert(rows.lhs, rows.rhs, false);
  }
  run(device, plan_ggml_matmul(device, x, w, y, 0, 0, route, &rows), stream);
}

}  // namespace

BufferPtr ggml_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w, DType output, bool heads_first,
                      const BufferPtr& out, GGMLRoute route, Stream* stream) {
  if (!x) value_error("x is required");
  check_activations(device, *x, output);
  const Shape& xs = x->shape();
  const Shape& ws = w.shape;
  const int64_t K = ws.back(), N = ws[ws.size() - 2];
  if (heads_first) {
    if (ws.size() != 2) value_error("heads_first: needs a 2-D weight [N, K], got shape ", shape_str(ws));
    if (xs.size() != 3 || xs[0] * xs[2] != K) {
      value_error("x: with heads_first, expected [heads, M, head_dim] with heads * head_dim = K (", K, "), got ",
                  shape_str(xs));
    }
    const BufferPtr y = output_buffer(out, output, {xs[1], N}, {input_range("x", x), weight_range(w)});
    run(device, plan_ggml_matmul(device, x, w, y, planning::checked_u32(xs[1], "x's M"),
                                 planning::checked_u32(xs[2], "x's head_dim"), route),
        stream);
    return y;
  }
  if (xs.empty() || xs.back() != K) {
    value_error("x: expected last dimension ", K, " (K of the weight of shape ", shape_str(ws), "), got shape ",
                shape_str(xs));
  }
  if (ws.size() == 2) {
    Shape shape = xs;
    shape.back() = N;
    const BufferPtr y = output_buffer(out, output, shape, {input_range("x", x), weight_range(w)});
    const int64_t M = shape_size(xs) / K;
    if (M > int64_t(UINT32_MAX)) value_error("x: ", M, " rows do not fit 32-bit indices");
    run(device, plan_ggml_matmul(device, x, w, y, static_cast<uint32_t>(M), 0, route), stream);
    return y;
  }
  // A stacked weight broadcasts against x's leading dimensions: one row list.
  const Shape x_batch = xs.size() >= 2 ? Shape(xs.begin(), xs.end() - 2) : Shape{};
  const Shape w_batch(ws.begin(), ws.end() - 2);
  const Shape batch = broadcast_shapes(x_batch, w_batch, "x", "the weight");
  const Indices x_matrices = indices_from(nullptr, x_batch, shape_size(x_batch), "x");
  const Indices w_matrices = indices_from(nullptr, w_batch, shape_size(w_batch), "w");
  const BufferPtr lhs = broadcast_to(x_matrices, batch), rhs = broadcast_to(w_matrices, batch);
  const uint32_t M = xs.size() >= 2 ? planning::checked_u32(xs[xs.size() - 2], "x's M") : 1;
  planning::checked_u32(shape_size(xs) / K, "the rows of x");
  Shape shape = batch;
  if (xs.size() >= 2) shape.push_back(M);
  shape.push_back(N);
  const BufferPtr y = output_buffer(out, output, shape, {input_range("x", x), weight_range(w)});
  run_rows(device, x, w, y, static_cast<const uint32_t*>(lhs->data()), static_cast<const uint32_t*>(rhs->data()),
           lhs->size(), M, shape_size(w_batch), route, stream);
  return y;
}

BufferPtr ggml_gather_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w,
                             const BufferPtr& lhs_indices, const BufferPtr& rhs_indices, DType output,
                             const BufferPtr& out, GGMLRoute route, Stream* stream) {
  if (!x) value_error("x is required");
  check_activations(device, *x, output);
  const Shape& xs = x->shape();
  const Shape& ws = w.shape;
  if (ws.size() < 3) value_error("w: expected experts stacked as [E, ..., N, K], got shape ", shape_str(ws));
  if (xs.size() < 2) value_error("x: expected [..., M, K], got shape ", shape_str(xs));
  if (xs.back() != ws.back()) {
    value_error("x: expected last dimension ", ws.back(), " (K of the experts), got shape ", shape_str(xs));
  }
  const Shape x_batch(xs.begin(), xs.end() - 2), w_batch(ws.begin(), ws.end() - 2);
  const int64_t x_count = shape_size(x_batch), w_count = shape_size(w_batch);
  // On a stream the indices may come from an earlier op still queued: the
  // kernels read them and gather_check reports bad ones at synchronize().
  // Without one they are read, checked and sorted here, before any work.
  const bool indices_on_device = stream != nullptr;
  const GatherIndexLists lists = gather_index_lists(lhs_indices, rhs_indices, x_batch, w_batch, indices_on_device);
  const Shape& batch = lists.batch;
  const uint32_t M = planning::checked_u32(xs[xs.size() - 2], "x's M");
  planning::checked_u32(shape_size(xs) / xs.back(), "the rows of x");
  Shape shape = batch;
  shape.push_back(M);
  shape.push_back(ws[ws.size() - 2]);
  const BufferPtr y = output_buffer(out, output, shape,
                                    {input_range("x", x), weight_range(w), input_range("lhs_indices", lhs_indices),
                                     input_range("rhs_indices", rhs_indices)});
  if (indices_on_device) {
    const BufferPtr lhs_list = device_indices(lhs_indices, x_batch, batch, x_count, "lhs_indices");
    const BufferPtr rhs_list = device_indices(rhs_indices, w_batch, batch, w_count, "rhs_indices");
    if (y->size() == 0) return y;
    const int64_t count = shape_size(batch) * M;
    const bool sort = route == GGMLRoute::mm_id || route == GGMLRoute::mm_id_tensor ||
                      (route == GGMLRoute::automatic && ggml_gather_prefers_sorted(count, w_count));
    GatherRows rows = plan_gather_rows(device, lhs_list, rhs_list, M, planning::checked_u32(x_count, "x's matrices"),
                                       planning::checked_u32(w_count, "the experts of w"), sort);
    GGMLRows row_list;
    row_list.lhs = rows.row_lhs, row_list.rhs = rows.row_rhs, row_list.rows = rows.row_order;
    row_list.count = planning::checked_u32(count, "the output rows");
    std::vector<DispatchPlan> plans = plan_ggml_matmul(device, x, w, y, 0, 0, route, &row_list);
    plans.insert(plans.begin(), std::move(rows.plan));
    run_checked_gather(device, std::move(plans), lhs_list, rhs_list, y, static_cast<uint32_t>(x_count),
                       static_cast<uint32_t>(w_count), stream);
    return y;
  }
  const BufferPtr lhs_flat = broadcast_to(lists.lhs, batch), rhs_flat = broadcast_to(lists.rhs, batch);
  run_rows(device, x, w, y, static_cast<const uint32_t*>(lhs_flat->data()),
           static_cast<const uint32_t*>(rhs_flat->data()), lhs_flat->size(), M, w_count, route, stream);
  return y;
}

BufferPtr ggml_dequantize(const Device& device, const GGMLWeight& w, DType output) {
  if (!dtype_is_float(output)) type_error("dtype: expected float32, float16 or bfloat16, got ", dtype_name(output));
  const BufferPtr out = Buffer::allocate(output, w.shape);
  execute(device, detail::plan_ggml_dequantize(device, w, out));
  return out;
}

}  // namespace qmetal
