// Helpers the planners share (internal to the core).
#pragma once

#include <algorithm>
#include <cstdint>

#include <string>

#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal/dtype.h"
#include "qmetal/error.h"
#include "qmetal/plan.h"
#include "qmetal_args.h"

namespace qmetal::planning {

inline uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// A count the kernels index with 32 bits; ValueError naming it otherwise.
inline uint32_t checked_u32(int64_t value, const char* what) {
  if (value < 0 || value > int64_t(UINT32_MAX)) value_error(what, " (", value, ") does not fit the kernels' 32-bit indices");
  return static_cast<uint32_t>(value);
}

// MoE: whether rows (one activation row each) should be sorted by expert
// so that each expert's dequantized tiles serve all its rows: when there
// are at least `min_rows` and, on average, enough rows per expert to fill
// half a 32-row tile. A tile walks every expert among its rows over the
// whole K, so few rows per expert cost more than a mat-vec per row: on the
// H200 (bench/README.md) 32 rows over 8 experts ran 5x slower sorted than
// as mat-vecs, 1024 rows 1.9x faster; the cost model there puts the
// crossover near 16 rows per expert. Apple's simdgroup-matrix hardware
// makes tiles cheaper, so its crossover is likely lower (to be measured).
inline bool prefers_sorted_rows(int64_t rows, int64_t experts, int64_t min_rows) {
  constexpr int64_t kMinRowsPerExpert = 16;
  return rows >= std::max(min_rows, kMinRowsPerExpert * experts);
}

// Threadgroups that keep a GPU's cores busy: a few per core when the core
// count is known (MLX targets 512 on any GPU, about 6 per core of an
// Ultra), else as many as the largest Apple GPUs want.
inline uint64_t target_threadgroups(const Device& device) {
  constexpr uint64_t kTargetThreadgroups = 128;
  constexpr uint64_t kThreadgroupsPerCore = 6;
  const uint32_t cores = device.capabilities().gpu_cores;
  return cores ? cores * kThreadgroupsPerCore : kTargetThreadgroups;
}

// Split-K for tiled grids (affine qmm / qvm, GGML mul_mm): how many K
// partitions, each writing float partial sums that a second pass adds. A
// split pays for its partials and that pass only when the tiles fill well
// under the target: on an H200 (target 792), 512 tiles ran 1.2x slower
// split in 2 than unsplit, 448 tiles 1.2x faster. So: at most kSplitMaxFill
// of the target, then at least 2 partitions, each of at least
// kMinKPerPartition values of K.
inline uint32_t k_partitions(uint64_t tiles, uint32_t K, uint64_t target_threadgroups) {
  constexpr uint32_t kMinKPerPartition = 256;
  constexpr double kSplitMaxFill = 4.0 / 7.0;
  if (double(tiles) > kSplitMaxFill * double(target_threadgroups)) return 1;
  const uint64_t wanted = std::max<uint64_t>(2, (target_threadgroups + tiles - 1) / std::max<uint64_t>(tiles, 1));
  return static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(wanted, K / kMinKPerPartition)));
}

// The partitions of a split over K: `wanted` (k_partitions) but at least
// two, so that a forced route exercises the path, each a whole number of
// `step` values (tiles, blocks or simdgroup strides).
struct SplitK {
  uint32_t partitions;
  uint32_t per_partition;
};
inline SplitK split_k(uint32_t K, uint32_t wanted, uint32_t step) {
  const uint32_t partitions = std::max<uint32_t>(2, std::min<uint32_t>(wanted, ceil_div(K, step)));
  const uint32_t per_partition = ceil_div(ceil_div(K, partitions), step) * step;
  return {ceil_div(K, per_partition), per_partition};
}

