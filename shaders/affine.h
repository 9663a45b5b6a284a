// MLX affine kernels: y = x @ dequant(w)^T (or x @ dequant(w)), where each
// group of `group_size` codes of a row shares a scale and a bias and a row's
// codes are one LSB-first bit stream. Eight codes of b bits fill exactly b
// bytes, so every kernel decodes whole 8-code "packs" and one routine serves
// all widths. Instantiated in affine_*.metal; the host names kernels with
// affine_kernel_name() from the same parts.
#pragma once

#include <metal_stdlib>

#include "mat_vec.h"
#include "qmetal_args.h"
#include "tile.h"

using namespace metal;
using namespace qmetal_args;

namespace affine {

constant constexpr int kPack = int(kAffinePack);  // codes per pack

// The bits of pack `pack` of a row whose packs start at `row`.
template <int bits>
inline ulong load_pack(const device uint8_t* row, uint pack) {
  const device uint8_t* bytes = row + pack * bits;
  ulong stream = 0;
  for (int i = 0; i < bits; ++i) stream |= ulong(bytes[i]) << (8 * i);
  return stream;
}

// The 8 codes of a pack.
template <int bits>
inline void unpack(const device uint8_t* row, uint pack, thread float* q) {
  const ulong stream = load_pack<bits>(row, pack);
  for (int j = 0; j < kPack; ++j) q[j] = float(uint(stream >> (bits * j)) & ((1u << bits) - 1u));
}

// --- the decode inner loop: 32-bit words, codes masked in place -------------------------

// What one lane decodes per step (affine_step_values): every load is an
// aligned word (rows start on words: K is a multiple of 32).
template <int bits>
struct WordStep {
  static constant constexpr int values = int(affine_step_values(bits));
  static constant constexpr int words = values * bits / 32;
};

// Activations of one step pre-scaled so that codes need no shift: code j
// starts at bit s = (bits * j) % 32 of its word, so `word & (mask << s)` is
// code * 2^s and x * 2^-s undoes it exactly (a power of two). A code that
// straddles two words (3, 5 and 6 bits) takes two terms, the high part's
// activation scaled by 2^(32 - s). Each product is then one 32-bit AND, one
// u32->float convert and one FMA: no 64-bit integers, no per-value shift.
template <int bits>
struct ScaledActivations {
  float low[WordStep<bits>::values];
  float high[WordStep<bits>::values];  // straddling codes only
  float sum;
};

// x: the step's activations, on 16 values (rows start on 32: K is a
// multiple of 32), read 4 at a time.
template <int bits, typename T>
inline void scale_activations(const device T* x, bool in_range, thread ScaledActivations<bits>& xs) {
  xs.sum = 0.0f;
  const device vec<T, 4>* quads = reinterpret_cast<const device vec<T, 4>*>(x);
  for (int q = 0; q < WordStep<bits>::values / 4; ++q) {
    const float4 quad = in_range ? float4(quads[q]) : float4(0.0f);
    for (int i = 0; i < 4; ++i) {
      const int j = 4 * q + i, shift = (bits * j) % 32;
      xs.sum += quad[i];
      xs.low[j] = quad[i] * exp2(-float(shift));
      xs.high[j] = quad[i] * exp2(float(32 - shift));
    }
  }
}

// sum_j code_j * x_j over one step of a row, from its words.
template <int bits>
inline float dot_words(const device uint32_t* words, thread const ScaledActivations<bits>& xs) {
  constexpr uint mask = (1u << bits) - 1u;
  uint w[WordStep<bits>::words];
  for (int i = 0; i < WordStep<bits>::words; ++i) w[i] = words[i];
  float dot = 0.0f;
  for (int j = 0; j < WordStep<bits>::values; ++j) {
    const int word = bits * j / 32, shift = (bits * j) % 32;
    dot += float(w[word] & (mask << shift)) * xs.low[j];
    if (shift + bits > 32) dot += float(w[word + 1] & (mask >> (32 - shift))) * xs.high[j];
  }
  return dot;
}

// Which x and w matrices matrix z of a batched matmul reads: by broadcast
// strides, or (gather) from the index buffers.
template <bool gather>
inline void batch_matrices(constant AffineMatmulArgs& args, const device uint32_t* lhs, const device uint32_t* rhs,
                           uint z, thread ulong& x_matrix, thread ulong& w_matrix) {
  if (gather) {
    // Clamped: indices read on the device are checked after the kernel
    // (gather_check), and until then must not take a read out of bounds.
    x_matrix = min(lhs[z], args.x_matrices - 1);
    w_matrix = min(rhs[z], args.w_matrices - 1);
    return;
  }
  x_matrix = 0;
  w_matrix = 0;
  for (int d = int(args.batch_ndim) - 1; d >= 0; --d) {
    const uint position = z % args.batch_shape[d];
    z /= args.batch_shape[d];
    x_matrix += ulong(position) * args.x_batch_strides[d];
    w_matrix += ulong(position) * args.w_batch_strides[d];
  }
}

inline uint batch_count(constant AffineMatmulArgs& args) {
  uint count = 1;
  for (uint d = 0; d < args.batch_ndim; ++d) count *= args.batch_shape[d];
  return count;
}

// --- mat-vec, transposed weights ---------------------------------------------------

constant constexpr int kQmvSimdgroups = int(kAffineQmvSimdgroups);
constant constexpr int kQmvRowsPerSimdgroup = int(kAffineQmvRowsPerSimdgroup);

// Each simdgroup owns kQmvRowsPerSimdgroup rows of w, or a K slice of them
// (mat_vec.h); per step lane l of slice s reads the words of step
// 32 s + l, + 32 * slices, ... of each row (WordStep: 16 or 32 codes,
// 2 to 5 words), so a simdgroup reads 128 to 640 consecutive bytes of a row.
// Every step is decoded once per row and applied to `x_rows` activation rows
// (1 for mat-vec, more for small batches). Any K (a multiple of the group
// size, so of the step); `aligned`: N is a multiple of the rows per
// threadgroup, so no simdgroup needs a row clamp.
template <typename T, int group_size, int bits, bool aligned, int x_rows, bool gather = false>
void qmv(constant AffineMatmulArgs& args, const device T* x, const device uint8_t* w, const device T* scales,
         const device T* biases, device T* y, const device uint32_t* lhs, const device uint32_t* rhs, uint3 group,
         mat_vec::Slicing slicing, uint lane, threadgroup float* slice_sums) {
  using Step = WordStep<bits>;
  static_assert(group_size % Step::values == 0, "a step stays within one group");
  const uint M = args.M, N = args.N, K = args.K;
  const uint row_words = K * bits / 32;
  const uint groups_per_row = K / group_size;
  const uint steps = K / Step::values;
  ulong x_matrix, w_matrix;
  batch_matrices<gather>(args, lhs, rhs, group.z, x_matrix, w_matrix);
  x += x_matrix * M * K;
  const device uint32_t* w_words = reinterpret_cast<const device uint32_t*>(w) + w_matrix * N * row_words;
  scales += w_matrix * N * groups_per_row;
  biases += w_matrix * N * groups_per_row;
  y += ulong(group.z) * M * N;

  const uint n0 = (group.x * kQmvSimdgroups + slicing.row_group) * kQmvRowsPerSimdgroup;
  const uint m0 = group.y * x_rows;
  float acc[x_rows][kQmvRowsPerSimdgroup];
  for (int m = 0; m < x_rows; ++m)
    for (int r = 0; r < kQmvRowsPerSimdgroup; ++r) acc[m][r] = 0.0f;

  for (uint step = slicing.slice * kSimdWidth + lane; step < steps; step += slicing.slices * kSimdWidth) {
    ScaledActivations<bits> xs[x_rows];
    for (int m = 0; m < x_rows; ++m) {
      const bool in_range = x_rows == 1 || m0 + m < M;  // one row: the grid has exactly M rows
      scale_activations<bits>(x + ulong(in_range ? m0 + m : m0) * K + step * Step::values, in_range, xs[m]);
    }
    const uint g = step * Step::values / group_size;
    for (int r = 0; r < kQmvRowsPerSimdgroup; ++r) {
      // Rows past N (a ragged last threadgroup) read row N - 1, whose sums
      // store_sums drops: no branch, so every row's loads can be in flight at once.
      const uint n = aligned ? n0 + r : min(n0 + r, N - 1);
      const float dot_scale = float(scales[ulong(n) * groups_per_row + g]);
      const float bias = float(biases[ulong(n) * groups_per_row + g]);
      const device uint32_t* words = w_words + ulong(n) * row_words + step * Step::words;
      for (int m = 0; m < x_rows; ++m) acc[m][r] += dot_scale * dot_words<bits>(words, xs[m]) + bias * xs[m].sum;
    }
  }
  mat_vec::store_sums<kQmvSimdgroups>(acc, slicing, lane, M, N, m0, n0, y, slice_sums);
}

// Threadgroup floats for the K slices' sums of qmv with x_rows activation rows.
template <int x_rows>
using QmvSliceSums = mat_vec::SliceSums<kQmvSimdgroups, kQmvRowsPerSimdgroup, x_rows>;

// --- mat-vec, weights not transposed (w [K, N], groups along N) -----------------------

constant constexpr int kQvmSimdgroups = int(kAffineQvmSimdgroups);
// Floats of the partial sums the simdgroups add in threadgroup memory.
constant constexpr int kQvmPartials = kQvmSimdgroups * kSimdWidth * kPack;

// Lane l of every simdgroup owns output pack (8 columns) 32 * group.x + l;
// the simdgroups split K and add their partial sums in threadgroup memory.
// Split-K (`split`) as in qmm: grid.z also counts K partitions, each writing
// float partial sums.
template <typename T, int group_size, int bits, bool gather = false, bool split = false, typename Out = T>
void qvm(constant AffineMatmulArgs& args, const device T* x, const device uint8_t* w, const device T* scales,
         const device T* biases, device Out* y, const device uint32_t* lhs, const device uint32_t* rhs, uint3 group,
         uint simd_group, uint lane, threadgroup float* partial) {
  const uint M = args.M, N = args.N, K = args.K;
  const uint row_bytes = N * bits / 8;
  const uint groups_per_row = N / group_size;
  const uint partition = split ? group.z % args.k_partitions : 0;
  const uint z = split ? group.z / args.k_partitions : group.z;
  ulong x_matrix, w_matrix;
  batch_matrices<gather>(args, lhs, rhs, z, x_matrix, w_matrix);
  x += x_matrix * M * K;
  w += w_matrix * K * row_bytes;
  scales += w_matrix * K * groups_per_row;
  biases += w_matrix * K * groups_per_row;
  y += (ulong(partition) * batch_count(args) + z) * M * N;
  const uint k_begin = split ? partition * args.k_per_partition : 0;
  const uint k_end = split ? min(K, k_begin + args.k_per_partition) : K;

  const uint pack = group.x * kSimdWidth + lane;
  const bool in_range = pack < N / kPack;
  const uint m = group.y;
  float acc[kPack];
  for (int j = 0; j < kPack; ++j) acc[j] = 0.0f;
  if (in_range) {
    const uint g = pack * kPack / group_size;
    for (uint k = k_begin + simd_group; k < k_end; k += kQvmSimdgroups) {
      const float xv = float(x[ulong(m) * K + k]);
      float q[kPack];
      unpack<bits>(w + ulong(k) * row_bytes, pack, q);
      const float scale = float(scales[ulong(k) * groups_per_row + g]);
      const float bias = float(biases[ulong(k) * groups_per_row + g]);
      for (int j = 0; j < kPack; ++j) acc[j] += xv * (scale * q[j] + bias);
    }
  }
  for (int j = 0; j < kPack; ++j) partial[(simd_group * kSimdWidth + lane) * kPack + j] = acc[j];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (simd_group == 0 && in_range) {
    for (int j = 0; j < kPack; ++j) {
      float total = 0.0f;
      for (int s = 0; s < kQvmSimdgroups; ++s) total += partial[(s * kSimdWidth + lane) * kPack + j];
      y[ulong(m) * N + pack * kPack + j] = Out(total);
    }
  }
}

// --- mat-mat: 32 x 32 output tiles ---------------------------------------------------

constant constexpr int kTile = tile::kK;     // rows of x, rows of w and K per step
constant constexpr int kTileStride = kTile + 4;  // padded rows spread threadgroup-memory banks
constant constexpr int kTileThreads = int(kAffineTileThreads);  // 4 simdgroups, each a 16 x 16 quarter
constant constexpr int kLoadsPerThread = kTile * kTile / kTileThreads;  // one pack each
// Floats of one staged tile (x or w); kernels declare two (MSL allows
// threadgroup variables only in kernels, so helpers take pointers).
constant constexpr int kTileFloats = kTile * kTileStride;

static_assert(kTileStride % 4 == 0 && kPack % 4 == 0, "staged packs are whole, aligned float4s (tile::store4)");

// The pack at column k (kPack values) of an x row for a tile, or zeros where
// the row is not `live`. With transposed weights K is a multiple of the
// group size and so of the tile: the pack is whole and starts on kPack
// values (rows start on 32), read as vectors. Otherwise K is free: value by
// value, zero past K.
template <bool whole_tiles, typename T>
inline void read_x_pack(const device T* row, bool live, uint K, uint k, thread float* out) {
  if (!live) {
    for (int j = 0; j < kPack; ++j) out[j] = 0.0f;
    return;
  }
  if (whole_tiles) {
    tile::load4<kPack>(row + k, out);
  } else {
    for (int j = 0; j < kPack; ++j) out[j] = k + j < K ? float(row[k + j]) : 0.0f;
  }
}

// x and the dequantized w tile are staged in threadgroup memory as float and
// multiplied with 8x8 simdgroup matrices, accumulating in float; each w pack
// is decoded once per tile and reused by all 32 rows of x.
// Split-K (`split`): grid.z also counts K partitions, and each writes its
// float partial sums (summed by affine_sum_partials) instead of y.
template <typename T, int group_size, int bits, bool transpose, bool gather = false, bool split = false,
          typename Out = T>
void qmm(constant AffineMatmulArgs& args, const device T* x, const device uint8_t* w, const device T* scales,
         const device T* biases, device Out* y, const device uint32_t* lhs, const device uint32_t* rhs, uint3 group,
         uint thread_index, uint simd_group, threadgroup float* xs, threadgroup float* ws) {
  static_assert(kLoadsPerThread == kPack, "each thread loads one pack of x and one of w per step");
  const uint M = args.M, N = args.N, K = args.K;
  const uint w_row_values = transpose ? K : N;
  const uint row_bytes = w_row_values * bits / 8;
  const uint groups_per_row = w_row_values / group_size;
  const uint partition = split ? group.z % args.k_partitions : 0;
  const uint z = split ? group.z / args.k_partitions : group.z;
  ulong x_matrix, w_matrix;
  batch_matrices<gather>(args, lhs, rhs, z, x_matrix, w_matrix);
  x += x_matrix * M * K;
  w += w_matrix * N * K * bits / 8;
  scales += w_matrix * N * K / group_size;
  biases += w_matrix * N * K / group_size;
  // Partials are laid out [partition][matrix][M][N].
  y += (ulong(partition) * batch_count(args) + z) * M * N;
  const uint k_begin = split ? partition * args.k_per_partition : 0;
  const uint k_end = split ? min(K, k_begin + args.k_per_partition) : K;

  const uint tile_m = group.y * kTile;
  const uint tile_n = group.x * kTile;
  const uint load_row = thread_index / (kTile / kPack);
  const uint load_col = thread_index % (kTile / kPack) * kPack;
  const uint frag_m = simd_group / 2 * 16;
  const uint frag_n = simd_group % 2 * 16;

  simdgroup_float8x8 acc[2][2];
  tile::clear(acc);

  for (uint k0 = k_begin; k0 < k_end; k0 += kTile) {
    // K is a multiple of the group size with transposed weights, so whole
    // tiles; without, K is free and the last tile is partial.
    const uint m = tile_m + load_row;
    float x_values[kPack];
    read_x_pack<transpose>(x + ulong(m) * K, m < M, K, k0 + load_col, x_values);
    tile::store4<kPack>(x_values, xs + load_row * kTileStride + load_col);
    // transpose: tile row = n, columns = k. Otherwise tile row = k, columns = n.
    const uint w_row = transpose ? tile_n + load_row : k0 + load_row;
    const uint w_col = transpose ? k0 + load_col : tile_n + load_col;
    const bool valid = transpose ? w_row < N : w_col < N && w_row < K;
    float w_values[kPack];
    if (valid) {
      float q[kPack];
      unpack<bits>(w + ulong(w_row) * row_bytes, w_col / kPack, q);
      const ulong g = ulong(w_row) * groups_per_row + w_col / group_size;
      const float scale = float(scales[g]), bias = float(biases[g]);
      for (int j = 0; j < kPack; ++j) w_values[j] = scale * q[j] + bias;
    } else {
      for (int j = 0; j < kPack; ++j) w_values[j] = 0.0f;
    }
    tile::store4<kPack>(w_values, ws + load_row * kTileStride + load_col);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    tile::multiply<transpose>(acc, xs, ws, kTileStride, frag_m, frag_n);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  tile::stage(acc, xs, kTileStride, frag_m, frag_n);
  const uint m = tile_m + load_row;
  for (int j = 0; j < kPack; ++j) {
    const uint n = tile_n + load_col + j;
    if (m < M && n < N) y[ulong(m) * N + n] = Out(xs[load_row * kTileStride + load_col + j]);
  }
}

// --- MoE with experts sorted: rows of one expert share its tiles ---------------------

// Row z (z < args.M, sorted by expert) is x row lhs[z] times expert rhs[z]
// and goes to output row rows[z]. A threadgroup owns 32 consecutive rows and
// 32 columns and walks the runs of equal experts among its rows: for each,
// the expert's w tile is dequantized once and applied to all of the run's
// rows (the others' x rows are zero for that run).
template <typename T, int group_size, int bits>
void qmm_sorted(constant AffineMatmulArgs& args, const device T* x, const device uint8_t* w,
                const device T* scales, const device T* biases, device T* y, const device uint32_t* lhs,
                const device uint32_t* rhs, const device uint32_t* rows, uint3 group, uint thread_index,
                uint simd_group, threadgroup float* xs, threadgroup float* ws) {
  const uint Z = args.M, N = args.N, K = args.K;
  const uint row_bytes = K * bits / 8;
  const uint groups_per_row = K / group_size;
  const uint tile_z = group.y * kTile;
  const uint tile_n = group.x * kTile;
  const uint tile_end = min(tile_z + kTile, Z);
  const uint load_row = thread_index / (kTile / kPack);
  const uint load_col = thread_index % (kTile / kPack) * kPack;
  const uint frag_m = simd_group / 2 * 16;
  const uint frag_n = simd_group % 2 * 16;

  simdgroup_float8x8 acc[2][2];
  tile::clear(acc);

  for (uint run = tile_z; run < tile_end;) {
    const uint expert = min(rhs[run], args.w_matrices - 1);  // sorted on the host, so checked there
    uint run_end = run + 1;
    while (run_end < tile_end && rhs[run_end] == rhs[run]) ++run_end;
    const device uint8_t* we = w + ulong(expert) * N * row_bytes;
    const ulong groups_offset = ulong(expert) * N * groups_per_row;
    const uint z = tile_z + load_row;
    const bool row_in_run = z >= run && z < run_end;
    const device T* x_row = row_in_run ? x + ulong(lhs[z]) * K : x;
    for (uint k0 = 0; k0 < K; k0 += kTile) {
      float x_values[kPack];
      read_x_pack<true>(x_row, row_in_run, K, k0 + load_col, x_values);  // transposed: whole tiles
      tile::store4<kPack>(x_values, xs + load_row * kTileStride + load_col);
      const uint n = tile_n + load_row;
      float w_values[kPack];
      if (n < N) {
        float q[kPack];
        unpack<bits>(we + ulong(n) * row_bytes, (k0 + load_col) / kPack, q);
        const ulong g = groups_offset + ulong(n) * groups_per_row + (k0 + load_col) / group_size;
        const float scale = float(scales[g]), bias = float(biases[g]);
        for (int j = 0; j < kPack; ++j) w_values[j] = scale * q[j] + bias;
      } else {
        for (int j = 0; j < kPack; ++j) w_values[j] = 0.0f;
      }
      tile::store4<kPack>(w_values, ws + load_row * kTileStride + load_col);
      threadgroup_barrier(mem_flags::mem_threadgroup);
      tile::multiply<true>(acc, xs, ws, kTileStride, frag_m, frag_n);
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    run = run_end;
  }

  tile::stage(acc, xs, kTileStride, frag_m, frag_n);
  const uint z = tile_z + load_row;
  for (int j = 0; j < kPack; ++j) {
    const uint n = tile_n + load_col + j;
    if (z < Z && n < N) y[ulong(rows[z]) * N + n] = T(xs[load_row * kTileStride + load_col + j]);
  }
}

// --- quantize / dequantize --------------------------------------------------------------

// One thread per group, in float32 as mlx's CPU quantize, so results match
// it bit for bit.
template <typename T, int group_size, int bits>
void quantize(constant AffineQuantizeArgs& args, const device T* w, device uint8_t* packed, device T* scales,
              device T* biases, uint index) {
  if (index >= ulong(args.rows) * (args.K / group_size)) return;
  const device T* values = w + ulong(index) * group_size;
  float w_max = float(values[0]), w_min = float(values[0]);
  for (int i = 1; i < group_size; ++i) {
    w_max = max(w_max, float(values[i]));
    w_min = min(w_min, float(values[i]));
  }
  const float n_bins = float((1 << bits) - 1);
  constexpr float kScaleFloor = 1e-7f;  // mlx's: a constant group must not divide by zero
  float scale = max(precise::divide(w_max - w_min, n_bins), kScaleFloor);
  // Pin the larger-magnitude edge to an exact code, so 0.0 stays exact.
  const bool min_is_edge = abs(w_min) > abs(w_max);
  scale = min_is_edge ? scale : -scale;
  const float edge = min_is_edge ? w_min : w_max;
  const float q0 = rint(precise::divide(edge, scale));
  float bias = 0.0f;
  if (q0 != 0.0f) {
    scale = precise::divide(edge, q0);
    bias = edge;
  }
  device uint8_t* out = packed + ulong(index) * group_size * bits / 8;
  for (int p = 0; p < group_size / kPack; ++p) {
    ulong stream = 0;
    for (int j = 0; j < kPack; ++j) {
      const float q = clamp(rint(precise::divide(float(values[p * kPack + j]) - bias, scale)), 0.0f, n_bins);
      stream |= ulong(uint(q)) << (bits * j);
    }
    for (int i = 0; i < bits; ++i) out[p * bits + i] = uint8_t(stream >> (8 * i));
  }
  scales[index] = T(scale);
  biases[index] = T(bias);
}

// One thread per pack. Rounds after the product and after the sum, in T, as
// mlx's dequantize does.
template <typename T, int group_size, int bits>
void dequantize(constant AffineQuantizeArgs& args, device T* w, const device uint8_t* packed,
                const device T* scales, const device T* biases, uint index) {
  const uint packs_per_row = args.K / kPack;
  if (index >= ulong(args.rows) * packs_per_row) return;
  const uint row = index / packs_per_row, pack = index % packs_per_row;
  float q[kPack];
  unpack<bits>(packed + ulong(row) * args.K * bits / 8, pack, q);
  const ulong g = ulong(row) * (args.K / group_size) + pack * kPack / group_size;
  const float scale = float(scales[g]), bias = float(biases[g]);
  for (int j = 0; j < kPack; ++j) {
    const T product = T(scale * q[j]);
    w[ulong(row) * args.K + pack * kPack + j] = T(float(product) + bias);
  }
}

}  // namespace affine

// --- kernels -------------------------------------------------------------------------------

#define QMETAL_AFFINE_MATMUL_PARAMS                                                      \
  constant AffineMatmulArgs &args [[buffer(kArgsBufferIndex)]],                          \
      const device T *x [[buffer(kAffineX)]], const device uint8_t *w [[buffer(kAffineW)]], \
      const device T *scales [[buffer(kAffineScales)]],                                  \
      const device T *biases [[buffer(kAffineBiases)]], device T *y [[buffer(kAffineY)]], \
      uint3 group [[threadgroup_position_in_grid]]

// The mat-vec kernels: their threadgroups hold kQmvSimdgroups simdgroups
// per K slice (mat_vec.h).
#define QMETAL_AFFINE_QMV_PARAMS                                                                        \
  QMETAL_AFFINE_MATMUL_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],                      \
      uint simdgroups [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmv(QMETAL_AFFINE_QMV_PARAMS) {
  threadgroup float slice_sums[affine::QmvSliceSums<1>::floats];
  affine::qmv<T, group_size, bits, false, 1>(args, x, w, scales, biases, y, nullptr, nullptr, group,
                                               mat_vec::slicing(simd_group, simdgroups, affine::kQmvSimdgroups), lane,
                                               slice_sums);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmv_fast(QMETAL_AFFINE_QMV_PARAMS) {
  threadgroup float slice_sums[affine::QmvSliceSums<1>::floats];
  affine::qmv<T, group_size, bits, true, 1>(args, x, w, scales, biases, y, nullptr, nullptr, group,
                                               mat_vec::slicing(simd_group, simdgroups, affine::kQmvSimdgroups), lane,
                                               slice_sums);
}

// Small batches: each weight step decoded once for 2 or 4 activation rows
// (an unused row still costs its FMAs, so M = 2 takes the narrow one).
template <typename T, int group_size, int bits>
[[kernel]] void affine_qmv_wide_r2(QMETAL_AFFINE_QMV_PARAMS) {
  threadgroup float slice_sums[affine::QmvSliceSums<kQmvWideRowsSmall>::floats];
  affine::qmv<T, group_size, bits, false, kQmvWideRowsSmall>(args, x, w, scales, biases, y, nullptr, nullptr, group,
                                                             mat_vec::slicing(simd_group, simdgroups, affine::kQmvSimdgroups),
                                                             lane, slice_sums);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmv_wide_r4(QMETAL_AFFINE_QMV_PARAMS) {
  threadgroup float slice_sums[affine::QmvSliceSums<kQmvWideRowsLarge>::floats];
  affine::qmv<T, group_size, bits, false, kQmvWideRowsLarge>(args, x, w, scales, biases, y, nullptr, nullptr, group,
                                                             mat_vec::slicing(simd_group, simdgroups, affine::kQmvSimdgroups),
                                                             lane, slice_sums);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qvm(QMETAL_AFFINE_MATMUL_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],
                           uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float partial[affine::kQvmPartials];
  affine::qvm<T, group_size, bits>(args, x, w, scales, biases, y, nullptr, nullptr, group, simd_group, lane, partial);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmm_t(QMETAL_AFFINE_MATMUL_PARAMS, uint thread_index [[thread_index_in_threadgroup]],
                             uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, true>(args, x, w, scales, biases, y, nullptr, nullptr, group, thread_index,
                                         simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmm_n(QMETAL_AFFINE_MATMUL_PARAMS, uint thread_index [[thread_index_in_threadgroup]],
                             uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, false>(args, x, w, scales, biases, y, nullptr, nullptr, group, thread_index,
                                          simd_group, xs, ws);
}

// Split-K: float partial sums per K partition, then affine_sum_partials.
#define QMETAL_AFFINE_SPLIT_PARAMS                                                       \
  constant AffineMatmulArgs &args [[buffer(kArgsBufferIndex)]],                          \
      const device T *x [[buffer(kAffineX)]], const device uint8_t *w [[buffer(kAffineW)]], \
      const device T *scales [[buffer(kAffineScales)]],                                  \
      const device T *biases [[buffer(kAffineBiases)]], device float *partials [[buffer(kAffineY)]], \
      uint3 group [[threadgroup_position_in_grid]], uint thread_index [[thread_index_in_threadgroup]], \
      uint simd_group [[simdgroup_index_in_threadgroup]]

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmm_t_split(QMETAL_AFFINE_SPLIT_PARAMS) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, true, false, true, float>(args, x, w, scales, biases, partials, nullptr, nullptr,
                                                             group, thread_index, simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmm_n_split(QMETAL_AFFINE_SPLIT_PARAMS) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, false, false, true, float>(args, x, w, scales, biases, partials, nullptr, nullptr,
                                                              group, thread_index, simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_qvm_split(constant AffineMatmulArgs& args [[buffer(kArgsBufferIndex)]],
                                 const device T* x [[buffer(kAffineX)]], const device uint8_t* w [[buffer(kAffineW)]],
                                 const device T* scales [[buffer(kAffineScales)]],
                                 const device T* biases [[buffer(kAffineBiases)]],
                                 device float* partials [[buffer(kAffineY)]],
                                 uint3 group [[threadgroup_position_in_grid]],
                                 uint simd_group [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float partial[affine::kQvmPartials];
  affine::qvm<T, group_size, bits, false, true, float>(args, x, w, scales, biases, partials, nullptr, nullptr, group,
                                                       simd_group, lane, partial);
}

template <typename T>
[[kernel]] void affine_sum_partials(constant SumPartialsArgs& args [[buffer(kArgsBufferIndex)]],
                                    const device float* partials [[buffer(kPartials)]],
                                    device T* y [[buffer(kPartialsSum)]], uint i [[thread_position_in_grid]]) {
  if (i >= args.count) return;
  float total = 0.0f;
  for (uint p = 0; p < args.partitions; ++p) total += partials[ulong(p) * args.count + i];
  y[i] = T(total);
}

// MoE: output matrix z multiplies x matrix lhs[z] by expert rhs[z].
#define QMETAL_AFFINE_GATHER_PARAMS                               \
  QMETAL_AFFINE_MATMUL_PARAMS, const device uint32_t *lhs [[buffer(kAffineLhs)]], \
      const device uint32_t *rhs [[buffer(kAffineRhs)]]

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qmv(QMETAL_AFFINE_GATHER_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],
                                  uint simdgroups [[simdgroups_per_threadgroup]],
                                  uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float slice_sums[affine::QmvSliceSums<1>::floats];
  affine::qmv<T, group_size, bits, false, 1, true>(args, x, w, scales, biases, y, lhs, rhs, group,
                                                   mat_vec::slicing(simd_group, simdgroups, affine::kQmvSimdgroups),
                                                   lane, slice_sums);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qvm(QMETAL_AFFINE_GATHER_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],
                                  uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float partial[affine::kQvmPartials];
  affine::qvm<T, group_size, bits, true>(args, x, w, scales, biases, y, lhs, rhs, group, simd_group, lane, partial);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qmm_t(QMETAL_AFFINE_GATHER_PARAMS,
                                    uint thread_index [[thread_index_in_threadgroup]],
                                    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, true, true>(args, x, w, scales, biases, y, lhs, rhs, group, thread_index,
                                               simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qmm_sorted(QMETAL_AFFINE_GATHER_PARAMS,
                                         const device uint32_t* rows [[buffer(kAffineRows)]],
                                         uint thread_index [[thread_index_in_threadgroup]],
                                         uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm_sorted<T, group_size, bits>(args, x, w, scales, biases, y, lhs, rhs, rows, group, thread_index,
                                          simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qmm_n(QMETAL_AFFINE_GATHER_PARAMS,
                                    uint thread_index [[thread_index_in_threadgroup]],
                                    uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[affine::kTileFloats], ws[affine::kTileFloats];
  affine::qmm<T, group_size, bits, false, true>(args, x, w, scales, biases, y, lhs, rhs, group, thread_index,
                                                simd_group, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_quantize(constant AffineQuantizeArgs& args [[buffer(kArgsBufferIndex)]],
                                const device T* w [[buffer(kAffineDense)]],
                                device uint8_t* packed [[buffer(kAffinePacked)]],
                                device T* scales [[buffer(kAffineQScales)]],
                                device T* biases [[buffer(kAffineQBiases)]],
                                uint index [[thread_position_in_grid]]) {
  affine::quantize<T, group_size, bits>(args, w, packed, scales, biases, index);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_dequantize(constant AffineQuantizeArgs& args [[buffer(kArgsBufferIndex)]],
                                  device T* w [[buffer(kAffineDense)]],
                                  const device uint8_t* packed [[buffer(kAffinePacked)]],
                                  const device T* scales [[buffer(kAffineQScales)]],
                                  const device T* biases [[buffer(kAffineQBiases)]],
                                  uint index [[thread_position_in_grid]]) {
  affine::dequantize<T, group_size, bits>(args, w, packed, scales, biases, index);
}

// Instantiates `kernel` for every dtype, group size and width, named
// affine_<kernel>_<dtype>_gs<group size>_b<bits> as affine_kernel_name() builds.
#define QMETAL_AFFINE_ONE(kernel, type, type_name, gs, bits)                                  \
  template [[host_name("affine_" #kernel "_" #type_name "_gs" #gs "_b" #bits)]] [[kernel]]     \
  decltype(affine_##kernel<type, gs, bits>) affine_##kernel<type, gs, bits>;
#define QMETAL_AFFINE_BITS(kernel, type, type_name, gs) \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 2)     \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 3)     \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 4)     \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 5)     \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 6)     \
  QMETAL_AFFINE_ONE(kernel, type, type_name, gs, 8)
#define QMETAL_AFFINE_GROUPS(kernel, type, type_name) \
  QMETAL_AFFINE_BITS(kernel, type, type_name, 32)     \
  QMETAL_AFFINE_BITS(kernel, type, type_name, 64)     \
  QMETAL_AFFINE_BITS(kernel, type, type_name, 128)
#define QMETAL_AFFINE_INSTANTIATE(kernel)          \
  QMETAL_AFFINE_GROUPS(kernel, float, float32)     \
  QMETAL_AFFINE_GROUPS(kernel, half, float16)      \
  QMETAL_AFFINE_GROUPS(kernel, bfloat, bfloat16)
