// MLX affine: weight validation, kernel names and the planner.
#include "qmetal/affine.h"

#include <algorithm>

#include "planning.h"
#include "tensor_routes.h"
#include "qmetal/error.h"
#include "qmetal_args.h"

namespace qmetal {

using planning::ceil_div;
using planning::checked_u32;

namespace detail {
// Unpacked weights (csrc/core/dwq.cpp) take group sizes the kernels lack.
void check_affine_kernel_format(const QuantizedWeight& w);
}  // namespace detail

namespace {

using qmetal_args::kMaxBatchDims;
using qmetal_args::kQmvWideRowsLarge;
using qmetal_args::kQmvWideRowsSmall;

// The kernels' geometry (qmetal_args.h, shared with shaders/affine.h).
using qmetal_args::kSimdWidth;
constexpr uint32_t kQmvThreads = kSimdWidth * qmetal_args::kAffineQmvSimdgroups;
constexpr uint32_t kQmvRowsPerThreadgroup = qmetal_args::kAffineQmvSimdgroups * qmetal_args::kAffineQmvRowsPerSimdgroup;
constexpr uint32_t kQvmThreads = kSimdWidth * qmetal_args::kAffineQvmSimdgroups;
constexpr uint32_t kQvmColumnsPerThreadgroup = kSimdWidth * qmetal_args::kAffinePack;  // a pack per lane
constexpr uint32_t kTile = qmetal_args::kTileK;  // 32 x 32 tiles
constexpr uint32_t kTileThreads = qmetal_args::kAffineTileThreads;
constexpr uint32_t kPack = qmetal_args::kAffinePack;
constexpr uint32_t kQuantizeThreads = 128;  // one thread per group or pack: any width

// Threads of a threadgroup of the qmv `kernel` over `grid`: kQmvThreads per
// K slice (planning::mat_vec_threads; shaders/mat_vec.h).
uint32_t qmv_threads(const Device& device, const std::string& kernel, const Dim3& grid, uint32_t K, int bits) {
  const uint64_t simdgroups = grid.volume() * qmetal_args::kAffineQmvSimdgroups;
  const uint64_t lane_steps = ceil_div(K / qmetal_args::affine_step_values(uint32_t(bits)), kSimdWidth);
  return planning::mat_vec_threads(device, kernel, kQmvThreads, simdgroups, lane_steps);
}

bool contains(const int* first, const int* last, int value) { return std::find(first, last, value) != last; }

void check_format(int bits, int group_size) {
  if (!contains(std::begin(kAffineBits), std::end(kAffineBits), bits)) {
    value_error("bits: expected one of 2, 3, 4, 5, 6, 8, got ", bits);
  }
  if (!contains(std::begin(kAffineGroupSizes), std::end(kAffineGroupSizes), group_size)) {
    value_error("group_size: expected one of 32, 64, 128, got ", group_size);
  }
}

void check_float(const Buffer& b, const char* what) {
  if (!dtype_is_float(b.dtype())) {
    type_error(what, ": expected float32, float16 or bfloat16, got ", dtype_name(b.dtype()));
  }
}


// The arguments and bindings every affine matmul kernel takes.
DispatchPlan matmul_plan(const qmetal_args::AffineMatmulArgs& args, const BufferPtr& x, const QuantizedWeight& w,
                         const BufferPtr& y) {
  DispatchPlan plan;
  plan.set_args(args);
  plan.bind(qmetal_args::kAffineX, x, Access::read);
  plan.bind(qmetal_args::kAffineW, w.packed, Access::read);
  plan.bind(qmetal_args::kAffineScales, w.scales, Access::read);
  plan.bind(qmetal_args::kAffineBiases, w.biases, Access::read);
  plan.bind(qmetal_args::kAffineY, y, Access::write);
  return plan;
}

// Strides in matrices of a contiguous batch `shape`, aligned to `out`; 0
// where it broadcasts.
std::vector<uint32_t> batch_strides(const Shape& shape, const Shape& out) {
  std::vector<uint32_t> strides(out.size(), 0);
  uint64_t stride = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const size_t dim = shape.size() - 1 - i;
    const size_t out_dim = out.size() - 1 - i;
    strides[out_dim] = shape[dim] == 1 ? 0 : static_cast<uint32_t>(stride);
    stride *= static_cast<uint64_t>(shape[dim]);
  }
  return strides;
}

}  // namespace