// The pass after every split kernel: y = the sum over partitions of the
// float partials [partitions][count] (affine_sum_partials_<y dtype>, one
// thread per output).
inline DispatchPlan sum_partials_plan(const Device& device, const BufferPtr& partials, const BufferPtr& y,
                                      uint64_t count, uint32_t partitions) {
  constexpr uint32_t kSumThreads = 256;
  DispatchPlan sum;
  sum.kernel = "affine_sum_partials_" + std::string(dtype_name(y->dtype()));
  sum.set_args(qmetal_args::SumPartialsArgs{checked_u32(int64_t(count), "the output size"), partitions});
  sum.bind(qmetal_args::kPartials, partials, Access::read);
  sum.bind(qmetal_args::kPartialsSum, y, Access::write);
  sum.grid = {ceil_div(count, kSumThreads), 1, 1};
  sum.threadgroup = {kSumThreads, 1, 1};
  sum.validate(device.capabilities());
  return sum;
}

// K slices of a mat-vec grid (shaders/mat_vec.h): how many simdgroups share
// each row's K. A mat-vec simdgroup walks its rows' K step by step, each
// step a round trip to memory, so a grid of few simdgroups takes as long as
// that walk whatever its size: on the H200 (bench/README.md) 1024 x 4096
// took as long as 4096 x 4096. Slices put more simdgroups on the same rows
// until the grid has kSimdgroupsPerThreadgroup per target threadgroup (24 per
// core), at most kMatVecMaxSlices and at most one slice per step of a lane.
inline uint32_t mat_vec_slices(uint64_t simdgroups, uint64_t lane_steps, uint64_t target_threadgroups) {
  constexpr uint64_t kSimdgroupsPerThreadgroup = 4;
  const uint64_t target = target_threadgroups * kSimdgroupsPerThreadgroup;
  const uint64_t wanted = (target + simdgroups - 1) / std::max<uint64_t>(simdgroups, 1);
  return static_cast<uint32_t>(std::clamp<uint64_t>(std::min<uint64_t>(wanted, lane_steps), 1,
                                                    qmetal_args::kMatVecMaxSlices));
}

// Threads of a threadgroup of the mat-vec `kernel` over `simdgroups` (one K
// slice's worth each): threads_per_slice per slice, mat_vec_slices of them,
// but no more than the kernel's threadgroups hold on this device, which its
// registers can make fewer than the device's limit (on the H200, the CUDA
// translation of GGML's mul_mv_ext_r5 held 384 threads and the 3-bit
// qmv_wide_r4 256; 8 slices of 64 asked for 512).
inline uint32_t mat_vec_threads(const Device& device, const std::string& kernel, uint32_t threads_per_slice,
                                uint64_t simdgroups, uint64_t lane_steps) {
  const uint32_t fitting = std::max<uint32_t>(device.max_threads_per_threadgroup(kernel) / threads_per_slice, 1);
  return threads_per_slice *
         std::min(mat_vec_slices(simdgroups, lane_steps, target_threadgroups(device)), fitting);
}

// Small batches (M below the mat-mat threshold) of a type whose multi-row
// mat-vec pays (GGMLType::mv_ext): whether to run M mat-vecs in
// one grid rather than the kernel that reads each weight once for several
// rows. While that grid stays within kGridFill times the target, its extra
// rows fill idle cores and find the weights in the GPU's cache. On the H100
// (bench/README.md, session 11), for Q4_0, Q8_0, Q4_K and Q5_K on the four
// Llama shapes, this picked the faster of the two in all 16 cases at M = 2
// and in 39 of 48 at M = 4, 6 and 8, the other 9 within 11%; rows up to
// M = 4 whatever the grid (as before) lost up to 1.37x (Q8_0, 14336 x 4096).
// One row is always a mat-vec: the multi-row kernel would leave rows idle.
inline bool prefers_row_mat_vecs(uint32_t M, uint64_t threadgroups_per_row, uint64_t target_threadgroups) {
  constexpr uint64_t kGridFill = 2;
  return M == 1 || threadgroups_per_row * M <= kGridFill * target_threadgroups;
}

}  // namespace qmetal::planning
