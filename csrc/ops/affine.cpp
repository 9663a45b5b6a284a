// The affine ops: validate, plan, run.
#include "qmetal/ops.h"
#include "qmetal/error.h"

namespace qmetal {

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
                        const BufferPtr& out, AffineRoute route) {
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
  execute(device, plan_affine_matmul(device, x, w, transpose, y, route));
  return y;
}

}  // namespace qmetal