QuantizedWeight QuantizedWeight::from_buffers(BufferPtr packed, BufferPtr scales, BufferPtr biases, int bits,
                                              int group_size) {
  check_format(bits, group_size);
  if (!packed || !scales || !biases) value_error("packed, scales and biases are required");
  if (packed->dtype() != DType::u32) type_error("packed: expected uint32, got ", dtype_name(packed->dtype()));
  check_float(*scales, "scales");
  if (biases->dtype() != scales->dtype()) {
    type_error("biases: expected ", dtype_name(scales->dtype()), " (the dtype of scales), got ",
               dtype_name(biases->dtype()));
  }
  const Shape& p = packed->shape();
  if (p.size() < 2) value_error("packed: expected [..., rows, cols * bits / 32], got shape ", shape_str(p));
  const int64_t cols = p.back() * 32 / bits;
  if (p.back() * 32 % bits != 0 || cols % group_size != 0 || cols == 0) {
    value_error("packed: its last dimension (", p.back(), " words) does not hold a whole number of groups of ",
                group_size, " values of ", bits, " bits");
  }
  Shape groups = p;
  groups.back() = cols / group_size;
  if (scales->shape() != groups) {
    value_error("scales: expected shape ", shape_str(groups), " for packed of shape ", shape_str(p), ", got ",
                shape_str(scales->shape()));
  }
  if (biases->shape() != groups) {
    value_error("biases: expected shape ", shape_str(groups), ", got ", shape_str(biases->shape()));
  }
  return QuantizedWeight{std::move(packed), std::move(scales), std::move(biases), bits, group_size};
}

Shape QuantizedWeight::shape() const {
  Shape s = packed->shape();
  if (!unpacked) s.back() = s.back() * 32 / bits;
  return s;
}

AffineRoute affine_route_from_name(std::string_view name) {
  for (AffineRoute r : {AffineRoute::automatic, AffineRoute::qmv, AffineRoute::qmv_fast, AffineRoute::qmv_wide,
                        AffineRoute::qvm, AffineRoute::qvm_split_k, AffineRoute::qmm, AffineRoute::qmm_split_k,
                        AffineRoute::qmm_sorted, AffineRoute::qmm_tensor}) {
    if (affine_route_name(r) == name) return r;
  }
  value_error("route: expected one of automatic, qmv, qmv_fast, qmv_wide, qvm, qvm_split_k, qmm, qmm_split_k, "
              "qmm_sorted, qmm_tensor, got '",
              std::string(name), "'");
}

std::string_view affine_route_name(AffineRoute route) {
  switch (route) {
    case AffineRoute::automatic: return "automatic";
    case AffineRoute::qmv: return "qmv";
    case AffineRoute::qmv_fast: return "qmv_fast";
    case AffineRoute::qmv_wide: return "qmv_wide";
    case AffineRoute::qvm: return "qvm";
    case AffineRoute::qvm_split_k: return "qvm_split_k";
    case AffineRoute::qmm: return "qmm";
    case AffineRoute::qmm_split_k: return "qmm_split_k";
    case AffineRoute::qmm_sorted: return "qmm_sorted";
    case AffineRoute::qmm_tensor: return "qmm_tensor";
  }
  return "automatic";
}

std::string affine_kernel_name(std::string_view kernel, DType dtype, int group_size, int bits) {
  return "affine_" + std::string(kernel) + "_" + std::string(dtype_name(dtype)) + "_gs" + std::to_string(group_size) +
         "_b" + std::to_string(bits);
}

uint32_t affine_matmat_threshold(const Device& device) {
  // Starting points after MLX's routing (smaller GPUs switch to tiles
  // sooner); to be tuned on hardware with `python -m qmetal bench`.
  struct Entry {
    const char* architecture_prefix;
    uint32_t rows;
  };
  static const Entry kTable[] = {
      {"applegpu_g13", 6},   // M1
      {"applegpu_g14", 8},   // M2
      {"applegpu_g15", 12},  // M3
      {"applegpu_g16", 12},  // M4
      // The cuda backend: on an H200, M = 8 ran 1.3-2x faster as two
      // small-batch passes than as tiles, M = 16 faster as tiles.
      {"sm_", 12},
  };
  constexpr uint32_t kDefault = 8;
  for (const Entry& e : kTable) {
    if (device.architecture().rfind(e.architecture_prefix, 0) == 0) return e.rows;
  }
  return kDefault;
}

