// GGML block kernels: weights exactly as a GGUF file stores them. Each type
// is a block struct and one dequantize() that turns a 16-value chunk of a
// block into floats, in the order of operations of llama.cpp's reference
// (so dequantize is bit-exact with gguf.quants); every kernel (mat-vec,
// small batch, tiled mat-mat, MoE, dequantize) is a template over the block
// type. Adding a type: its struct, its dequantize(), a row in the
// instantiation list (ggml_*.metal) and in the host's type table.
#pragma once

#include <metal_stdlib>

#include "qmetal_args.h"
#include "tile.h"

using namespace metal;
using namespace qmetal_args;

namespace ggml {

constant constexpr int kChunk = 16;  // values one dequantize() call yields

// --- block structs (little-endian, as in ggml-common.h) ----------------------------------

struct block_q4_0 { half d; uint8_t qs[16]; };
struct block_q4_1 { half d; half m; uint8_t qs[16]; };
struct block_q5_0 { half d; uint8_t qh[4]; uint8_t qs[16]; };
struct block_q5_1 { half d; half m; uint8_t qh[4]; uint8_t qs[16]; };
struct block_q8_0 { half d; int8_t qs[32]; };
struct block_q2_K { uint8_t scales[16]; uint8_t qs[64]; half d; half dmin; };
struct block_q3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; half d; };
struct block_q4_K { half d; half dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct block_q5_K { half d; half dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; half d; };
// Dense types, as 16-value "blocks" so that they share every kernel.
struct block_f32 { float x[16]; };
struct block_f16 { half x[16]; };
struct block_bf16 { ushort x[16]; };

static_assert(sizeof(block_q4_0) == 18 && sizeof(block_q4_1) == 20 && sizeof(block_q5_0) == 22 &&
              sizeof(block_q5_1) == 24 && sizeof(block_q8_0) == 34, "legacy block sizes");
static_assert(sizeof(block_q2_K) == 84 && sizeof(block_q3_K) == 110 && sizeof(block_q4_K) == 144 &&
              sizeof(block_q5_K) == 176 && sizeof(block_q6_K) == 210, "K-quant block sizes");

// values: per block; mv_rows: rows of w per simdgroup in mul_mv (as
// llama.cpp picks them: fewer for types whose blocks take longer to decode).
template <typename B> struct traits;
template <> struct traits<block_q4_0> { static constant constexpr int values = 32, mv_rows = 4; };
template <> struct traits<block_q4_1> { static constant constexpr int values = 32, mv_rows = 4; };
template <> struct traits<block_q5_0> { static constant constexpr int values = 32, mv_rows = 4; };
template <> struct traits<block_q5_1> { static constant constexpr int values = 32, mv_rows = 4; };
template <> struct traits<block_q8_0> { static constant constexpr int values = 32, mv_rows = 2; };
template <> struct traits<block_q2_K> { static constant constexpr int values = 256, mv_rows = 2; };
template <> struct traits<block_q3_K> { static constant constexpr int values = 256, mv_rows = 2; };
template <> struct traits<block_q4_K> { static constant constexpr int values = 256, mv_rows = 2; };
template <> struct traits<block_q5_K> { static constant constexpr int values = 256, mv_rows = 1; };
template <> struct traits<block_q6_K> { static constant constexpr int values = 256, mv_rows = 2; };
template <> struct traits<block_f32> { static constant constexpr int values = 16, mv_rows = 4; };
template <> struct traits<block_f16> { static constant constexpr int values = 16, mv_rows = 4; };
template <> struct traits<block_bf16> { static constant constexpr int values = 16, mv_rows = 4; };

// --- dequantize: chunk c holds values [16 c, 16 c + 16) of the block ------------------

inline void dequantize(const device block_q4_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  for (int i = 0; i < kChunk; ++i) v[i] = d * float(int((b.qs[i] >> (4 * c)) & 0xF) - 8);
}

inline void dequantize(const device block_q4_1& b, uint c, thread float* v) {
  const float d = float(b.d), m = float(b.m);
  for (int i = 0; i < kChunk; ++i) v[i] = d * float((b.qs[i] >> (4 * c)) & 0xF) + m;
}

inline uint q5_high_bits(const device uint8_t* qh) {
  return uint(qh[0]) | uint(qh[1]) << 8 | uint(qh[2]) << 16 | uint(qh[3]) << 24;
}

inline void dequantize(const device block_q5_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  const uint high = q5_high_bits(b.qh);
  for (int i = 0; i < kChunk; ++i) {
    const int code = int(((b.qs[i] >> (4 * c)) & 0xF) | (((high >> (kChunk * c + i)) & 1) << 4));
    v[i] = d * float(code - 16);
  }
}

inline void dequantize(const device block_q5_1& b, uint c, thread float* v) {
  const float d = float(b.d), m = float(b.m);
  const uint high = q5_high_bits(b.qh);
  for (int i = 0; i < kChunk; ++i) {
    const uint code = ((b.qs[i] >> (4 * c)) & 0xF) | (((high >> (kChunk * c + i)) & 1) << 4);
    v[i] = d * float(code) + m;
  }
}

inline void dequantize(const device block_q8_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  for (int i = 0; i < kChunk; ++i) v[i] = d * float(b.qs[kChunk * c + i]);
}

// K-types: value e = 16 c + i sits in half e / 128, quarter (e % 128) / 32
// and lane e % 32 of the 2-bit planes (Q2_K, Q3_K, Q6_K's high bits), or in
// byte 32 (e / 64) + e % 32, nibble (e % 64) / 32 (Q4_K, Q5_K).
inline void dequantize(const device block_q2_K& b, uint c, thread float* v) {
  const uint half_index = c / 8, shift = 2 * ((c % 8) / 2), lane0 = kChunk * (c % 2);
  const uint8_t sc = b.scales[c];
  const float mult = float(b.d) * float(sc & 0xF);
  const float add = -(float(b.dmin) * float(sc >> 4));
  for (int i = 0; i < kChunk; ++i) {
    const uint code = (b.qs[32 * half_index + lane0 + i] >> shift) & 3;
    v[i] = mult * float(code) + add;
  }
}

inline void dequantize(const device block_q3_K& b, uint c, thread float* v) {
  const uint half_index = c / 8, shift = 2 * ((c % 8) / 2), lane0 = kChunk * (c % 2), high_bit = c / 2;
  // Sixteen 6-bit signed scales: low nibbles in bytes 0..7, high pairs in 8..11.
  const int low = (b.scales[c % 8] >> (4 * (c / 8))) & 0xF;
  const int high = (b.scales[8 + c % 4] >> (2 * (c / 4))) & 0x3;
  const float mult = float(b.d) * float((low | (high << 4)) - 32);
  for (int i = 0; i < kChunk; ++i) {
    const int code = int((b.qs[32 * half_index + lane0 + i] >> shift) & 3) |
                     int(((b.hmask[lane0 + i] >> high_bit) & 1) << 2);
    v[i] = mult * float(code - 4);
  }
}

// Scale and min of sub-block j (of 32 values): six bits each, packed in 12 bytes.
inline void k4_scale_min(const device uint8_t* s, uint j, thread uint& scale, thread uint& min_code) {
  if (j < 4) {
    scale = s[j] & 63;
    min_code = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    min_code = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

inline void dequantize(const device block_q4_K& b, uint c, thread float* v) {
  uint sc, m;
  k4_scale_min(b.scales, c / 2, sc, m);
  const float mult = float(b.d) * float(sc);
  const float add = -(float(b.dmin) * float(m));
  const uint byte0 = 32 * (c / 4) + kChunk * (c % 2), shift = 4 * ((c % 4) / 2);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * float((b.qs[byte0 + i] >> shift) & 0xF) + add;
}

inline void dequantize(const device block_q5_K& b, uint c, thread float* v) {
  uint sc, m;
  k4_scale_min(b.scales, c / 2, sc, m);
  const float mult = float(b.d) * float(sc);
  const float add = -(float(b.dmin) * float(m));
  const uint byte0 = 32 * (c / 4) + kChunk * (c % 2), shift = 4 * ((c % 4) / 2);
  const uint lane0 = kChunk * (c % 2), high_bit = c / 2;
  for (int i = 0; i < kChunk; ++i) {
    const uint code = ((b.qs[byte0 + i] >> shift) & 0xF) | (((b.qh[lane0 + i] >> high_bit) & 1) << 4);
    v[i] = mult * float(code) + add;
  }
}

inline void dequantize(const device block_q6_K& b, uint c, thread float* v) {
  const uint half_index = c / 8, quarter = (c % 8) / 2, lane0 = kChunk * (c % 2);
  const uint low_byte0 = 64 * half_index + lane0 + 32 * (quarter % 2), low_shift = 4 * (quarter / 2);
  const uint high_byte0 = 32 * half_index + lane0, high_shift = 2 * quarter;
  const float mult = float(b.d) * float(b.scales[c]);
  for (int i = 0; i < kChunk; ++i) {
    const int code = int((b.ql[low_byte0 + i] >> low_shift) & 0xF) | int(((b.qh[high_byte0 + i] >> high_shift) & 3) << 4);
    v[i] = mult * float(code - 32);
  }
}

inline void dequantize(const device block_f32& b, uint, thread float* v) {
  for (int i = 0; i < kChunk; ++i) v[i] = b.x[i];
}

inline void dequantize(const device block_f16& b, uint, thread float* v) {
  for (int i = 0; i < kChunk; ++i) v[i] = float(b.x[i]);
}

inline void dequantize(const device block_bf16& b, uint, thread float* v) {
  for (int i = 0; i < kChunk; ++i) v[i] = as_type<float>(uint(b.x[i]) << 16);
}

// Chunk `chunk` (counted over the whole row) of the row starting at `row`.
template <typename B>
inline void dequantize_row_chunk(const device B* row, uint chunk, thread float* v) {
  constexpr uint chunks_per_block = traits<B>::values / kChunk;
  dequantize(row[chunk / chunks_per_block], chunk % chunks_per_block, v);
}

// x[m, k], row-major or head-major.
template <typename T>
inline float x_at(constant GGMLMatmulArgs& args, const device T* x, uint m, uint k) {
  if (args.x_head_dim == 0) return float(x[ulong(m) * args.K + k]);
  const uint head = k / args.x_head_dim, d = k % args.x_head_dim;
  return float(x[(ulong(head) * args.x_rows + m) * args.x_head_dim + d]);
}

// --- mat-vec and small batch ---------------------------------------------------------

constant constexpr int kMvSimdgroups = 2;

// Each simdgroup owns `rows` rows of w; lane l decodes chunks l, l + 32, ...
// of each and applies every chunk to `x_rows` activation rows. With
// `gather`, output row z (= grid y) reads x row lhs[z] and expert rhs[z].
template <typename B, typename T, typename O, int rows, int x_rows, bool gather>
void mul_mv(constant GGMLMatmulArgs& args, const device T* x, const device uint8_t* w, device O* y,
            const device uint32_t* lhs, const device uint32_t* rhs, uint3 group, uint simd_group, uint lane) {
  const uint N = args.N, K = args.K;
  const uint blocks_per_row = K / traits<B>::values;
  const uint chunks = K / kChunk;
  const uint n0 = (group.x * kMvSimdgroups + simd_group) * rows;
  const uint m0 = group.y * x_rows;
  if (gather) w += ulong(rhs[m0]) * args.expert_rows * blocks_per_row * sizeof(B);
  const device B* w_rows = reinterpret_cast<const device B*>(w);
  float acc[x_rows][rows];
  for (int m = 0; m < x_rows; ++m)
    for (int r = 0; r < rows; ++r) acc[m][r] = 0.0f;
  for (uint c = lane; c < chunks; c += kSimdWidth) {
    float xs[x_rows][kChunk];
    for (int m = 0; m < x_rows; ++m) {
      const bool in_range = m0 + m < args.M;
      const uint x_row = gather ? lhs[m0] : m0 + m;
      for (int i = 0; i < kChunk; ++i) xs[m][i] = in_range ? x_at(args, x, x_row, c * kChunk + i) : 0.0f;
    }
    for (int r = 0; r < rows; ++r) {
      if (n0 + r >= N) break;
      float v[kChunk];
      dequantize_row_chunk(w_rows + ulong(n0 + r) * blocks_per_row, c, v);
      for (int m = 0; m < x_rows; ++m) {
        float dot = 0.0f;
        for (int i = 0; i < kChunk; ++i) dot += v[i] * xs[m][i];
        acc[m][r] += dot;
      }
    }
  }
  for (int m = 0; m < x_rows; ++m) {
    for (int r = 0; r < rows; ++r) {
      const float total = simd_sum(acc[m][r]);
      if (lane == 0 && m0 + m < args.M && n0 + r < N) y[ulong(m0 + m) * N + n0 + r] = O(total);
    }
  }
}

// --- tiled mat-mat: 64 rows of w x 32 rows of x per threadgroup -------------------------

constant constexpr int kMmRowsW = 64;
constant constexpr int kMmRowsX = 32;
constant constexpr int kMmStride = tile::kK + 4;  // padded rows spread threadgroup-memory banks
constant constexpr int kMmOutStride = kMmRowsW + 4;  // the staged 32 x 64 result, in the w tile's memory
constant constexpr int kMmThreads = 128;          // 4 simdgroups: 2 (x rows) x 2 (w rows)
// The staged tiles, in floats; kernels declare them (MSL allows threadgroup
// variables only in kernels) and mul_mm takes pointers.
constant constexpr int kMmFloatsX = kMmRowsX * kMmStride;
constant constexpr int kMmFloatsW = kMmRowsW * kMmStride;

// Each thread dequantizes one 16-value chunk of the w tile per K step (64
// rows x 2 chunks) and loads 8 values of the x tile; each w chunk is decoded
// once per tile and used by all 32 rows of x. With `sorted`, the x rows of
// the tile are rows z of a sorted MoE list (x row lhs[z], expert rhs[z],
// output row rows[z]) and the tile walks the runs of equal experts.
template <typename B, typename T, typename O, bool sorted>
void mul_mm(constant GGMLMatmulArgs& args, const device T* x, const device uint8_t* w, device O* y,
            const device uint32_t* lhs, const device uint32_t* rhs, const device uint32_t* rows_out, uint3 group,
            uint thread_index, uint simd_group, threadgroup float* xs, threadgroup float* ws) {
  const uint M = args.M, N = args.N, K = args.K;
  const uint blocks_per_row = K / traits<B>::values;
  const uint tile_m = group.y * kMmRowsX, tile_n = group.x * kMmRowsW;
  const uint w_row = thread_index / 2, w_chunk = thread_index % 2;        // one chunk of the w tile
  const uint x_row = thread_index / 4, x_col = thread_index % 4 * 8;       // 8 values of the x tile
  const uint frag_m = simd_group / 2 * 16, frag_n = simd_group % 2 * 32;
  simdgroup_float8x8 acc[2][4];
  tile::clear(acc);

  const uint end = sorted ? min(tile_m + kMmRowsX, M) : tile_m + 1;
  for (uint run = tile_m; run < end;) {
    uint run_end = end;
    const device B* w_rows = reinterpret_cast<const device B*>(w);
    if (sorted) {
      const uint expert = rhs[run];
      run_end = run + 1;
      while (run_end < end && rhs[run_end] == expert) ++run_end;
      w_rows += ulong(expert) * args.expert_rows * blocks_per_row;
    }
    const uint m = tile_m + x_row;
    const bool x_live = sorted ? m >= run && m < run_end : m < M;
    const uint x_source = sorted && x_live ? lhs[m] : m;
    for (uint k0 = 0; k0 < K; k0 += tile::kK) {
      for (int i = 0; i < 8; ++i) xs[x_row * kMmStride + x_col + i] = x_live ? x_at(args, x, x_source, k0 + x_col + i) : 0.0f;
      float v[kChunk];
      if (tile_n + w_row < N) {
        dequantize_row_chunk(w_rows + ulong(tile_n + w_row) * blocks_per_row, k0 / kChunk + w_chunk, v);
      } else {
        for (int i = 0; i < kChunk; ++i) v[i] = 0.0f;
      }
      for (int i = 0; i < kChunk; ++i) ws[w_row * kMmStride + w_chunk * kChunk + i] = v[i];
      threadgroup_barrier(mem_flags::mem_threadgroup);
      tile::multiply<true>(acc, xs, ws, kMmStride, frag_m, frag_n);
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    run = run_end;
  }

  static_assert(kMmRowsX * kMmOutStride <= kMmRowsW * kMmStride, "the result fits the w tile's memory");
  tile::stage(acc, ws, kMmOutStride, frag_m, frag_n);
  // Thread t writes 16 outputs: x row t / 4, w rows 16 (t % 4) ... + 16.
  const uint m = tile_m + thread_index / 4;
  const uint n_first = thread_index % 4 * 16;
  if (m < M) {
    const ulong out_row = sorted ? rows_out[m] : m;
    for (int i = 0; i < 16; ++i) {
      const uint n = tile_n + n_first + i;
      if (n < N) y[out_row * N + n] = O(ws[(thread_index / 4) * kMmOutStride + n_first + i]);
    }
  }
}

// --- dequantize -----------------------------------------------------------------------------

// One thread per chunk; bit-exact with gguf.quants.dequantize.
template <typename B, typename O>
void dequantize_rows(constant GGMLDequantizeArgs& args, const device uint8_t* w, device O* out, uint index) {
  const uint chunks_per_row = args.K / kChunk;
  if (index >= args.rows * chunks_per_row) return;
  const uint row = index / chunks_per_row, chunk = index % chunks_per_row;
  const device B* blocks = reinterpret_cast<const device B*>(w) + ulong(row) * (args.K / traits<B>::values);
  float v[kChunk];
  dequantize_row_chunk(blocks, chunk, v);
  for (int i = 0; i < kChunk; ++i) out[ulong(row) * args.K + chunk * kChunk + i] = O(v[i]);
}

}  // namespace ggml

// --- kernels --------------------------------------------------------------------------------

#define QMETAL_GGML_PARAMS                                                                    \
  constant GGMLMatmulArgs &args [[buffer(kArgsBufferIndex)]], const device T *x [[buffer(kGGMLX)]], \
      const device uint8_t *w [[buffer(kGGMLW)]], device O *y [[buffer(kGGMLY)]],              \
      uint3 group [[threadgroup_position_in_grid]]

// Activation rows a threadgroup of ggml_mul_mv_ext decodes each chunk for.
constant constexpr int kMvExtRows = 4;

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mv(QMETAL_GGML_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],
                            uint lane [[thread_index_in_simdgroup]]) {
  ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, 1, false>(args, x, w, y, nullptr, nullptr, group, simd_group, lane);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mv_ext(QMETAL_GGML_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],
                                uint lane [[thread_index_in_simdgroup]]) {
  ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, kMvExtRows, false>(args, x, w, y, nullptr, nullptr, group,
                                                                      simd_group, lane);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm(QMETAL_GGML_PARAMS, uint thread_index [[thread_index_in_threadgroup]],
                            uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[ggml::kMmFloatsX], ws[ggml::kMmFloatsW];
  ggml::mul_mm<B, T, O, false>(args, x, w, y, nullptr, nullptr, nullptr, group, thread_index, simd_group, xs, ws);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mv_id(QMETAL_GGML_PARAMS, const device uint32_t* lhs [[buffer(kGGMLLhs)]],
                               const device uint32_t* rhs [[buffer(kGGMLRhs)]],
                               uint simd_group [[simdgroup_index_in_threadgroup]],
                               uint lane [[thread_index_in_simdgroup]]) {
  ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, 1, true>(args, x, w, y, lhs, rhs, group, simd_group, lane);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm_id(QMETAL_GGML_PARAMS, const device uint32_t* lhs [[buffer(kGGMLLhs)]],
                               const device uint32_t* rhs [[buffer(kGGMLRhs)]],
                               const device uint32_t* rows [[buffer(kGGMLRows)]],
                               uint thread_index [[thread_index_in_threadgroup]],
                               uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[ggml::kMmFloatsX], ws[ggml::kMmFloatsW];
  ggml::mul_mm<B, T, O, true>(args, x, w, y, lhs, rhs, rows, group, thread_index, simd_group, xs, ws);
}

template <typename B, typename O>
[[kernel]] void ggml_dequantize(constant GGMLDequantizeArgs& args [[buffer(kArgsBufferIndex)]],
                                const device uint8_t* w [[buffer(kGGMLW)]], device O* out [[buffer(kGGMLY)]],
                                uint index [[thread_position_in_grid]]) {
  ggml::dequantize_rows<B, O>(args, w, out, index);
}

// Names: ggml_<kernel>_<type>_<activation dtype>_<output dtype>, as
// ggml_kernel_name() builds them on the host.
#define QMETAL_GGML_ONE(kernel, block, type_name, T, t_name, O, o_name)                              \
  template [[host_name("ggml_" #kernel "_" #type_name "_" #t_name "_" #o_name)]] [[kernel]]           \
  decltype(ggml_##kernel<ggml::block, T, O>) ggml_##kernel<ggml::block, T, O>;
#define QMETAL_GGML_DTYPES(kernel, block, type_name)                          \
  QMETAL_GGML_ONE(kernel, block, type_name, float, float32, float, float32)   \
  QMETAL_GGML_ONE(kernel, block, type_name, half, float16, float, float32)    \
  QMETAL_GGML_ONE(kernel, block, type_name, half, float16, half, float16)     \
  QMETAL_GGML_ONE(kernel, block, type_name, bfloat, bfloat16, float, float32) \
  QMETAL_GGML_ONE(kernel, block, type_name, bfloat, bfloat16, bfloat, bfloat16)
#define QMETAL_GGML_INSTANTIATE(kernel)                  \
  QMETAL_GGML_DTYPES(kernel, block_q4_0, q4_0)           \
  QMETAL_GGML_DTYPES(kernel, block_q4_1, q4_1)           \
  QMETAL_GGML_DTYPES(kernel, block_q5_0, q5_0)           \
  QMETAL_GGML_DTYPES(kernel, block_q5_1, q5_1)           \
  QMETAL_GGML_DTYPES(kernel, block_q8_0, q8_0)           \
  QMETAL_GGML_DTYPES(kernel, block_q2_K, q2_k)           \
  QMETAL_GGML_DTYPES(kernel, block_q3_K, q3_k)           \
  QMETAL_GGML_DTYPES(kernel, block_q4_K, q4_k)           \
  QMETAL_GGML_DTYPES(kernel, block_q5_K, q5_k)           \
  QMETAL_GGML_DTYPES(kernel, block_q6_K, q6_k)           \
  QMETAL_GGML_DTYPES(kernel, block_f32, f32)             \
  QMETAL_GGML_DTYPES(kernel, block_f16, f16)             \
  QMETAL_GGML_DTYPES(kernel, block_bf16, bf16)

#define QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, O, o_name)                                        \
  template [[host_name("ggml_dequantize_" #type_name "_" #o_name)]] [[kernel]]                         \
  decltype(ggml_dequantize<ggml::block, O>) ggml_dequantize<ggml::block, O>;
#define QMETAL_GGML_DEQUANTIZE(block, type_name)                  \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, float, float32)    \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, half, float16)     \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, bfloat, bfloat16)
