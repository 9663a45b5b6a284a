// DWQ (distilled weight quantization, as mlx-lm's dwq.py): a quantized
// layer's integer codes stay frozen and only its per-group scales and
// biases are trained against a full-precision teacher. These are the
// primitives for it: initialisation, the scale / bias gradients from a
// weight gradient, and the vector-Jacobian product of an affine matmul,
// whose scale / bias part is computed from x and dy without storing dW.
//
// Unpacked weights (QuantizedWeight::from_codes, dwq_init's result) hold
// one uint8 code per value; MLX's 8-bit packing puts code i of a row in
// byte i, so they run on the 8-bit kernels of every affine route unchanged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "qmetal/affine.h"
#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

// Widths of unpacked codes, and their group sizes: powers of two in this
// range (the matmul and dequantize kernels take 32, 64 and 128, as MLX does).
inline constexpr int kDwqMinBits = 1, kDwqMaxBits = 8;
inline constexpr int kDwqMinGroupSize = 2, kDwqMaxGroupSize = 1024;

// "dwq_<kernel>_<dtype>" (bits 0) or "dwq_<kernel>_<dtype>_b<bits>", as the
// shaders' instantiation macros name them.
std::string dwq_kernel_name(std::string_view kernel, DType dtype, int bits = 0);

// Per-group min/max initialisation of a float weight [..., rows, cols]:
// scale = (max - min) / (2^bits - 1), bias = min, code = clip(rint((w -
// bias) / scale), 0, 2^bits - 1), in float32; a group whose range is not
// positive (constant) gets scale 1 (its codes are all 0, so the group is
// exact). Unpacked uint8 codes, float32 scales and biases.
QuantizedWeight dwq_init(const Device& device, const BufferPtr& w, int bits, int group_size);
std::vector<DispatchPlan> plan_dwq_init(const Device& device, const BufferPtr& w, const QuantizedWeight& out);

// Scale and bias gradients, float32, shaped as w's scales.
struct DwqGrads {
  BufferPtr d_scales, d_biases;
};

// From a weight gradient dw (shape of w, any float dtype):
// d_scale[g] = sum over i in g of code[i] * dw[i], d_bias[g] = sum of dw[i].
DwqGrads dwq_grads(const Device& device, const QuantizedWeight& w, const BufferPtr& dw);
std::vector<DispatchPlan> plan_dwq_grads(const Device& device, const QuantizedWeight& w, const BufferPtr& dw,
                                         const DwqGrads& out);

struct DwqVjp {
  BufferPtr dx;                // dtype of x
  BufferPtr d_scales, d_biases;  // float32
};

// The vector-Jacobian product of y = affine_matmul(x, w, transpose) with
// respect to x and w's scales and biases, for the output gradient dy (the
// result's shape). x, dy and w's scales share one float dtype (Python
// promotes as MLX does). A batched w may broadcast against x; x may not
// broadcast against w (broadcast it first; its gradient is then summed
// over the broadcast dimensions). dx runs on the matmul kernels; the scale
// and bias gradients on dwq_vjp, which never stores dW.
DwqVjp dwq_matmul_vjp(const Device& device, const BufferPtr& x, const QuantizedWeight& w, const BufferPtr& dy,
                      bool transpose);
// The dwq_vjp launch (d_scales, d_biases float32, shaped as w's scales);
// none when there is nothing to sum (the op then writes zeros).
std::vector<DispatchPlan> plan_dwq_vjp(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                                       const BufferPtr& dy, bool transpose, const DwqGrads& out);

}  // namespace qmetal
