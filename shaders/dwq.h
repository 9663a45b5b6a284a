// DWQ (distilled weight quantization): the integer codes of a quantized
// layer stay frozen and only its per-group scales and biases are trained.
// Three kernel families, instantiated in dwq.metal and named by
// dwq_kernel_name() on the host from the same parts:
//   dwq_init_<dtype>             min/max initialisation, unpacked uint8 codes
//   dwq_grads_<dtype>_b<bits>    d_scale, d_bias from a weight gradient dw
//   dwq_vjp_<dtype>_b<bits>      d_scale, d_bias from activations and the
//                                output gradient, dw never stored
// Gradients are accumulated and written in float32; the host casts them
// to the scales' dtype.
#pragma once

#include <metal_stdlib>

#include "qmetal_args.h"
#include "tile.h"

using namespace metal;
using namespace qmetal_args;

namespace dwq {

// Threads of an init / grads threadgroup. Groups up to this size get a
// thread per value; larger ones a strided loop per thread first.
constant constexpr int kGroupThreads = 256;
constant constexpr int kPack = 8;  // codes per pack: b bits x 8 codes = b whole bytes

// Code k of a row of b-bit codes in MLX's LSB-first bit stream (b <= 8, so
// a code spans at most two bytes; the second is read only when it does, so
// the last code of a buffer never reads past it).
template <int bits>
inline float code_at(const device uint8_t* row, uint k) {
  const uint bit = k * bits;
  uint word = row[bit / 8];
  if (bit % 8 + bits > 8) word |= uint(row[bit / 8 + 1]) << 8;
  return float((word >> (bit % 8)) & ((1u << bits) - 1u));
}

// The 8 codes of pack `pack` of a row.
template <int bits>
inline void unpack(const device uint8_t* row, uint pack, thread float* q) {
  const device uint8_t* bytes = row + pack * bits;
  ulong stream = 0;
  for (int i = 0; i < bits; ++i) stream |= ulong(bytes[i]) << (8 * i);
  for (int j = 0; j < kPack; ++j) q[j] = float(uint(stream >> (bits * j)) & ((1u << bits) - 1u));
}

// Group g is owned by threads_per_group consecutive threads; this thread's
// place among them.
struct GroupSlot {
  uint group;
  uint lane;   // 0 .. threads_per_group - 1
  uint first;  // index in the threadgroup of the group's lane 0
  bool valid;  // the grid's last threadgroup may run past the last group
};

inline GroupSlot group_slot(constant DwqGroupArgs& args, uint threadgroup_id, uint t) {
  const uint tpg = args.threads_per_group;
  GroupSlot s;
  s.lane = t % tpg;
  s.first = t - s.lane;
  s.group = threadgroup_id * (kGroupThreads / tpg) + t / tpg;
  s.valid = s.group < args.groups;
  return s;
}

// Tree reduction of a and b (sum, or min of a and max of b) among the
// threads of each group; the result lands at the group's lane 0. Every
// thread of the threadgroup reaches each barrier (threads_per_group is
// uniform).
template <bool min_max>
inline void tree_reduce(constant DwqGroupArgs& args, const thread GroupSlot& s, uint t, threadgroup float* a,
                        threadgroup float* b) {
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = args.threads_per_group / 2; stride > 0; stride /= 2) {
    if (s.lane < stride) {
      a[t] = min_max ? min(a[t], a[t + stride]) : a[t] + a[t + stride];
      b[t] = min_max ? max(b[t], b[t + stride]) : b[t] + b[t + stride];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

// scale = (max - min) / (2^bits - 1), bias = min, code = clip(rint((w -
// bias) / scale), 0, 2^bits - 1), in float32. A constant group (max == min,
// or a range that is not a positive number) gets scale 1: its codes are all
// 0 whatever the scale, so any positive scale reproduces the group exactly;
// 1 keeps it finite and far from subnormals, and its gradient (sum of code
// times dw) stays 0, so training leaves it alone.
template <typename T>
void init(constant DwqGroupArgs& args, const device T* w, device uint8_t* codes, device float* scales,
          device float* biases, uint threadgroup_id, uint t, threadgroup float* lo, threadgroup float* hi) {
  const GroupSlot s = group_slot(args, threadgroup_id, t);
  const uint gs = args.group_size;
  const device T* values = w + ulong(s.group) * gs;
  float w_min = 0.0f, w_max = 0.0f;
  if (s.valid) {
    w_min = w_max = float(values[s.lane]);
    for (uint i = s.lane + args.threads_per_group; i < gs; i += args.threads_per_group) {
      w_min = min(w_min, float(values[i]));
      w_max = max(w_max, float(values[i]));
    }
  }
  lo[t] = w_min;
  hi[t] = w_max;
  tree_reduce<true>(args, s, t, lo, hi);
  if (!s.valid) return;
  const float n_bins = float((1u << args.bits) - 1u);
  const float bias = lo[s.first];
  float scale = precise::divide(hi[s.first] - bias, n_bins);
  if (!(scale > 0.0f)) scale = 1.0f;
  device uint8_t* out = codes + ulong(s.group) * gs;
  for (uint i = s.lane; i < gs; i += args.threads_per_group) {
    out[i] = uint8_t(clamp(rint(precise::divide(float(values[i]) - bias, scale)), 0.0f, n_bins));
  }
  if (s.lane == 0) {
    scales[s.group] = scale;
    biases[s.group] = bias;
  }
}

// d_scale[g] = sum over i in g of code[i] * dw[i], d_bias[g] = sum of dw[i]:
// each thread sums its strided share, then a tree in threadgroup memory.
template <typename T, int bits>
void grads(constant DwqGroupArgs& args, const device T* dw, const device uint8_t* codes, device float* d_scales,
           device float* d_biases, uint threadgroup_id, uint t, threadgroup float* ds, threadgroup float* db) {
  const GroupSlot s = group_slot(args, threadgroup_id, t);
  const uint gs = args.group_size;
  const uint groups_per_row = args.K / gs;
  float sum_q = 0.0f, sum = 0.0f;
  if (s.valid) {
    const uint row = s.group / groups_per_row;
    const uint col = s.group % groups_per_row * gs;
    const device uint8_t* code_row = codes + ulong(row) * args.K * bits / 8;
    const device T* values = dw + ulong(s.group) * gs;
    for (uint i = s.lane; i < gs; i += args.threads_per_group) {
      const float d = float(values[i]);
      sum_q += code_at<bits>(code_row, col + i) * d;
      sum += d;
    }
  }
  ds[t] = sum_q;
  db[t] = sum;
  tree_reduce<false>(args, s, t, ds, db);
  if (s.valid && s.lane == 0) {
    d_scales[s.group] = ds[t];
    d_biases[s.group] = db[t];
  }
}

// --- the fused gradient: D = sum over pairs of A^T B, reduced per group ---------

constant constexpr int kTile = tile::kK;          // 32 rows of D, 32 columns, 32 rows of A / B per step
constant constexpr int kTileStride = kTile + 4;   // padded rows spread threadgroup-memory banks
constant constexpr int kTileThreads = int(kDwqTileThreads);  // 4 simdgroups, each a 16 x 16 quarter of D
constant constexpr int kThreadsPerRow = kTile / kPack;  // threads that load one tile row, a pack each
constant constexpr int kTileFloats = kTile * kTileStride;

// acc (rows r, columns c) += As^T Bs over one step of 32 rows: As holds A's
// rows by r, so its 8x8 blocks are loaded transposed.
inline void multiply_at_b(thread simdgroup_float8x8 (&acc)[2][2], const threadgroup float* as,
                          const threadgroup float* bs, uint frag_r, uint frag_c) {
  for (int kk = 0; kk < kTile; kk += tile::kFrag) {
    simdgroup_float8x8 a[2], b[2];
    for (int i = 0; i < 2; ++i) simdgroup_load(a[i], as, kTileStride, ulong2(frag_r + i * tile::kFrag, kk), true);
    for (int j = 0; j < 2; ++j) simdgroup_load(b[j], bs, kTileStride, ulong2(frag_c + j * tile::kFrag, kk));
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

// A threadgroup owns 32 rows r of one weight matrix and one group g of
// columns. For each 32-column tile of the group it forms D[r][c] in
// simdgroup matrices over every row of every (A, B) pair, then each
// thread multiplies a pack of D by the codes and keeps the sums; the
// group's sums are reduced across the row's threads at the end.
// Reads: every element of the A slab [rows, 32 r] and of the B slab
// [rows, 32 c] is loaded once per tile (one pack per thread per step), and
// every code once in all (one pack per thread per tile); D lives only in
// registers and one staging tile.
template <typename T, int bits>
void vjp(constant DwqVjpArgs& args, const device T* a, const device T* b, const device uint8_t* w,
         device float* d_scales, device float* d_biases, const device uint32_t* pairs, uint3 group,
         uint thread_index, uint simd_group, threadgroup float* as, threadgroup float* bs) {
  static_assert(kTile * kTile / kTileThreads == kPack, "each thread loads one pack of A and one of B per step");
  const uint M = args.M, R = args.R, C = args.C, gs = args.group_size;
  const uint row_bytes = C * bits / 8;
  const uint groups_per_row = C / gs;
  const uint rows = args.pairs_per_weight * M;  // the host checks that it fits
  w += ulong(group.z) * R * row_bytes;
  pairs += ulong(group.z) * args.pairs_per_weight * 2;
  const uint g = group.x;
  const uint r0 = group.y * kTile;
  const uint load_row = thread_index / kThreadsPerRow;
  const uint load_col = thread_index % kThreadsPerRow * kPack;
  const uint frag_r = simd_group / 2 * 16;
  const uint frag_c = simd_group % 2 * 16;
  const uint r = r0 + load_row;  // the row of D whose pack this thread reduces

  float sum_q = 0.0f, sum = 0.0f;
  for (uint c0 = g * gs; c0 < (g + 1) * gs; c0 += kTile) {
    simdgroup_float8x8 acc[2][2];
    tile::clear(acc);
    for (uint t0 = 0; t0 < rows; t0 += kTile) {
      const uint t = t0 + load_row;
      threadgroup float* a_dst = as + load_row * kTileStride + load_col;
      threadgroup float* b_dst = bs + load_row * kTileStride + load_col;
      if (t < rows) {
        const uint pair = t / M, m = t % M;
        const device T* a_row = a + (ulong(pairs[2 * pair]) * M + m) * R;
        const device T* b_row = b + (ulong(pairs[2 * pair + 1]) * M + m) * C;
        for (int j = 0; j < kPack; ++j) {
          const uint rr = r0 + load_col + j;
          a_dst[j] = rr < R ? float(a_row[rr]) : 0.0f;
          b_dst[j] = float(b_row[c0 + load_col + j]);  // C is a multiple of the tile
        }
      } else {
        for (int j = 0; j < kPack; ++j) a_dst[j] = b_dst[j] = 0.0f;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      multiply_at_b(acc, as, bs, frag_r, frag_c);
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    tile::stage(acc, as, kTileStride, frag_r, frag_c);
    if (r < R) {
      float q[kPack];
      unpack<bits>(w + ulong(r) * row_bytes, (c0 + load_col) / kPack, q);
      for (int j = 0; j < kPack; ++j) {
        const float d = as[load_row * kTileStride + load_col + j];
        sum_q += q[j] * d;
        sum += d;
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the next tile's loads overwrite as
  }
  // The kThreadsPerRow threads of a row add their sums: a tree in threadgroup memory.
  as[thread_index] = sum_q;
  bs[thread_index] = sum;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = kThreadsPerRow / 2; stride > 0; stride /= 2) {
    if (thread_index % kThreadsPerRow < stride) {
      as[thread_index] += as[thread_index + stride];
      bs[thread_index] += bs[thread_index + stride];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (thread_index % kThreadsPerRow == 0 && r < R) {
    const ulong out = (ulong(group.z) * R + r) * groups_per_row + g;
    d_scales[out] = as[thread_index];
    d_biases[out] = bs[thread_index];
  }
}

}  // namespace dwq

// --- kernels -------------------------------------------------------------------------------

template <typename T>
[[kernel]] void dwq_init(constant DwqGroupArgs& args [[buffer(kArgsBufferIndex)]],
                         const device T* w [[buffer(kDwqDense)]], device uint8_t* codes [[buffer(kDwqCodes)]],
                         device float* scales [[buffer(kDwqScales)]], device float* biases [[buffer(kDwqBiases)]],
                         uint group [[threadgroup_position_in_grid]], uint t [[thread_index_in_threadgroup]]) {
  threadgroup float lo[dwq::kGroupThreads], hi[dwq::kGroupThreads];
  dwq::init<T>(args, w, codes, scales, biases, group, t, lo, hi);
}

template <typename T, int bits>
[[kernel]] void dwq_grads(constant DwqGroupArgs& args [[buffer(kArgsBufferIndex)]],
                          const device T* dw [[buffer(kDwqDense)]], const device uint8_t* codes [[buffer(kDwqCodes)]],
                          device float* d_scales [[buffer(kDwqScales)]], device float* d_biases [[buffer(kDwqBiases)]],
                          uint group [[threadgroup_position_in_grid]], uint t [[thread_index_in_threadgroup]]) {
  threadgroup float ds[dwq::kGroupThreads], db[dwq::kGroupThreads];
  dwq::grads<T, bits>(args, dw, codes, d_scales, d_biases, group, t, ds, db);
}

template <typename T, int bits>
[[kernel]] void dwq_vjp(constant DwqVjpArgs& args [[buffer(kArgsBufferIndex)]], const device T* a [[buffer(kDwqA)]],
                        const device T* b [[buffer(kDwqB)]], const device uint8_t* w [[buffer(kDwqW)]],
                        device float* d_scales [[buffer(kDwqDScales)]], device float* d_biases [[buffer(kDwqDBiases)]],
                        const device uint32_t* pairs [[buffer(kDwqPairs)]],
                        uint3 group [[threadgroup_position_in_grid]], uint thread_index [[thread_index_in_threadgroup]],
                        uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float as[dwq::kTileFloats], bs[dwq::kTileFloats];
  dwq::vjp<T, bits>(args, a, b, w, d_scales, d_biases, pairs, group, thread_index, simd_group, as, bs);
}

// Names: dwq_<kernel>_<dtype> and dwq_<kernel>_<dtype>_b<bits>, as dwq_kernel_name() builds them.
#define QMETAL_DWQ_TYPED(kernel, type, type_name) \
  template [[host_name("dwq_" #kernel "_" #type_name)]] [[kernel]] decltype(dwq_##kernel<type>) dwq_##kernel<type>;
#define QMETAL_DWQ_ONE(kernel, type, type_name, bits)                                                  \
  template [[host_name("dwq_" #kernel "_" #type_name "_b" #bits)]] [[kernel]] decltype(dwq_##kernel<type, bits>) \
      dwq_##kernel<type, bits>;
// The widths MLX packs (unpacked codes ride the 8-bit kernels).
#define QMETAL_DWQ_BITS(kernel, type, type_name) \
  QMETAL_DWQ_ONE(kernel, type, type_name, 2)     \
  QMETAL_DWQ_ONE(kernel, type, type_name, 3)     \
  QMETAL_DWQ_ONE(kernel, type, type_name, 4)     \
  QMETAL_DWQ_ONE(kernel, type, type_name, 5)     \
  QMETAL_DWQ_ONE(kernel, type, type_name, 6)     \
  QMETAL_DWQ_ONE(kernel, type, type_name, 8)
#define QMETAL_DWQ_INSTANTIATE(kernel)          \
  QMETAL_DWQ_BITS(kernel, float, float32)       \
  QMETAL_DWQ_BITS(kernel, half, float16)        \
  QMETAL_DWQ_BITS(kernel, bfloat, bfloat16)
