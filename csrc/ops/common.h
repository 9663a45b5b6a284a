// Shared by the ops: checking activations and outputs, running plans (now
// or on a stream), and the index lists of the gather ops (MoE): integer
// index arrays of any dtype read with range checks, broadcast, and rows
// sorted by expert.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "qmetal/buffer.h"
#include "qmetal/error.h"
#include "qmetal/gather.h"
#include "qmetal/ops.h"
#include "qmetal_args.h"

namespace qmetal::ops_detail {

inline int64_t read_index(const Buffer& b, int64_t i) {
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

inline Indices indices_from(const BufferPtr& given, const Shape& batch, int64_t count, const char* what) {
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
inline BufferPtr broadcast_to(const Indices& a, const Shape& shape) {
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

// The index lists of a gather (MoE) op: their broadcast batch and, unless
// the kernels read them on the device (a stream: an earlier op may still be
// writing them), their values, read and range-checked here.
struct GatherIndexLists {
  Shape batch;
  Indices lhs, rhs;  // empty when read on the device
};

inline GatherIndexLists gather_index_lists(const BufferPtr& lhs_indices, const BufferPtr& rhs_indices,
                                           const Shape& x_batch, const Shape& w_batch, bool read_on_device) {
  GatherIndexLists lists;
  if (!read_on_device) {
    lists.lhs = indices_from(lhs_indices, x_batch, shape_size(x_batch), "lhs_indices");
    lists.rhs = indices_from(rhs_indices, w_batch, shape_size(w_batch), "rhs_indices");
  }
  lists.batch = broadcast_shapes(lhs_indices ? lhs_indices->shape() : x_batch,
                                 rhs_indices ? rhs_indices->shape() : w_batch, "lhs_indices", "rhs_indices");
  return lists;
}

// Index lists an op on a stream hands to its kernels without reading them
// (an earlier op on the stream may still be writing them): 32-bit integers
// (int32 reads as a huge uint32 when negative, which the kernels' checks
// catch), already of the broadcast shape. `count` bounds the values, for
// the message. Absent lists are the identity, made here.
inline BufferPtr device_indices(const BufferPtr& given, const Shape& batch, const Shape& shape, int64_t count,
                                const char* what) {
  if (!given) return broadcast_to(indices_from(nullptr, batch, count, what), shape);
  if (given->dtype() != DType::u32 && given->dtype() != DType::i32) {
    type_error(what, ": on a stream the kernels read the indices as they are: expected uint32 or int32, got ",
               dtype_name(given->dtype()));
  }
  if (given->shape() != shape) {
    value_error(what, ": on a stream the kernels read the indices as they are: expected the broadcast shape ",
                shape_str(shape), ", got ", shape_str(given->shape()));
  }
  if (count == 0 && given->size() > 0) value_error(what, ": every index is out of range [0, 0)");
  return given;
}

// Runs plans now, or queues them on `stream` (whose device must be `device`).
inline void run(const Device& device, const std::vector<DispatchPlan>& plans, Stream* stream) {
  if (stream == nullptr) return execute(device, plans);
  if (stream->device().get() != &device) {
    value_error("stream: it belongs to device '", stream->device()->name(), "', the op runs on '", device.name(), "'");
  }
  stream->enqueue(plans);
}

// Queues a gather whose ids only the device reads (lhs, rhs: one per output
// matrix of y): `plans`, then gather_check, which NaNs the output matrices
// of out-of-range ids and flags them for the stream's synchronize().
inline void run_checked_gather(const Device& device, std::vector<DispatchPlan> plans, const BufferPtr& lhs,
                               const BufferPtr& rhs, const BufferPtr& y, uint32_t x_count, uint32_t w_count,
                               Stream* stream) {
  auto flags = Buffer::allocate(DType::u32, {1});
  *static_cast<uint32_t*>(flags->data()) = 0;
  plans.push_back(plan_gather_check(device, lhs, rhs, y, flags, x_count, w_count));
  run(device, plans, stream);
  const std::string out_of_range = ": an index read on the device is out of range [0, ";
  stream->add_check({flags,
                     {{qmetal_args::kGatherBadLhs, detail::concat("lhs_indices", out_of_range, x_count,
                                                                  ") (the batch matrices of x); their results are NaN")},
                      {qmetal_args::kGatherBadRhs, detail::concat("rhs_indices", out_of_range, w_count,
                                                                  ") (the experts of w); their results are NaN")}}});
}

// Activations the kernels take: float32, float16 or bfloat16.
inline void check_float_activations(const Buffer& x) {
  if (!dtype_is_float(x.dtype())) type_error("x: expected float32, float16 or bfloat16, got ", dtype_name(x.dtype()));
}

// `out` checked against the result (dtype, shape, writable), or a new buffer.
// Memory an op's kernels read, named for the error when `out` overlaps it.
struct InputRange {
  const char* name;
  const void* begin;
  size_t bytes;
};

inline InputRange input_range(const char* name, const BufferPtr& buffer, size_t offset = 0, size_t bytes = SIZE_MAX) {
  if (!buffer) return {name, nullptr, 0};
  const size_t available = buffer->nbytes() - std::min(offset, buffer->nbytes());
  return {name, static_cast<const uint8_t*>(buffer->data()) + offset, std::min(bytes, available)};
}

// `out` is checked before any work; kernels that write memory they read
// return garbage, so an overlap with any input is an error.
inline BufferPtr output_buffer(const BufferPtr& out, DType dtype, const Shape& shape,
                               std::initializer_list<InputRange> inputs = {}) {
  if (!out) return Buffer::allocate(dtype, shape);
  if (out->dtype() != dtype) type_error("out: expected dtype ", dtype_name(dtype), ", got ", dtype_name(out->dtype()));
  if (out->shape() != shape) value_error("out: expected shape ", shape_str(shape), ", got ", shape_str(out->shape()));
  if (out->readonly()) value_error("out: the buffer is read-only");
  const auto* begin = static_cast<const uint8_t*>(out->data());
  const auto* end = begin + out->nbytes();
  for (const InputRange& input : inputs) {
    const auto* input_begin = static_cast<const uint8_t*>(input.begin);
    if (input_begin == nullptr || input.bytes == 0 || out->nbytes() == 0) continue;
    if (begin < input_begin + input.bytes && input_begin < end) {
      value_error("out: overlaps ", input.name, "; the kernels would read what they write (pass a separate array)");
    }
  }
  return out;
}

// Sorts MoE rows (x row lhs[i], expert rhs[i]) by expert, stably so ties
// keep their order, replacing lhs and rhs by the sorted lists. Returns
// `rows`: the original position of each sorted row, where its result goes.
// `already_sorted` (checked by the caller) keeps the order.
inline BufferPtr sort_rows_by_expert(BufferPtr& lhs, BufferPtr& rhs, bool already_sorted) {
  const int64_t count = lhs->size();
  const auto* lhs_values = static_cast<const uint32_t*>(lhs->data());
  const auto* experts = static_cast<const uint32_t*>(rhs->data());
  BufferPtr rows = Buffer::allocate(DType::u32, {count});
  auto* order = static_cast<uint32_t*>(rows->data());
  for (int64_t i = 0; i < count; ++i) order[i] = static_cast<uint32_t>(i);
  if (already_sorted) return rows;
  std::stable_sort(order, order + count, [&](uint32_t a, uint32_t b) { return experts[a] < experts[b]; });
  BufferPtr sorted_lhs = Buffer::allocate(DType::u32, {count}), sorted_rhs = Buffer::allocate(DType::u32, {count});
  for (int64_t i = 0; i < count; ++i) {
    static_cast<uint32_t*>(sorted_lhs->data())[i] = lhs_values[order[i]];
    static_cast<uint32_t*>(sorted_rhs->data())[i] = experts[order[i]];
  }
  lhs = std::move(sorted_lhs);
  rhs = std::move(sorted_rhs);
  return rows;
}

}  // namespace qmetal::ops_detail