uint64_t affine_target_threadgroups(const Device& device) {
  return planning::target_threadgroups(device);
}

uint32_t affine_k_partitions(uint64_t tiles, uint32_t K, uint64_t target_threadgroups) {
  return planning::k_partitions(tiles, K, target_threadgroups);
}

Shape affine_matmul_shape(const Shape& x, const QuantizedWeight& w, bool transpose) {
  const Shape ws = w.shape();
  const int64_t K = transpose ? ws.back() : ws[ws.size() - 2];
  const int64_t N = transpose ? ws[ws.size() - 2] : ws.back();
  if (x.empty()) value_error("x: expected at least one dimension, got a scalar");
  if (x.back() != K) {
    value_error("x: expected last dimension ", K, " (K of the weight of shape ", shape_str(ws),
                transpose ? "" : ", transpose=False", "), got shape ", shape_str(x));
  }
  Shape out;
  if (ws.size() == 2) {
    out = x;
  } else {
    const Shape x_batch = x.size() >= 2 ? Shape(x.begin(), x.end() - 2) : Shape{};
    const Shape w_batch(ws.begin(), ws.end() - 2);
    out = broadcast_shapes(x_batch, w_batch, "x (batch dimensions)", "the weight");
    if (out.size() > kMaxBatchDims) {
      value_error("x: at most ", kMaxBatchDims, " batch dimensions are supported, got ", out.size());
    }
    out.push_back(x.size() >= 2 ? x[x.size() - 2] : 1);
    out.push_back(K);
    if (x.size() == 1) out.erase(out.end() - 2);  // a vector x gives a vector per matrix, as in NumPy
  }
  out.back() = N;
  return out;
}

