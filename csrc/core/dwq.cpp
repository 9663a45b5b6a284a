// DWQ: unpacked weights, validation, kernel names and the planners of
// dwq_init, dwq_grads and dwq_vjp (shaders/dwq.h).
#include "qmetal/dwq.h"

#include <algorithm>
#include <cstring>

#include "planning.h"
#include "qmetal/error.h"
#include "qmetal_args.h"

namespace qmetal {

using planning::ceil_div;
using planning::checked_u32;

namespace {

// Threads of the kernels (see shaders/dwq.h).
constexpr uint32_t kGroupThreads = 256;
constexpr uint32_t kTile = qmetal_args::kTileK;  // the fused gradient's tiles (shaders/dwq.h)
constexpr uint32_t kTileThreads = qmetal_args::kDwqTileThreads;

bool is_power_of_two(int v) { return v > 0 && (v & (v - 1)) == 0; }

void check_codes_format(int bits, int group_size) {
  if (bits < kDwqMinBits || bits > kDwqMaxBits) {
    value_error("bits: expected ", kDwqMinBits, "..", kDwqMaxBits, " for unpacked uint8 codes, got ", bits);
  }
  if (!is_power_of_two(group_size) || group_size < kDwqMinGroupSize || group_size > kDwqMaxGroupSize) {
    value_error("group_size: expected a power of two from ", kDwqMinGroupSize, " to ", kDwqMaxGroupSize, ", got ",
                group_size);
  }
}

void check_float(const BufferPtr& b, const char* what) {
  if (!b) value_error(what, " is required");
  if (!dtype_is_float(b->dtype())) {
    type_error(what, ": expected float32, float16 or bfloat16, got ", dtype_name(b->dtype()));
  }
}

void check_groups(const Shape& w, int group_size, const char* what) {
  if (w.size() < 2) value_error(what, ": expected [..., rows, cols], got shape ", shape_str(w));
  if (w.back() == 0 || w.back() % group_size != 0) {
    value_error(what, ": the last dimension (", w.back(), ") must be a positive multiple of group_size (", group_size,
                ")");
  }
}

Shape groups_shape(Shape shape, int group_size) {
  shape.back() /= group_size;
  return shape;
}

void check_scales(const BufferPtr& scales, const BufferPtr& biases, const Shape& groups) {
  check_float(scales, "scales");
  if (!biases) value_error("biases is required");
  if (biases->dtype() != scales->dtype()) {
    type_error("biases: expected ", dtype_name(scales->dtype()), " (the dtype of scales), got ",
               dtype_name(biases->dtype()));
  }
  if (scales->shape() != groups) {
    value_error("scales: expected shape ", shape_str(groups), ", got ", shape_str(scales->shape()));
  }
  if (biases->shape() != groups) {
    value_error("biases: expected shape ", shape_str(groups), ", got ", shape_str(biases->shape()));
  }
}

// dwq_init / dwq_grads: threads per group and the grid for `groups` groups.
qmetal_args::DwqGroupArgs group_args(const Shape& shape, int group_size, int bits) {
  qmetal_args::DwqGroupArgs args{};
  args.K = checked_u32(shape.back(), "the last dimension of w");
  args.groups = checked_u32(shape_size(shape) / group_size, "the number of groups");
  args.group_size = static_cast<uint32_t>(group_size);
  args.threads_per_group = std::min<uint32_t>(group_size, kGroupThreads);
  args.bits = static_cast<uint32_t>(bits);
  return args;
}

void set_group_grid(DispatchPlan& plan, const qmetal_args::DwqGroupArgs& args) {
  plan.grid = {ceil_div(args.groups, kGroupThreads / args.threads_per_group), 1, 1};
  plan.threadgroup = {kGroupThreads, 1, 1};
}

}  // namespace

namespace detail {

// The matmul and dequantize kernels are instantiated for MLX's group sizes.
void check_affine_kernel_format(const QuantizedWeight& w) {
  if (std::find(std::begin(kAffineGroupSizes), std::end(kAffineGroupSizes), w.group_size) ==
      std::end(kAffineGroupSizes)) {
    value_error("group_size: the matmul, dequantize and vjp kernels take 32, 64 or 128 (as MLX), got ",
                w.group_size, " (unpacked weights of other group sizes serve qmetal.dwq.init and grads only)");
  }
}

}  // namespace detail

QuantizedWeight QuantizedWeight::from_codes(BufferPtr codes, BufferPtr scales, BufferPtr biases, int bits,
                                            int group_size) {
  check_codes_format(bits, group_size);
  if (!codes) value_error("codes is required");
  if (codes->dtype() != DType::u8) {
    type_error("codes: expected uint8 (one unpacked code per value), got ", dtype_name(codes->dtype()));
  }
  check_groups(codes->shape(), group_size, "codes");
  check_scales(scales, biases, groups_shape(codes->shape(), group_size));
  // Codes past 2^bits would decode as other values; the kernels read any
  // byte safely, so this is checked here, once, not per call.
  const auto* bytes = static_cast<const uint8_t*>(codes->data());
  const uint8_t* worst = std::max_element(bytes, bytes + codes->size());
  if (codes->size() > 0 && *worst >= (1u << bits)) {
    value_error("codes: expected values below 2^bits = ", 1u << bits, ", got ", int(*worst), " at flat index ",
                worst - bytes);
  }
  QuantizedWeight w{std::move(codes), std::move(scales), std::move(biases), bits, group_size};
  w.unpacked = true;
  return w;
}

QuantizedWeight QuantizedWeight::with_scales(BufferPtr new_scales, BufferPtr new_biases) const {
  check_scales(new_scales, new_biases, scales->shape());
  QuantizedWeight w = *this;
  w.scales = std::move(new_scales);
  w.biases = std::move(new_biases);
  return w;
}

std::string dwq_kernel_name(std::string_view kernel, DType dtype, int bits) {
  std::string name = "dwq_" + std::string(kernel) + "_" + std::string(dtype_name(dtype));
  if (bits != 0) name += "_b" + std::to_string(bits);
  return name;
}

std::vector<DispatchPlan> plan_dwq_init(const Device& device, const BufferPtr& w, const QuantizedWeight& out) {
  const qmetal_args::DwqGroupArgs args = group_args(w->shape(), out.group_size, out.bits);
  if (args.groups == 0) return {};
  DispatchPlan plan;
  plan.kernel = dwq_kernel_name("init", w->dtype());
  plan.set_args(args);
  plan.bind(qmetal_args::kDwqDense, w, Access::read);
  plan.bind(qmetal_args::kDwqCodes, out.packed, Access::write);
  plan.bind(qmetal_args::kDwqScales, out.scales, Access::write);
  plan.bind(qmetal_args::kDwqBiases, out.biases, Access::write);
  set_group_grid(plan, args);
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

std::vector<DispatchPlan> plan_dwq_grads(const Device& device, const QuantizedWeight& w, const BufferPtr& dw,
                                         const DwqGrads& out) {
  const qmetal_args::DwqGroupArgs args = group_args(dw->shape(), w.group_size, w.bits);
  if (args.groups == 0) return {};
  DispatchPlan plan;
  plan.kernel = dwq_kernel_name("grads", dw->dtype(), w.kernel_bits());
  plan.set_args(args);
  plan.bind(qmetal_args::kDwqDense, dw, Access::read);
  plan.bind(qmetal_args::kDwqCodes, w.packed, Access::read);
  plan.bind(qmetal_args::kDwqScales, out.d_scales, Access::write);
  plan.bind(qmetal_args::kDwqBiases, out.d_biases, Access::write);
  set_group_grid(plan, args);
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

std::vector<DispatchPlan> plan_dwq_vjp(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                                       const BufferPtr& dy, bool transpose, const DwqGrads& out) {
  detail::check_affine_kernel_format(w);
  const Shape ws = w.shape();
  const Shape& xs = x->shape();
  // Codes matrix: R rows of C values, groups along C.
  const uint32_t R = checked_u32(ws[ws.size() - 2], "the rows of w");
  const uint32_t C = checked_u32(ws.back(), "the columns of w");
  const int64_t weights = shape_size(Shape(ws.begin(), ws.end() - 2));
  qmetal_args::DwqVjpArgs args{};
  args.R = R;
  args.C = C;
  args.group_size = static_cast<uint32_t>(w.group_size);
  std::vector<uint32_t> pairs;
  if (ws.size() == 2) {
    args.M = checked_u32(shape_size(Shape(xs.begin(), xs.end() - 1)), "the rows of x");
    args.pairs_per_weight = 1;
    pairs = {0, 0};
  } else {
    // Output matrix z reads x matrix z and dy matrix z (x is not broadcast);
    // its weight matrix follows w's broadcast strides. Each weight matrix
    // sums the pairs of every output matrix that reads it: the same number
    // for each, as broadcasting repeats whole dimensions.
    const Shape out_batch(xs.begin(), xs.end() - 2);
    const Shape w_batch(ws.begin(), ws.end() - 2);
    const int64_t matrices = shape_size(out_batch);
    args.M = checked_u32(xs[xs.size() - 2], "M");
    args.pairs_per_weight = checked_u32(weights == 0 ? 0 : matrices / weights, "the matrices per weight matrix");
    std::vector<int64_t> w_stride(out_batch.size(), 0);
    int64_t stride = 1;
    for (size_t i = 0; i < w_batch.size(); ++i) {
      const size_t d = w_batch.size() - 1 - i, od = out_batch.size() - 1 - i;
      w_stride[od] = w_batch[d] == 1 ? 0 : stride;
      stride *= w_batch[d];
    }
    pairs.assign(size_t(2) * matrices, 0);
    std::vector<uint32_t> filled(size_t(weights), 0);
    for (int64_t z = 0; z < matrices; ++z) {
      int64_t rest = z, wi = 0;
      for (size_t d = out_batch.size(); d-- > 0;) {
        wi += rest % out_batch[d] * w_stride[d];
        rest /= out_batch[d];
      }
      const size_t slot = size_t(wi) * args.pairs_per_weight + filled[wi]++;
      pairs[2 * slot] = pairs[2 * slot + 1] = static_cast<uint32_t>(z);
    }
  }
  checked_u32(int64_t(args.M) * args.pairs_per_weight, "the rows summed into each weight matrix");
  if (weights == 0 || R == 0 || args.M == 0 || args.pairs_per_weight == 0) return {};  // the op writes zeros

  auto pair_buffer = Buffer::allocate(DType::u32, {int64_t(pairs.size())});
  std::memcpy(pair_buffer->data(), pairs.data(), pairs.size() * sizeof(uint32_t));
  DispatchPlan plan;
  plan.kernel = dwq_kernel_name("vjp", x->dtype(), w.kernel_bits());
  plan.set_args(args);
  // Transposed (codes [N, K]): D = dy^T x. Otherwise (codes [K, N]): D = x^T dy.
  plan.bind(qmetal_args::kDwqA, transpose ? dy : x, Access::read);
  plan.bind(qmetal_args::kDwqB, transpose ? x : dy, Access::read);
  plan.bind(qmetal_args::kDwqW, w.packed, Access::read);
  plan.bind(qmetal_args::kDwqDScales, out.d_scales, Access::write);
  plan.bind(qmetal_args::kDwqDBiases, out.d_biases, Access::write);
  plan.bind(qmetal_args::kDwqPairs, pair_buffer, Access::read);
  plan.grid = {C / args.group_size, ceil_div(R, kTile), checked_u32(weights, "the weight matrices")};
  plan.threadgroup = {kTileThreads, 1, 1};
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

namespace detail {

void check_dwq_init_input(const BufferPtr& w, int bits, int group_size) {
  check_codes_format(bits, group_size);
  check_float(w, "w");
  check_groups(w->shape(), group_size, "w");
}

void check_dwq_grads_input(const QuantizedWeight& w, const BufferPtr& dw) {
  check_float(dw, "dw");
  if (dw->shape() != w.shape()) {
    value_error("dw: expected the weight's shape ", shape_str(w.shape()), ", got ", shape_str(dw->shape()));
  }
}

}  // namespace detail

}  // namespace qmetal
