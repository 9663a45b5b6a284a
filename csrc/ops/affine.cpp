// The affine ops: validate, plan, run.
#include <algorithm>
#include <cstring>

#include "qmetal/error.h"
#include "qmetal/ops.h"

namespace qmetal {

namespace {

// Runs plans now, or queues them on `stream` (whose device must be `device`).
void run(const Device& device, const std::vector<DispatchPlan>& plans, Stream* stream) {
  if (stream == nullptr) return execute(device, plans);
  if (stream->device().get() != &device) {
    value_error("stream: it belongs to device '", stream->device()->name(), "', the op runs on '", device.name(), "'");
  }
  stream->enqueue(plans);
}

}  // namespace

namespace detail {
DispatchPlan plan_affine_quantize(const Device& device, const BufferPtr& dense, const QuantizedWeight& w,
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
  execute(device, {detail::plan_affine_quantize(device, w, q, true)});
  return q;
}

BufferPtr affine_dequantize(const Device& device, const QuantizedWeight& w) {
  auto dense = Buffer::allocate(w.dtype(), w.shape());
  execute(device, {detail::plan_affine_quantize(device, dense, w, false)});
  return dense;
}

BufferPtr affine_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w, bool transpose,
                        const BufferPtr& out, AffineRoute route, Stream* stream) {
  if (!x) value_error("x is required");
  if (!dtype_is_float(x->dtype())) {
    type_error("x: expected float32, float16 or bfloat16, got ", dtype_name(x->dtype()));
  }
  if (x->dtype() != w.dtype()) {
    type_error("x: expected ", dtype_name(w.dtype()), " (the dtype of the weight's scales), got ",
               dtype_name(x->dtype()));
  }
  const Shape shape = affine_matmul_shape(x->shape(), w, transpose);
  BufferPtr y = out;
  if (y) {
    if (y->dtype() != x->dtype()) type_error("out: expected dtype ", dtype_name(x->dtype()), ", got ", dtype_name(y->dtype()));
    if (y->shape() != shape) value_error("out: expected shape ", shape_str(shape), ", got ", shape_str(y->shape()));
    if (y->readonly()) value_error("out: the buffer is read-only");
  } else {
    y = Buffer::allocate(x->dtype(), shape);
  }
  run(device, plan_affine_matmul(device, x, w, transpose, y, route), stream);
  return y;
}

namespace {

int64_t read_index(const Buffer& b, int64_t i) {
  const auto* p = static_cast<const uint8_t*>(b.data());
  switch (b.dtype()) {
    case DType::i8: return reinterpret_cast<const int8_t*>(p)[i];
    case DType::u8: return p[i];
    case DType::i16: return reinterpret_cast<const int16_t*>(p)[i];
    case DType::u16: return reinterpret_cast<const uint16_t*>(p)[i];
    case DType::i32: return reinterpret_cast<const int32_t*>(p)[i];
    case DType::u32: return reinterpret_cast<const uint32_t*>(p)[i];
    case DType::i64: return reinterpret_cast<const int64_t*>(p)[i];
    case DType::u64: return static_cast<int64_t>(std::min<uint64_t>(reinterpret_cast<const uint64_t*>(p)[i], INT64_MAX));
    default: return -1;
  }
}

// The indices of one side: given, or every matrix of `batch` in order.
struct Indices {
  Shape shape;
  std::vector<int64_t> values;
};

Indices indices_from(const BufferPtr& given, const Shape& batch, int64_t count, const char* what) {
  Indices out;
  if (!given) {
    out.shape = batch;
    out.values.resize(count);
    for (int64_t i = 0; i < count; ++i) out.values[i] = i;
    return out;
  }
  if (dtype_is_float(given->dtype())) {
    type_error(what, ": expected an integer dtype (uint32, as mlx uses), got ", dtype_name(given->dtype()));
  }
  out.shape = given->shape();
  out.values.resize(given->size());
  for (int64_t i = 0; i < given->size(); ++i) {
    const int64_t v = read_index(*given, i);
    if (v < 0 || v >= count) value_error(what, ": index ", v, " at position ", i, " is out of range [0, ", count, ")");
    out.values[i] = v;
  }
  return out;
}

// NumPy-broadcasts a to `shape` and returns its values as uint32, flattened.
BufferPtr broadcast_to(const Indices& a, const Shape& shape) {
  const int64_t total = shape_size(shape);
  auto out = Buffer::allocate(DType::u32, {total});
  auto* dst = static_cast<uint32_t*>(out->data());
  std::vector<int64_t> strides(shape.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    const size_t dim = a.shape.size() - 1 - i, out_dim = shape.size() - 1 - i;
    strides[out_dim] = a.shape[dim] == 1 ? 0 : stride;
    stride *= a.shape[dim];
  }
  for (int64_t z = 0; z < total; ++z) {
    int64_t rest = z, offset = 0;
    for (size_t d = shape.size(); d-- > 0;) {
      offset += rest % shape[d] * strides[d];
      rest /= shape[d];
    }
    dst[z] = static_cast<uint32_t>(a.values[offset]);
  }
  return out;
}

}  // namespace

BufferPtr affine_gather_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                               const BufferPtr& lhs_indices, const BufferPtr& rhs_indices, bool transpose,
                               bool sorted_indices, const BufferPtr& out, AffineRoute route, Stream* stream) {
  if (!x) value_error("x is required");
  if (!dtype_is_float(x->dtype())) type_error("x: expected float32, float16 or bfloat16, got ", dtype_name(x->dtype()));
  if (x->dtype() != w.dtype()) {
    type_error("x: expected ", dtype_name(w.dtype()), " (the dtype of the weight's scales), got ", dtype_name(x->dtype()));
  }
  const Shape ws = w.shape();
  const Shape& xs = x->shape();
  if (ws.size() < 3) value_error("w: expected experts stacked as [E, ..., rows, cols], got shape ", shape_str(ws));
  if (xs.size() < 2) value_error("x: expected [..., M, K], got shape ", shape_str(xs));
  const int64_t K = transpose ? ws.back() : ws[ws.size() - 2];
  const int64_t N = transpose ? ws[ws.size() - 2] : ws.back();
  if (xs.back() != K) value_error("x: expected last dimension ", K, " (K of the experts), got shape ", shape_str(xs));
  const Shape x_batch(xs.begin(), xs.end() - 2), w_batch(ws.begin(), ws.end() - 2);
  const Indices lhs = indices_from(lhs_indices, x_batch, shape_size(x_batch), "lhs_indices");
  const Indices rhs = indices_from(rhs_indices, w_batch, shape_size(w_batch), "rhs_indices");
  Shape batch(std::max(lhs.shape.size(), rhs.shape.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    const size_t from_end = batch.size() - 1 - i;
    const int64_t a = from_end < lhs.shape.size() ? lhs.shape[lhs.shape.size() - 1 - from_end] : 1;
    const int64_t b = from_end < rhs.shape.size() ? rhs.shape[rhs.shape.size() - 1 - from_end] : 1;
    if (a != b && a != 1 && b != 1) {
      value_error("lhs_indices: shape ", shape_str(lhs.shape), " does not broadcast with rhs_indices' ",
                  shape_str(rhs.shape));
    }
    batch[i] = std::max(a, b);
  }
  Shape shape = batch;
  shape.push_back(xs[xs.size() - 2]);
  shape.push_back(N);
  BufferPtr y = out;
  if (y) {
    if (y->dtype() != x->dtype()) type_error("out: expected dtype ", dtype_name(x->dtype()), ", got ", dtype_name(y->dtype()));
    if (y->shape() != shape) value_error("out: expected shape ", shape_str(shape), ", got ", shape_str(y->shape()));
    if (y->readonly()) value_error("out: the buffer is read-only");
  } else {
    y = Buffer::allocate(x->dtype(), shape);
  }
  BufferPtr lhs_flat = broadcast_to(lhs, batch), rhs_flat = broadcast_to(rhs, batch);
  const int64_t matrices = lhs_flat->size();
  const auto* experts = static_cast<const uint32_t*>(rhs_flat->data());
  if (sorted_indices && !std::is_sorted(experts, experts + matrices)) {
    value_error("rhs_indices: sorted_indices=True, but the indices are not sorted");
  }
  BufferPtr rows;
  const bool sort = route == AffineRoute::qmm_sorted ||
                    (route == AffineRoute::automatic &&
                     affine_gather_prefers_sorted(device, transpose, xs[xs.size() - 2], matrices, shape_size(w_batch)));
  if (sort) {
    // Rows of one expert next to each other (stable, so ties keep their
    // order); `rows` sends each result back to its place.
    rows = Buffer::allocate(DType::u32, {matrices});
    auto* order = static_cast<uint32_t*>(rows->data());
    for (int64_t i = 0; i < matrices; ++i) order[i] = static_cast<uint32_t>(i);
    if (!sorted_indices) {
      std::stable_sort(order, order + matrices, [&](uint32_t a, uint32_t b) { return experts[a] < experts[b]; });
      auto lhs_sorted = Buffer::allocate(DType::u32, {matrices}), rhs_sorted = Buffer::allocate(DType::u32, {matrices});
      const auto* lhs_values = static_cast<const uint32_t*>(lhs_flat->data());
      for (int64_t i = 0; i < matrices; ++i) {
        static_cast<uint32_t*>(lhs_sorted->data())[i] = lhs_values[order[i]];
        static_cast<uint32_t*>(rhs_sorted->data())[i] = experts[order[i]];
      }
      lhs_flat = std::move(lhs_sorted);
      rhs_flat = std::move(rhs_sorted);
    }
  }
  run(device, plan_affine_gather_matmul(device, x, w, lhs_flat, rhs_flat, transpose, y, route, rows), stream);
  return y;
}

}  // namespace qmetal
