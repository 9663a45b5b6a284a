// GGML: the type table, weight validation, kernel names and the planner.
#include "qmetal/ggml.h"

#include <algorithm>
#include <cctype>

#include "planning.h"
#include "tensor_routes.h"
#include "qmetal/error.h"
#include "qmetal_args.h"

namespace qmetal {

using planning::ceil_div;
using planning::checked_u32;

namespace {

// Geometry of the kernels (qmetal_args.h, shared with shaders/ggml.h).
constexpr uint32_t kMvSimdgroups = qmetal_args::kGGMLMvSimdgroups;
constexpr uint32_t kMvThreads = qmetal_args::kSimdWidth * kMvSimdgroups;
// mul_mv_ext holds up to this many x rows per threadgroup: each row adds
// kPart floats of pre-scaled activations and `mv_rows` accumulators per
// lane, so more cut occupancy (audit F6). llama.cpp's r1ptg goes to 5; on
// the H100 our 5-row kernel ran slower at M = 5 than two passes of 3 rows
// at M = 6, for every type and Llama shape but one (bench/README.md).
constexpr uint32_t kMvExtMinRows = 2;
constexpr uint32_t kMvExtMaxRows = 4;
constexpr uint32_t kMmRowsW = qmetal_args::kGGMLMmRowsW;
constexpr uint32_t kMmRowsX = qmetal_args::kGGMLMmRowsX;
constexpr uint32_t kMmThreads = qmetal_args::kGGMLMmThreads;
constexpr uint32_t kMmMinK = 64;         // llama.cpp's too: shorter rows do not pay for the tiles
constexpr uint32_t kMvMaxBatch = 8;      // mat-vecs (mul_mv rows or mul_mv_ext) up to here, as llama.cpp
constexpr uint32_t kChunk = qmetal_args::kGGMLChunk;
constexpr uint32_t kPart = qmetal_args::kGGMLMvPart;
constexpr uint32_t kDequantizeThreads = 128;
constexpr uint32_t kMmK = qmetal_args::kTileK;  // K per mul_mm step

// mul_mm split over K (as the affine qmm_split_k): `tiles` is the mul_mm
// plan; its partitions (planning::split_k: whole blocks and K steps) write
// float partials, which planning::sum_partials_plan adds into y.
std::vector<DispatchPlan> split_k_plans(const Device& device, DispatchPlan tiles, qmetal_args::GGMLMatmulArgs args,
                                        const GGMLType& type, DType activations, const BufferPtr& y) {
  const uint32_t step = std::max<uint32_t>(type.block_values, kMmK);
  const uint32_t wanted = planning::k_partitions(tiles.grid.volume(), args.K, planning::target_threadgroups(device));
  const planning::SplitK split = planning::split_k(args.K, wanted, step);
  args.k_partitions = split.partitions;
  args.k_per_partition = split.per_partition;
  const uint64_t count = uint64_t(args.M) * args.N;
  auto partials = Buffer::allocate(DType::f32, {int64_t(args.k_partitions), int64_t(count)});
  tiles.set_args(args);
  for (BufferBinding& binding : tiles.buffers) {
    if (binding.index == qmetal_args::kGGMLY) binding.buffer = partials;  // receives the partial sums
  }
  tiles.grid.z = args.k_partitions;
  tiles.kernel = ggml_kernel_name("mul_mm_split", type, activations, DType::f32);
  tiles.validate(device.capabilities());

  return {std::move(tiles), planning::sum_partials_plan(device, partials, y, count, args.k_partitions)};
}

// x rows per mul_mv_ext threadgroup for M rows: the fewest passes over the
// weights (each pass reads all of w), then rows spread evenly over them, so
// M = 4 reads w once and M = 6 reads it twice with 3 rows each, not 4 + 2.
uint32_t mv_ext_rows(uint32_t M) {
  const uint32_t passes = ceil_div(M, kMvExtMaxRows);
  return std::max(kMvExtMinRows, ceil_div(M, passes));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

// mv_ext: whether mul_mv_ext, which reads each weight once for up to
// kMvExtMaxRows x rows, beats M rows of mul_mv (each weight read M times,
// from the cache after the first) on grids that fill the GPU. On the H100
// (bench/README.md, session 11's bench/cuda_sweep.py), best K slices each:
// Q4_0, Q8_0 and Q5_K ran 1.1-1.5x faster as mul_mv_ext at M = 2..8 on
// 14336 x 4096, Q4_K level (0.94-1.10); Q2_K, Q3_K and Q6_K ran 1.1-2x
// slower on every Llama shape (their mul_mv_ext translation holds 168
// registers, mul_mv 56-80: a third of the threads in flight per core); so
// did Q5_0 and Q5_1 at M = 4..8 (1.06-1.22x; 200 registers, a select per
// value for their fifth bits). Q4_1 as Q4_0; F16 2.3-2.8x faster as
// mul_mv_ext at M >= 4. As llama.cpp, which gates its mul_mv_ext by type too.
const std::vector<GGMLType>& ggml_types() {
  using namespace qmetal_args;
  constexpr bool kMvExt = true, kMvRows = false;
  static const std::vector<GGMLType> types = {
      {"Q4_0", "q4_0", 2, 32, 18, kGGMLMvRowsQ4_0, kGGMLMvPartQ4_0, kGGMLWordQ4_0, kMvExt},
      {"Q4_1", "q4_1", 3, 32, 20, kGGMLMvRowsQ4_1, kGGMLMvPartQ4_1, kGGMLWordQ4_1, kMvExt},
      {"Q5_0", "q5_0", 6, 32, 22, kGGMLMvRowsQ5_0, kGGMLMvPart, kGGMLWordQ5_0, kMvRows},
      {"Q5_1", "q5_1", 7, 32, 24, kGGMLMvRowsQ5_1, kGGMLMvPart, kGGMLWordQ5_1, kMvRows},
      {"Q8_0", "q8_0", 8, 32, 34, kGGMLMvRowsQ8_0, kGGMLMvPartQ8_0, kGGMLWordQ8_0, kMvExt},
      {"Q2_K", "q2_k", 10, 256, 84, kGGMLMvRowsQ2_K, kGGMLMvPartQ2_K, kGGMLWordQ2_K, kMvRows},
      {"Q3_K", "q3_k", 11, 256, 110, kGGMLMvRowsQ3_K, kGGMLMvPartQ3_K, kGGMLWordQ3_K, kMvRows},
      {"Q4_K", "q4_k", 12, 256, 144, kGGMLMvRowsQ4_K, kGGMLMvPartQ4_K, kGGMLWordQ4_K, kMvExt},
      {"Q5_K", "q5_k", 13, 256, 176, kGGMLMvRowsQ5_K, kGGMLMvPartQ5_K, kGGMLWordQ5_K, kMvExt},
      {"Q6_K", "q6_k", 14, 256, 210, kGGMLMvRowsQ6_K, kGGMLMvPartQ6_K, kGGMLWordQ6_K, kMvRows},
      {"F32", "f32", 0, 16, 64, kGGMLMvRowsF32, kGGMLMvPart, kGGMLWordF32, kMvExt},
      {"F16", "f16", 1, 16, 32, kGGMLMvRowsF16, kGGMLMvPart, kGGMLWordF16, kMvExt},
      {"BF16", "bf16", 30, 16, 32, kGGMLMvRowsBF16, kGGMLMvPart, kGGMLWordBF16, kMvExt},
  };
  return types;
}

const GGMLType& ggml_type(std::string_view name) {
  const std::string wanted = lower(name);
  std::string known;
  for (const GGMLType& t : ggml_types()) {
    if (wanted == t.kernel_name) return t;
    known += (known.empty() ? "" : ", ") + std::string(t.name);
  }
  value_error("type: expected one of ", known, ", got '", std::string(name), "'");
}

size_t GGMLWeight::expected_bytes() const {
  // Shapes come from model files, which are untrusted: a product that wraps
  // would let a 64-byte buffer pass for an exabyte-sized tensor.
  const int64_t rows = shape.back() == 0 ? 0 : shape_size(shape) / shape.back();
  size_t row_bytes = 0, total = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(shape.back() / type->block_values), type->block_bytes, &row_bytes) ||
      __builtin_mul_overflow(static_cast<size_t>(rows), row_bytes, &total)) {
    value_error("shape: ", shape_str(shape), " as ", type->name, " takes more than 2^64 bytes");
  }
  return total;
}

GGMLWeight GGMLWeight::from_buffer(BufferPtr data, std::string_view type_name, Shape shape, size_t offset) {
  const GGMLType& type = ggml_type(type_name);
  if (!data) value_error("data is required");
  if (data->dtype() != DType::u8) type_error("data: expected the raw blocks as uint8, got ", dtype_name(data->dtype()));
  if (shape.size() < 2) value_error("shape: expected [..., N, K], got ", shape_str(shape));
  shape_size(shape, "shape");
  // The kernels read whole 32-value steps; the dense types' blocks are 16 values.
  const int64_t multiple = std::max<int64_t>(type.block_values, kMmK);
  if (shape.back() <= 0 || shape.back() % multiple != 0) {
    value_error("shape: K (", shape.back(), ") must be a positive multiple of ", multiple, " for ", type.name,
                type.block_values >= kMmK ? " (its block size)" : "");
  }
  // Blocks start on the kernels' widest loads of them (2 or 4 bytes; GGUF
  // aligns tensors to 32). A GPU faults on a misaligned read: the cuda
  // backend did, at an F32 weight 2 bytes into its buffer.
  const size_t alignment = type.alignment;
  if (offset % alignment != 0) {
    value_error("offset: expected a multiple of ", alignment, " bytes for ", type.name, ", got ", offset);
  }
  GGMLWeight w{std::move(data), &type, std::move(shape), offset};
  if (offset > w.data->nbytes() || w.data->nbytes() - offset < w.expected_bytes()) {
    value_error("data: ", shape_str(w.shape), " as ", type.name, " takes ", w.expected_bytes(), " bytes from offset ",
                offset, ", but the buffer has ", w.data->nbytes(), " bytes (short)");
  }
  return w;
}

GGMLRoute ggml_route_from_name(std::string_view name) {
  for (GGMLRoute r : {GGMLRoute::automatic, GGMLRoute::mv, GGMLRoute::mv_ext, GGMLRoute::mm, GGMLRoute::mm_split_k,
                      GGMLRoute::mv_id, GGMLRoute::mm_id, GGMLRoute::mm_tensor, GGMLRoute::mm_id_tensor}) {
    if (ggml_route_name(r) == name) return r;
  }
  value_error("route: expected one of automatic, mv, mv_ext, mm, mm_split_k, mv_id, mm_id, mm_tensor, mm_id_tensor, "
              "got '", std::string(name), "'");
}

std::string_view ggml_route_name(GGMLRoute route) {
  switch (route) {
    case GGMLRoute::automatic: return "automatic";
    case GGMLRoute::mv: return "mv";
    case GGMLRoute::mv_ext: return "mv_ext";
    case GGMLRoute::mm: return "mm";
    case GGMLRoute::mm_split_k: return "mm_split_k";
    case GGMLRoute::mv_id: return "mv_id";
    case GGMLRoute::mm_id: return "mm_id";
    case GGMLRoute::mm_tensor: return "mm_tensor";
    case GGMLRoute::mm_id_tensor: return "mm_id_tensor";
  }
  return "automatic";
}

std::string ggml_kernel_name(std::string_view kernel, const GGMLType& type, DType activations, DType output) {
  return "ggml_" + std::string(kernel) + "_" + type.kernel_name + "_" + std::string(dtype_name(activations)) + "_" +
         std::string(dtype_name(output));
}

std::vector<DispatchPlan> plan_ggml_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w,
                                           const BufferPtr& y, uint32_t M, uint32_t head_dim, GGMLRoute route,
                                           const GGMLRows* rows) {
  const uint32_t K = checked_u32(w.shape.back(), "K");
  const uint32_t N = checked_u32(w.shape[w.shape.size() - 2], "N");
  qmetal_args::GGMLMatmulArgs args{};
  args.N = N;
  args.K = K;
  // With one row, head-major [heads, 1, head_dim] is row-major: the kernels
  // then address x without dividing by head_dim at all (audit F9).
  args.x_head_dim = M == 1 ? 0 : head_dim;
  args.expert_rows = N;
  args.k_partitions = 1;
  args.k_per_partition = K;
  const bool row_list = rows != nullptr;
  args.M = row_list ? rows->count : M;
  args.x_rows = args.x_head_dim ? M : 0;
  if (args.M == 0 || N == 0) return {};
  if (route == GGMLRoute::automatic) {
    if (row_list) {
      route = rows->rows ? GGMLRoute::mm_id : GGMLRoute::mv_id;
    } else {
      const uint64_t mv_threadgroups = ceil_div(N, kMvSimdgroups * w.type->mv_rows);
      const bool mat_vecs = args.M <= kMvMaxBatch || K < kMmMinK;
      const uint64_t tiles = uint64_t(ceil_div(N, kMmRowsW)) * ceil_div(args.M, kMmRowsX);
      route = !mat_vecs ? (planning::k_partitions(tiles, K, planning::target_threadgroups(device)) > 1
                               ? GGMLRoute::mm_split_k
                               : GGMLRoute::mm)
              : !w.type->mv_ext || planning::prefers_row_mat_vecs(args.M, mv_threadgroups,
                                                                  planning::target_threadgroups(device))
                  ? GGMLRoute::mv
                  : GGMLRoute::mv_ext;
    }
    if (tensor_routes::preferred(device, x->dtype())) {
      if (route == GGMLRoute::mm || route == GGMLRoute::mm_split_k) route = GGMLRoute::mm_tensor;
      if (route == GGMLRoute::mm_id) route = GGMLRoute::mm_id_tensor;
    }
  }
  if (route == GGMLRoute::mm_tensor || route == GGMLRoute::mm_id_tensor) {
    tensor_routes::check_forced(device, route == GGMLRoute::mm_tensor ? "mm_tensor" : "mm_id_tensor");
  }
  const bool wants_rows = route == GGMLRoute::mv_id || route == GGMLRoute::mm_id || route == GGMLRoute::mm_id_tensor;
  if (wants_rows != row_list) {
    value_error("route: '", ggml_route_name(route),
                wants_rows ? "' runs row lists (gather_matmul, stacked weights); one weight matrix takes mv, mv_ext, mm or "
                             "mm_split_k"
                           : "' runs one weight matrix; gather_matmul and stacked weights take mv_id or mm_id");
  }
  if ((route == GGMLRoute::mm_id || route == GGMLRoute::mm_id_tensor) && !rows->rows) {
    value_error("route: '", ggml_route_name(route), "' needs the rows sorted by expert");
  }

  DispatchPlan plan;
  plan.set_args(args);
  plan.bind(qmetal_args::kGGMLX, x, Access::read);
  plan.bind(qmetal_args::kGGMLW, w.data, Access::read, w.offset, w.expected_bytes());
  plan.bind(qmetal_args::kGGMLY, y, Access::write);
  if (row_list) {
    plan.bind(qmetal_args::kGGMLLhs, rows->lhs, Access::read);
    plan.bind(qmetal_args::kGGMLRhs, rows->rhs, Access::read);
    if (route == GGMLRoute::mm_id || route == GGMLRoute::mm_id_tensor) {
      plan.bind(qmetal_args::kGGMLRows, rows->rows, Access::read);
    }
  }
  const uint32_t mv_rows_per_group = kMvSimdgroups * w.type->mv_rows;
  std::string kernel = "mul_" + std::string(ggml_route_name(route));
  if (route == GGMLRoute::mv_ext) kernel += "_r" + std::to_string(mv_ext_rows(args.M));
  plan.kernel = ggml_kernel_name(kernel, *w.type, x->dtype(), y->dtype());
  // kMvThreads per K slice (planning::mat_vec_threads; shaders/mat_vec.h).
  const auto mv_threads = [&](const Dim3& grid) {
    const uint32_t part = route == GGMLRoute::mv_ext ? kPart : w.type->mv_part;  // MvParts in shaders/ggml.h
    const uint64_t lane_steps = ceil_div(K / part, qmetal_args::kSimdWidth);
    return planning::mat_vec_threads(device, plan.kernel, kMvThreads, grid.volume() * kMvSimdgroups, lane_steps);
  };
  switch (route) {
    case GGMLRoute::mv:
    case GGMLRoute::mv_id:
      plan.grid = {ceil_div(N, mv_rows_per_group), args.M, 1};
      plan.threadgroup = {mv_threads(plan.grid), 1, 1};
      break;
    case GGMLRoute::mv_ext:
      plan.grid = {ceil_div(N, mv_rows_per_group), ceil_div(args.M, mv_ext_rows(args.M)), 1};
      plan.threadgroup = {mv_threads(plan.grid), 1, 1};
      break;
    case GGMLRoute::mm:
    case GGMLRoute::mm_split_k:
    case GGMLRoute::mm_id:
    case GGMLRoute::automatic:
      plan.grid = {ceil_div(N, kMmRowsW), ceil_div(args.M, kMmRowsX), 1};
      plan.threadgroup = {kMmThreads, 1, 1};
      break;
    case GGMLRoute::mm_tensor:
    case GGMLRoute::mm_id_tensor:
      tensor_routes::set_geometry(plan, args.M, N, 1);
      break;
  }
  if (route == GGMLRoute::mm_split_k) return split_k_plans(device, std::move(plan), args, *w.type, x->dtype(), y);
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

bool ggml_gather_prefers_sorted(int64_t rows, int64_t experts) {
  return planning::prefers_sorted_rows(rows, experts, kMmRowsX);
}

namespace detail {

std::vector<DispatchPlan> plan_ggml_dequantize(const Device& device, const GGMLWeight& w, const BufferPtr& out) {
  qmetal_args::GGMLDequantizeArgs args{};
  args.K = checked_u32(w.shape.back(), "K");
  args.rows = checked_u32(shape_size(w.shape) / w.shape.back(), "the rows of w");
  if (args.rows == 0) return {};  // an empty weight: an empty result
  DispatchPlan plan;
  plan.kernel = "ggml_dequantize_" + std::string(w.type->kernel_name) + "_" + std::string(dtype_name(out->dtype()));
  plan.set_args(args);
  plan.bind(qmetal_args::kGGMLW, w.data, Access::read, w.offset, w.expected_bytes());
  plan.bind(qmetal_args::kGGMLY, out, Access::write);
  plan.grid = {ceil_div(uint64_t(args.rows) * (args.K / kChunk), kDequantizeThreads), 1, 1};
  plan.threadgroup = {kDequantizeThreads, 1, 1};
  plan.validate(device.capabilities());
  return {std::move(plan)};
}

}  // namespace detail

}  // namespace qmetal
