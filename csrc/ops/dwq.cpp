// The DWQ ops: validate everything, plan, run.
#include "qmetal/dwq.h"

#include <cstring>

#include "ops/common.h"
#include "qmetal/error.h"
#include "qmetal/ops.h"

namespace qmetal {

using namespace ops_detail;

namespace detail {
void check_dwq_init_input(const BufferPtr& w, int bits, int group_size);
void check_dwq_grads_input(const QuantizedWeight& w, const BufferPtr& dw);
void check_affine_kernel_format(const QuantizedWeight& w);
}  // namespace detail

namespace {

DwqGrads allocate_grads(const QuantizedWeight& w) {
  return {Buffer::allocate(DType::f32, w.scales->shape()), Buffer::allocate(DType::f32, w.scales->shape())};
}

void zero(const BufferPtr& b) { std::memset(b->data(), 0, b->nbytes()); }

}  // namespace

QuantizedWeight dwq_init(const Device& device, const BufferPtr& w, int bits, int group_size) {
  detail::check_dwq_init_input(w, bits, group_size);
  Shape groups = w->shape();
  groups.back() /= group_size;
  QuantizedWeight q{Buffer::allocate(DType::u8, w->shape()), Buffer::allocate(DType::f32, groups),
                    Buffer::allocate(DType::f32, groups), bits, group_size};
  q.unpacked = true;
  execute(device, plan_dwq_init(device, w, q));
  return q;
}

DwqGrads dwq_grads(const Device& device, const QuantizedWeight& w, const BufferPtr& dw) {
  detail::check_dwq_grads_input(w, dw);
  DwqGrads out = allocate_grads(w);
  execute(device, plan_dwq_grads(device, w, dw, out));
  return out;
}

DwqVjp dwq_matmul_vjp(const Device& device, const BufferPtr& x, const QuantizedWeight& w, const BufferPtr& dy,
                      bool transpose) {
  if (!x) value_error("x is required");
  if (!dy) value_error("dy is required");
  check_float_activations(*x);
  if (x->dtype() != w.dtype()) {
    type_error("x: expected ", dtype_name(w.dtype()), " (the dtype of the weight's scales), got ",
               dtype_name(x->dtype()));
  }
  if (dy->dtype() != x->dtype()) {
    type_error("dy: expected ", dtype_name(x->dtype()), " (the dtype of the matmul's result), got ",
               dtype_name(dy->dtype()));
  }
  detail::check_affine_kernel_format(w);
  const Shape y_shape = affine_matmul_shape(x->shape(), w, transpose);
  const Shape ws = w.shape();
  if (ws.size() > 2) {
    const Shape& xs = x->shape();
    const Shape x_batch = xs.size() >= 2 ? Shape(xs.begin(), xs.end() - 2) : Shape{};
    const Shape out_batch(y_shape.begin(), y_shape.end() - std::min<size_t>(y_shape.size(), 2));
    if (xs.size() < 2 || x_batch != out_batch) {
      value_error("x: expected its batch dimensions to be the result's ", shape_str(out_batch), " (x [..., M, K] "
                  "not broadcast against the weight: broadcast it first and sum dx over those dimensions, as "
                  "qmetal.matmul_vjp does), got shape ", shape_str(xs));
    }
  }
  if (dy->shape() != y_shape) {
    value_error("dy: expected the shape of matmul(x, w) ", shape_str(y_shape), ", got ", shape_str(dy->shape()));
  }
  DwqVjp out{Buffer::allocate(x->dtype(), x->shape()), nullptr, nullptr};
  DwqGrads grads = allocate_grads(w);
  out.d_scales = grads.d_scales;
  out.d_biases = grads.d_biases;

  // dx = dy @ dequant(w) (transposed weights) or dy @ dequant(w)^T: the
  // matmul with the other transpose, on its own routes.
  std::vector<DispatchPlan> plans = plan_affine_matmul(device, dy, w, !transpose, out.dx, AffineRoute::automatic);
  if (plans.empty()) zero(out.dx);  // an empty reduction (no outputs) gives zeros
  std::vector<DispatchPlan> vjp = plan_dwq_vjp(device, x, w, dy, transpose, grads);
  if (vjp.empty()) {
    zero(out.d_scales);
    zero(out.d_biases);
  }
  plans.insert(plans.end(), vjp.begin(), vjp.end());
  execute(device, plans);
  return out;
}

}  // namespace qmetal