std::vector<DispatchPlan> plan_affine_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                                             bool transpose, const BufferPtr& y, AffineRoute route) {
  detail::check_affine_kernel_format(w);
  const Shape ws = w.shape();
  const Shape& xs = x->shape();
  const uint32_t K = checked_u32(transpose ? ws.back() : ws[ws.size() - 2], "K");
  const uint32_t N = checked_u32(transpose ? ws[ws.size() - 2] : ws.back(), "N");

  qmetal_args::AffineMatmulArgs args{};
  args.K = K;
  args.N = N;
  args.k_partitions = 1;
  args.k_per_partition = K;
  uint64_t batch = 1;
  if (ws.size() == 2) {
    // every leading dimension folds into M
    args.M = checked_u32(shape_size(Shape(xs.begin(), xs.end() - 1)), "the rows of x");
  } else {
    const Shape x_batch = xs.size() >= 2 ? Shape(xs.begin(), xs.end() - 2) : Shape{};
    const Shape w_batch(ws.begin(), ws.end() - 2);
    const Shape out = broadcast_shapes(x_batch, w_batch, "x (batch dimensions)", "the weight");
    args.M = xs.size() >= 2 ? checked_u32(xs[xs.size() - 2], "M") : 1;
    args.batch_ndim = static_cast<uint32_t>(out.size());
    const auto x_strides = batch_strides(x_batch, out);
    const auto w_strides = batch_strides(w_batch, out);
    for (size_t d = 0; d < out.size(); ++d) {
      args.batch_shape[d] = checked_u32(out[d], "a batch dimension");
      args.x_batch_strides[d] = x_strides[d];
      args.w_batch_strides[d] = w_strides[d];
      batch *= out[d];
    }
  }
  const uint32_t M = args.M;
  if (M == 0 || N == 0 || batch == 0) return {};

  const int bits = w.kernel_bits();
  const uint32_t threshold = affine_matmat_threshold(device);
  const uint64_t target = affine_target_threadgroups(device);
  // qmv_fast: whole threadgroups of rows (no row checks); any K, as qmv.
  const bool fast_ok = transpose && N % kQmvRowsPerThreadgroup == 0;
  const uint64_t tiles = uint64_t(ceil_div(N, kTile)) * ceil_div(M, kTile) * batch;
  if (route == AffineRoute::automatic) {
    if (M >= threshold && transpose && tensor_routes::preferred(device, w.dtype())) {
      route = AffineRoute::qmm_tensor;
    } else if (M >= threshold) {
      route = affine_k_partitions(tiles, K, target) > 1 ? AffineRoute::qmm_split_k : AffineRoute::qmm;
    } else if (!transpose) {
      const uint64_t threadgroups = uint64_t(ceil_div(N, kQvmColumnsPerThreadgroup)) * M * batch;
      route = affine_k_partitions(threadgroups, K, target) > 1 ? AffineRoute::qvm_split_k : AffineRoute::qvm;
    } else {
      // M mat-vecs in one grid, as MLX runs small batches: on the H100
      // (bench/README.md, session 11) qmv_wide, which reads each weight once
      // for 2 or 4 rows, was at most 8% faster (M = 2) and up to 1.6x slower
      // (M = 5, 6) on the Llama shapes; it stays a route to force.
      route = fast_ok ? AffineRoute::qmv_fast : AffineRoute::qmv;
    }
  }
  if (route == AffineRoute::qmm_sorted) value_error("route: 'qmm_sorted' is for gather_matmul");
  const bool mat_vec = route == AffineRoute::qmv || route == AffineRoute::qmv_fast || route == AffineRoute::qmv_wide;
  if (mat_vec && !transpose) {
    value_error("route: '", affine_route_name(route), "' needs transpose=True (use 'qvm' or 'qmm')");
  }
  if ((route == AffineRoute::qvm || route == AffineRoute::qvm_split_k) && transpose) {
    value_error("route: '", affine_route_name(route), "' needs transpose=False");
  }
  if (route == AffineRoute::qmv_fast && !fast_ok) {
    value_error("route: 'qmv_fast' needs transpose=True and N % ", kQmvRowsPerThreadgroup, " == 0, got N = ", N);
  }
  if (route == AffineRoute::qmm_tensor) {
    if (!transpose) value_error("route: 'qmm_tensor' needs transpose=True (use 'qmm')");
    tensor_routes::check_forced(device, "qmm_tensor");
  }
  // An empty reduction (K == 0, possible with transpose=False) has no kernel
  // to run: the result is zeros, which the ops write.
  if (K == 0) return {};

  DispatchPlan plan = matmul_plan(args, x, w, y);
  const uint32_t z = checked_u32(static_cast<int64_t>(batch), "the batch size");
  const DType dtype = w.dtype();
  switch (route) {
    case AffineRoute::qmv:
    case AffineRoute::qmv_fast:
      plan.kernel = affine_kernel_name(affine_route_name(route), dtype, w.group_size, bits);
      plan.grid = {ceil_div(N, kQmvRowsPerThreadgroup), M, z};
      plan.threadgroup = {qmv_threads(device, plan.kernel, plan.grid, K, bits), 1, 1};
      break;
    case AffineRoute::qmv_wide:
    {
      const uint32_t rows = M <= kQmvWideRowsSmall ? kQmvWideRowsSmall : kQmvWideRowsLarge;
      plan.kernel = affine_kernel_name("qmv_wide_r" + std::to_string(rows), dtype, w.group_size, bits);
      plan.grid = {ceil_div(N, kQmvRowsPerThreadgroup), ceil_div(M, rows), z};
      plan.threadgroup = {qmv_threads(device, plan.kernel, plan.grid, K, bits), 1, 1};
      break;
    }
    case AffineRoute::qvm:
    case AffineRoute::qvm_split_k:
      plan.kernel = affine_kernel_name("qvm", dtype, w.group_size, bits);
      plan.grid = {ceil_div(N, kQvmColumnsPerThreadgroup), M, z};
      plan.threadgroup = {kQvmThreads, 1, 1};
      break;
    case AffineRoute::qmm:
    case AffineRoute::qmm_split_k:
    case AffineRoute::qmm_sorted:
    case AffineRoute::automatic:
      plan.kernel = affine_kernel_name(transpose ? "qmm_t" : "qmm_n", dtype, w.group_size, bits);
      plan.grid = {ceil_div(N, kTile), ceil_div(M, kTile), z};
      plan.threadgroup = {kTileThreads, 1, 1};
      break;
    case AffineRoute::qmm_tensor:
      plan.kernel = affine_kernel_name("qmm_t_tensor", dtype, w.group_size, bits);
      tensor_routes::set_geometry(plan, M, N, z);
      break;
  }
  if (route == AffineRoute::qmm_split_k || route == AffineRoute::qvm_split_k) {
    const bool tiled = route == AffineRoute::qmm_split_k;
    const uint64_t threadgroups = uint64_t(plan.grid.x) * plan.grid.y * plan.grid.z;
    // Whole tiles (tiled) or whole simdgroup strides of K per partition.
    const uint32_t step = tiled ? kTile : kQvmThreads / 32;
    const planning::SplitK split = planning::split_k(K, affine_k_partitions(threadgroups, K, target), step);
    qmetal_args::AffineMatmulArgs split_args = args;
    split_args.k_partitions = split.partitions;
    split_args.k_per_partition = split.per_partition;
    const uint64_t count = uint64_t(M) * N * batch;
    auto partials = Buffer::allocate(DType::f32, {int64_t(split_args.k_partitions), int64_t(count)});
    plan.set_args(split_args);
    for (BufferBinding& binding : plan.buffers) {
      if (binding.index == qmetal_args::kAffineY) binding.buffer = partials;  // receives the partial sums
    }
    plan.kernel = affine_kernel_name(!tiled ? "qvm_split" : transpose ? "qmm_t_split" : "qmm_n_split", dtype,
                                     w.group_size, bits);
    plan.grid.z = checked_u32(int64_t(z) * split_args.k_partitions, "the batch times the K partitions");
    plan.validate(device.capabilities());

    return {std::move(plan), planning::sum_partials_plan(device, partials, y, count, split_args.k_partitions)};
  }
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

bool affine_gather_prefers_sorted(const Device& device, bool transpose, int64_t rows_per_matrix, int64_t matrices,
                                  int64_t experts) {
  return transpose && rows_per_matrix == 1 &&
         planning::prefers_sorted_rows(matrices, experts, affine_matmat_threshold(device));
}

std::vector<DispatchPlan> plan_affine_gather_matmul(const Device& device, const BufferPtr& x,
                                                    const QuantizedWeight& w, const BufferPtr& lhs,
                                                    const BufferPtr& rhs, bool transpose, const BufferPtr& y,
                                                    AffineRoute route, const BufferPtr& rows) {
  detail::check_affine_kernel_format(w);
  const Shape ws = w.shape();
  const Shape& xs = x->shape();
  qmetal_args::AffineMatmulArgs args{};
  args.K = checked_u32(transpose ? ws.back() : ws[ws.size() - 2], "K");
  args.N = checked_u32(transpose ? ws[ws.size() - 2] : ws.back(), "N");
  args.M = checked_u32(xs[xs.size() - 2], "M");
  args.k_partitions = 1;
  args.k_per_partition = args.K;
  args.x_matrices = checked_u32(shape_size(Shape(xs.begin(), xs.end() - 2)), "the matrices of x");
  args.w_matrices = checked_u32(shape_size(Shape(ws.begin(), ws.end() - 2)), "the experts");
  const uint32_t matrices = checked_u32(lhs->size(), "the number of output matrices");
  if (route == AffineRoute::automatic) {
    route = rows ? AffineRoute::qmm_sorted
            : args.M >= affine_matmat_threshold(device)
                ? (transpose && tensor_routes::preferred(device, w.dtype()) ? AffineRoute::qmm_tensor : AffineRoute::qmm)
            : transpose ? AffineRoute::qmv : AffineRoute::qvm;
  }
  if (route == AffineRoute::qmm_tensor) {
    if (!transpose) value_error("route: 'qmm_tensor' needs transpose=True (use 'qmm')");
    tensor_routes::check_forced(device, "qmm_tensor");
  }
  if (route == AffineRoute::qmm_sorted) {
    if (!transpose || args.M != 1 || !rows) {
      value_error("route: 'qmm_sorted' needs transpose=True and one row per matrix (x [..., 1, K])");
    }
  } else if (route != AffineRoute::qmm && route != AffineRoute::qmm_tensor &&
             route != (transpose ? AffineRoute::qmv : AffineRoute::qvm)) {
    value_error("route: gather_matmul has routes '", transpose ? "qmv" : "qvm",
                "', 'qmm', 'qmm_tensor' and 'qmm_sorted', got '", affine_route_name(route), "'");
  }
  // Routes are checked first, so that a wrong one is an error whatever the shape.
  if (args.K == 0 || args.M == 0 || args.N == 0 || matrices == 0) return {};  // K == 0: the ops write zeros
  if (route == AffineRoute::qmm_sorted) args.M = matrices;  // the sorted rows form one matrix
  DispatchPlan plan = matmul_plan(args, x, w, y);
  plan.bind(qmetal_args::kAffineLhs, lhs, Access::read);
  plan.bind(qmetal_args::kAffineRhs, rhs, Access::read);
  const DType dtype = w.dtype();
  if (route == AffineRoute::qmm_sorted) {
    plan.bind(qmetal_args::kAffineRows, rows, Access::read);
    plan.kernel = affine_kernel_name("gather_qmm_sorted", dtype, w.group_size, w.kernel_bits());
    plan.grid = {ceil_div(args.N, kTile), ceil_div(matrices, kTile), 1};
    plan.threadgroup = {kTileThreads, 1, 1};
  } else if (route == AffineRoute::qmm_tensor) {
    plan.kernel = affine_kernel_name("gather_qmm_t_tensor", dtype, w.group_size, w.kernel_bits());
    tensor_routes::set_geometry(plan, args.M, args.N, matrices);
  } else if (route == AffineRoute::qmm) {
    plan.kernel =
        affine_kernel_name(transpose ? "gather_qmm_t" : "gather_qmm_n", dtype, w.group_size, w.kernel_bits());
    plan.grid = {ceil_div(args.N, kTile), ceil_div(args.M, kTile), matrices};
    plan.threadgroup = {kTileThreads, 1, 1};
  } else if (transpose) {
    plan.kernel = affine_kernel_name("gather_qmv", dtype, w.group_size, w.kernel_bits());
    plan.grid = {ceil_div(args.N, kQmvRowsPerThreadgroup), args.M, matrices};
    plan.threadgroup = {qmv_threads(device, plan.kernel, plan.grid, args.K, w.kernel_bits()), 1, 1};
  } else {
    plan.kernel = affine_kernel_name("gather_qvm", dtype, w.group_size, w.kernel_bits());
    plan.grid = {ceil_div(args.N, kQvmColumnsPerThreadgroup), args.M, matrices};
    plan.threadgroup = {kQvmThreads, 1, 1};
  }
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

namespace detail {

// Plans of the quantize / dequantize kernels: one thread per group / pack;
// none for an empty weight (an empty result, as mlx gives).
std::vector<DispatchPlan> plan_affine_quantize(const Device& device, const BufferPtr& dense, const QuantizedWeight& w,
                                               bool quantize) {
  detail::check_affine_kernel_format(w);
  const Shape shape = w.shape();
  qmetal_args::AffineQuantizeArgs args{};
  args.K = checked_u32(shape.back(), "K");
  args.rows = checked_u32(shape_size(shape) / shape.back(), "the rows of w");
  const uint64_t items = uint64_t(args.rows) * (quantize ? args.K / w.group_size : args.K / kPack);
  if (items == 0) return {};
  DispatchPlan plan;
  plan.kernel = affine_kernel_name(quantize ? "quantize" : "dequantize", w.dtype(), w.group_size, w.kernel_bits());
  plan.set_args(args);
  const Access dense_access = quantize ? Access::read : Access::write;
  const Access packed_access = quantize ? Access::write : Access::read;
  plan.bind(qmetal_args::kAffineDense, dense, dense_access);
  plan.bind(qmetal_args::kAffinePacked, w.packed, packed_access);
  plan.bind(qmetal_args::kAffineQScales, w.scales, packed_access);
  plan.bind(qmetal_args::kAffineQBiases, w.biases, packed_access);
  plan.grid = {ceil_div(items, kQuantizeThreads), 1, 1};
  plan.threadgroup = {kQuantizeThreads, 1, 1};
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

void check_affine_quantize_input(const Buffer& w, int bits, int group_size) {
  check_format(bits, group_size);
  check_float(w, "w");
  if (w.shape().size() < 2) value_error("w: expected [..., rows, cols], got shape ", shape_str(w.shape()));
  if (w.shape().back() % group_size != 0 || w.shape().back() == 0) {
    value_error("w: the last dimension (", w.shape().back(), ") must be a positive multiple of group_size (",
                group_size, ")");
  }
}

}  // namespace detail

}  // namespace qmetal
