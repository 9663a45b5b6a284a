// GGML block kernels: weights exactly as a GGUF file stores them. Each type
// is a block struct with two routines:
// - dequantize(), a 16-value chunk of a block as floats, in the order of
//   operations of llama.cpp's reference (bit-exact with gguf.quants): the
//   tiled mat-mat loader and the dequantize kernel;
// - dot(), one lane's part of a block (16 or 32 values whose code bytes it
//   owns) against pre-scaled activations, codes masked in place in 16-bit words,
//   scales and offsets applied per run (audit F2): the mat-vec, small-batch
//   and MoE mat-vec kernels.
// Every kernel is a template over the block type. Adding a type: its struct,
// its traits (parts, chunks), dequantize() and dot(), a row in the instantiation
// list (ggml_*.metal) and in the host's type table.
#pragma once

#include <metal_stdlib>

#include "mat_vec.h"
#include "qmetal_args.h"
#include "tile.h"

using namespace metal;
using namespace qmetal_args;

namespace ggml {

constant constexpr int kChunk = int(kGGMLChunk);  // values one dequantize() call yields

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

// --- how mul_mv walks a block: parts -------------------------------------------------------
//
// In the mat-vec kernels a lane takes one *part* of a block per step: `part`
// values (kPart, or 32 for the K-quants: qmetal_args.h says why) whose code
// bytes it owns whole (both nibbles, all four 2-bit fields),
// read as 16-bit words, as llama.cpp's per-type kernels do. The activations a
// part pairs with are `runs` runs of part / runs consecutive values, run r
// starting at value run_offset(part, r) of the block; the lane loads them
// once per step, multiplies value i of run r by y_scale(r, i) so that a code
// masked in place in its word (`word & (0xF << 4)` is code * 16) needs no
// shift, and keeps each run's plain sum when has_sums (the offset or min of
// the codes is applied once through it). The per-type dot() below reads the
// words in the same order.
constant constexpr int kPart = int(kGGMLMvPart);

// Fields are masked in place within 16-bit halves of words (so that the
// masked value stays below 2^23, for field_float; a fifth or third bit merged
// above a field may reach bit 16): the second byte's fields come out of a
// mask 256 times larger, so their activations are scaled by 1/256.
constexpr float byte_scale(int i) { return i % 2 == 0 ? 1.0f : 1.0f / 256.0f; }
// Nibble runs: run 0 the low nibbles of the part's bytes, run 1 the high
// nibbles (masked in place: code * 16).
constexpr float nibble_scale(int run, int i) { return byte_scale(i) * (run == 0 ? 1.0f : 1.0f / 16.0f); }
// 2-bit runs: run r is the field at bits 2r of each byte (code * 4^r).
constexpr float two_bit_scale(int run, int i) { return byte_scale(i) / float(1 << (2 * run)); }

// --- where a dequantize() chunk's values sit: chunks -----------------------------------
//
// dequantize(block, c, v) yields kChunk values as `runs` runs of kChunk /
// runs consecutive values, run r starting at value run_offset(c, r) of the
// block (v[r * kChunk / runs + i] is that value + i). Most types' chunks are
// one run (contiguous_chunks); the legacy 4- and 5-bit types' chunks own
// code bytes whole as their mat-vec parts do (legacy_parts): both nibbles of
// 8 bytes, read once, where a 16-value run would read all 16 bytes for one
// nibble each: for Q4_0's 18-byte blocks (codes on 2-byte words), 4
// two-byte code loads per chunk in mul_mm rather than 8.
struct contiguous_chunks {
  static constant constexpr int runs = 1;
  static uint run_offset(uint chunk, int) { return kChunk * chunk; }
};

// Q4_0, Q4_1, Q5_0, Q5_1: parts of `part_values` values (16, or 32: the
// whole block). Part p owns qs bytes [n p, n p + n) (n = part_values / 2):
// values n p + i (low nibbles) and 16 + n p + i (high nibbles). Their
// dequantize() chunks are the 16-value parts.
template <int part_values>
struct legacy_parts {
  static_assert(part_values == 16 || part_values == 32, "parts of 16 or 32 values");
  using narrow = legacy_parts<kPart>;
  using chunks = legacy_parts<kPart>;
  static constant constexpr int part = part_values, runs = 2;
  static constant constexpr bool has_sums = true;
  static uint run_offset(uint p, int run) { return part / 2 * p + 16 * run; }
  static constexpr float y_scale(int run, int i) { return nibble_scale(run, i); }
};
// Q8_0: part p is values [n p, n p + n) (n = part_values, 16 or 32), one
// int8 each, read as 16-bit words; dot() biases the codes to unsigned (see
// there), hence the sum.
template <int part_values>
struct q8_parts {
  static_assert(part_values == 16 || part_values == 32, "parts of 16 or 32 values");
  using narrow = q8_parts<kPart>;
  using chunks = contiguous_chunks;
  static constant constexpr int part = part_values, runs = 1;
  static constant constexpr bool has_sums = true;
  static uint run_offset(uint p, int) { return part * p; }
  static constexpr float y_scale(int, int i) { return byte_scale(i); }
};
// Q2_K, Q3_K, Q6_K: parts of `part_values` values, n = part_values / 4
// bytes of each run. Part p owns bytes [n (p % per_half), + n) of the
// 32-byte plane of half p / per_half, whose byte l holds value 128 half +
// 32 r + l in field r. As k_nibble_parts, mul_mv_ext takes 16-value ones.
template <int part_values>
struct k_plane_parts {
  using chunks = contiguous_chunks;
  // A part's bytes of each plane: whole 16-bit words, inside one 16-value
  // sub-block (sub_block) and one plane.
  static_assert(part_values == 16 || part_values == 32, "parts of 16 or 32 values");
  static constant constexpr int part = part_values, runs = 4;
  static constant constexpr int bytes = part_values / 4, per_half = 32 / bytes;
  static constant constexpr bool has_sums = true;
  static uint half_of(uint p) { return p / per_half; }
  static uint byte_of(uint p) { return bytes * (p % per_half); }  // in its plane
  static uint run_offset(uint p, int run) { return 128 * half_of(p) + 32 * run + byte_of(p); }
  // The 16-value sub-block of run r: 8 half + 2 r + this one.
  static uint sub_block(uint p) { return 8 * half_of(p) + byte_of(p) / 16; }
};
template <int part_values>
struct k_two_bit_parts : k_plane_parts<part_values> {
  using narrow = k_two_bit_parts<kPart>;
  static constexpr float y_scale(int run, int i) { return two_bit_scale(run, i); }
};
template <int part_values>
struct q6_k_parts : k_plane_parts<part_values> {
  using narrow = q6_k_parts<kPart>;
  // 6-bit codes are assembled per byte (constant shifts) before the mask.
  static constexpr float y_scale(int, int i) { return byte_scale(i); }
};
// Q4_K, Q5_K: parts of `part_values` values (32 or 16). Part p owns qs bytes
// [32 g + n j, + n) (n = part_values / 2, g = p / per_pair, j = p % per_pair):
// values 64 g + n j + i (low nibbles, sub-block 2g) and + 32 (high, 2g + 1).
// narrow: the 16-value parts mul_mv_ext takes, as its activations for up to 5
// rows would not fit in registers at 32 (the CUDA translation of a 5-row
// mul_mv_ext for Q4_K: 233 registers and a 768-byte stack; 168 and none at 16).
template <int part_values>
struct k_nibble_parts {
  // A part's code bytes: whole 32-bit words (nibble_dots, Q5_K's qh words),
  // inside one 32-byte pair of sub-blocks.
  static_assert(part_values == 16 || part_values == 32, "parts of 16 or 32 values");
  using narrow = k_nibble_parts<kPart>;
  using chunks = contiguous_chunks;
  static constant constexpr int part = part_values, runs = 2;
  static constant constexpr int per_pair = 64 / part_values;  // parts per pair of sub-blocks
  static constant constexpr bool has_sums = true;
  static uint run_offset(uint p, int run) { return 64 * (p / per_pair) + 32 * run + part / 2 * (p % per_pair); }
  static constexpr float y_scale(int run, int i) { return nibble_scale(run, i); }
};
// Dense: the 16-value block is one part.
struct dense_parts {
  using narrow = dense_parts;
  using chunks = contiguous_chunks;
  static constant constexpr int part = kPart, runs = 1;
  static constant constexpr bool has_sums = false;
  static uint run_offset(uint, int) { return 0; }
  static constexpr float y_scale(int, int) { return 1.0f; }
};

// values: per block; mv_rows: rows of w per simdgroup in mul_mv (as
// llama.cpp picks them: fewer for types whose blocks take longer to decode).
template <typename B> struct traits;
// Word: the unsigned type of kGGMLWord<type> bytes that code bytes are read in.
template <uint bytes> struct word_of;
template <> struct word_of<2> { using type = ushort; };
template <> struct word_of<4> { using type = uint; };
template <> struct traits<block_q4_0> : legacy_parts<int(kGGMLMvPartQ4_0)> {
  static constant constexpr int values = 32, mv_rows = int(kGGMLMvRowsQ4_0);
  using Word = word_of<kGGMLWordQ4_0>::type;
};
template <> struct traits<block_q4_1> : legacy_parts<int(kGGMLMvPartQ4_1)> {
  static constant constexpr int values = 32, mv_rows = int(kGGMLMvRowsQ4_1);
  using Word = word_of<kGGMLWordQ4_1>::type;
};
template <> struct traits<block_q5_0> : legacy_parts<kPart> {
  static constant constexpr int values = 32, mv_rows = int(kGGMLMvRowsQ5_0);
  using Word = word_of<kGGMLWordQ5_0>::type;
};
template <> struct traits<block_q5_1> : legacy_parts<kPart> {
  static constant constexpr int values = 32, mv_rows = int(kGGMLMvRowsQ5_1);
  using Word = word_of<kGGMLWordQ5_1>::type;
};
template <> struct traits<block_q8_0> : q8_parts<int(kGGMLMvPartQ8_0)> {
  static constant constexpr int values = 32, mv_rows = int(kGGMLMvRowsQ8_0);
  using Word = word_of<kGGMLWordQ8_0>::type;
};
template <> struct traits<block_q2_K> : k_two_bit_parts<int(kGGMLMvPartQ2_K)> {
  static constant constexpr int values = 256, mv_rows = int(kGGMLMvRowsQ2_K);
  using Word = word_of<kGGMLWordQ2_K>::type;
};
template <> struct traits<block_q3_K> : k_two_bit_parts<int(kGGMLMvPartQ3_K)> {
  static constant constexpr int values = 256, mv_rows = int(kGGMLMvRowsQ3_K);
  using Word = word_of<kGGMLWordQ3_K>::type;
};
template <> struct traits<block_q4_K> : k_nibble_parts<int(kGGMLMvPartQ4_K)> {
  static constant constexpr int values = 256, mv_rows = int(kGGMLMvRowsQ4_K);
  using Word = word_of<kGGMLWordQ4_K>::type;
};
template <> struct traits<block_q5_K> : k_nibble_parts<int(kGGMLMvPartQ5_K)> {
  static constant constexpr int values = 256, mv_rows = int(kGGMLMvRowsQ5_K);
  using Word = word_of<kGGMLWordQ5_K>::type;
};
template <> struct traits<block_q6_K> : q6_k_parts<int(kGGMLMvPartQ6_K)> {
  static constant constexpr int values = 256, mv_rows = int(kGGMLMvRowsQ6_K);
  using Word = word_of<kGGMLWordQ6_K>::type;
};
template <> struct traits<block_f32> : dense_parts {
  static constant constexpr int values = 16, mv_rows = int(kGGMLMvRowsF32);
  using Word = word_of<kGGMLWordF32>::type;
};
template <> struct traits<block_f16> : dense_parts {
  static constant constexpr int values = 16, mv_rows = int(kGGMLMvRowsF16);
  using Word = word_of<kGGMLWordF16>::type;
};
template <> struct traits<block_bf16> : dense_parts {
  static constant constexpr int values = 16, mv_rows = int(kGGMLMvRowsBF16);
  using Word = word_of<kGGMLWordBF16>::type;
};

// Format constants.
constant constexpr float kQ4Offset = 8.0f;   // Q4_0 codes are stored + 8
constant constexpr float kQ5Offset = 16.0f;  // Q5_0 codes are stored + 16
constant constexpr float kQ5HighBit = 16.0f; // the fifth bit of a 5-bit code
constant constexpr float kQ3HighBit = 4.0f;  // the third bit of a Q3_K code
constant constexpr float kQ3Offset = 4.0f;   // Q3_K codes are stored + 4 (with the high bit)
constant constexpr float kQ3ScaleOffset = 32.0f;  // Q3_K's 6-bit scales are stored + 32
constant constexpr float kQ6Offset = 32.0f;  // Q6_K codes are stored + 32

// --- dequantize: chunk c of a block, its values placed by traits<B>::chunks ------------
//
// The bit position of a chunk's fields depends on c, a runtime value: rather
// than shift every value by it, each field is masked in place and scaled back
// by 2^-shift (both exact, so the codes and hence the values are bit-exact
// with gguf.quants); the position costs one shift per chunk (audit F2). Code
// bytes are read as 16- or 32-bit words (Word: what the block's layout keeps
// aligned, traits<B>::Word), not byte by byte: a tile stages 16 values per
// thread and step, and 16 one-byte loads each were what bound mul_mm (ncu on
// the H200: the L1 pipe 92% busy at 0.55 of MLX's tiles).
struct chunk_field {
  uint mask;      // the field at its bit position
  float unshift;  // 2^-position
};

inline chunk_field field_at(uint width_mask, uint shift) { return {width_mask << shift, 1.0f / float(1u << shift)}; }

constant constexpr uint kNibble = 0xF, kTwoBits = 0x3;

inline const device ushort* words16(const device uint8_t* p) { return reinterpret_cast<const device ushort*>(p); }

// codes[i] = field f of byte i of the n bytes at p (aligned to Word). Byte b
// of a word holds its field 8b bits higher: masked there in place and scaled
// back by 2^-8b too.
template <typename Word, int n>
inline void byte_fields(const device uint8_t* p, chunk_field f, thread float* codes) {
  constexpr int bytes = sizeof(Word);
  const device Word* words = reinterpret_cast<const device Word*>(p);
  for (int k = 0; k < n / bytes; ++k) {
    const uint word = words[k];
    for (int b = 0; b < bytes; ++b) {
      codes[k * bytes + b] = float(word & (f.mask << (8 * b))) * (f.unshift / float(1u << (8 * b)));
    }
  }
}

// set[i] = whether byte i of the n bytes at p (aligned to Word) has any bit of `bit` set.
template <typename Word, int n>
inline void byte_bits(const device uint8_t* p, uint bit, thread bool* set) {
  constexpr int bytes = sizeof(Word);
  const device Word* words = reinterpret_cast<const device Word*>(p);
  for (int k = 0; k < n / bytes; ++k) {
    const uint word = words[k];
    for (int b = 0; b < bytes; ++b) set[k * bytes + b] = (word & (bit << (8 * b))) != 0;
  }
}

template <typename B>
using CodeWord = typename traits<B>::Word;

// The legacy types' chunks (legacy_parts): chunk c is both nibbles of code
// bytes [8c, 8c + 8), the low ones first.
static_assert(legacy_parts<kPart>::part == kChunk && legacy_parts<kPart>::runs == 2,
              "a legacy chunk: 8 bytes, both nibbles");
constant constexpr int kLegacyChunkBytes = kChunk / 2;

template <typename B>
inline void legacy_nibbles(const device B& b, uint c, thread float* codes) {
  const device uint8_t* q = b.qs + kLegacyChunkBytes * c;
  byte_fields<CodeWord<B>, kLegacyChunkBytes>(q, field_at(kNibble, 0), codes);
  byte_fields<CodeWord<B>, kLegacyChunkBytes>(q, field_at(kNibble, 4), codes + kLegacyChunkBytes);
}

inline void dequantize(const device block_q4_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  float code[kChunk];
  legacy_nibbles(b, c, code);
  for (int i = 0; i < kChunk; ++i) v[i] = d * (code[i] - kQ4Offset);
}

inline void dequantize(const device block_q4_1& b, uint c, thread float* v) {
  const float d = float(b.d), m = float(b.m);
  float code[kChunk];
  legacy_nibbles(b, c, code);
  for (int i = 0; i < kChunk; ++i) v[i] = d * code[i] + m;
}

// The fifth bits of chunk c of a Q5_0 / Q5_1 block, in the order of its
// values: bit i of qh is value i's, so the low run's are bits 8c + i and the
// high run's 16 + 8c + i.
inline uint q5_chunk_high_bits(const device uint8_t* qh, uint c) {
  const uint bits = uint(words16(qh)[0]) | (uint(words16(qh)[1]) << 16);  // qh is 2-byte aligned in Q5_0
  const uint shifted = bits >> (kLegacyChunkBytes * c);
  return (shifted & 0xFFu) | ((shifted >> 8) & 0xFF00u);
}

inline void dequantize(const device block_q5_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  float code[kChunk];
  legacy_nibbles(b, c, code);
  const uint high = q5_chunk_high_bits(b.qh, c);
  for (int i = 0; i < kChunk; ++i) {
    v[i] = d * (code[i] + ((high & (1u << i)) != 0 ? kQ5HighBit : 0.0f) - kQ5Offset);
  }
}

inline void dequantize(const device block_q5_1& b, uint c, thread float* v) {
  const float d = float(b.d), m = float(b.m);
  float code[kChunk];
  legacy_nibbles(b, c, code);
  const uint high = q5_chunk_high_bits(b.qh, c);
  for (int i = 0; i < kChunk; ++i) v[i] = d * (code[i] + ((high & (1u << i)) != 0 ? kQ5HighBit : 0.0f)) + m;
}

// Q8_0's int8 codes, biased to unsigned by flipping their sign bits (q + 128),
// are masked in place like the other types' fields (no sign extension).
constant constexpr uint kQ8SignBits = 0x80808080u;  // of every byte of a word
constant constexpr uint kQ8SignBits16 = 0x8080u;     // of both bytes of a 16-bit pair
constant constexpr float kQ8Bias = 128.0f;

inline void dequantize(const device block_q8_0& b, uint c, thread float* v) {
  const float d = float(b.d);
  const device ushort* q = words16(reinterpret_cast<const device uint8_t*>(b.qs) + kChunk * c);
  for (int k = 0; k < kChunk / 2; ++k) {
    const uint word = q[k] ^ kQ8SignBits;
    v[2 * k] = d * (float(word & 0x00FFu) - kQ8Bias);
    v[2 * k + 1] = d * (float(word & 0xFF00u) / 256.0f - kQ8Bias);
  }
}

// K-types: value e = 16 c + i sits in half e / 128, quarter (e % 128) / 32
// and lane e % 32 of the 2-bit planes (Q2_K, Q3_K, Q6_K's high bits), or in
// byte 32 (e / 64) + e % 32, nibble (e % 64) / 32 (Q4_K, Q5_K).
inline void dequantize(const device block_q2_K& b, uint c, thread float* v) {
  const uint half_index = c / 8, lane0 = kChunk * (c % 2);
  const uint8_t sc = b.scales[c];
  const float mult = float(b.d) * float(sc & 0xF);
  const float add = -(float(b.dmin) * float(sc >> 4));
  float code[kChunk];
  byte_fields<CodeWord<block_q2_K>, kChunk>(b.qs + 32 * half_index + lane0, field_at(kTwoBits, 2 * ((c % 8) / 2)),
                                            code);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * code[i] + add;
}

inline void dequantize(const device block_q3_K& b, uint c, thread float* v) {
  const uint half_index = c / 8, lane0 = kChunk * (c % 2), high_bit = 1u << (c / 2);
  // Sixteen 6-bit signed scales: low nibbles in bytes 0..7, high pairs in 8..11.
  const int low = (b.scales[c % 8] >> (4 * (c / 8))) & 0xF;
  const int high = (b.scales[8 + c % 4] >> (2 * (c / 4))) & 0x3;
  const float mult = float(b.d) * float((low | (high << 4)) - 32);
  float code[kChunk];
  bool set[kChunk];
  byte_fields<CodeWord<block_q3_K>, kChunk>(b.qs + 32 * half_index + lane0, field_at(kTwoBits, 2 * ((c % 8) / 2)),
                                            code);
  byte_bits<CodeWord<block_q3_K>, kChunk>(b.hmask + lane0, high_bit, set);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * (code[i] + (set[i] ? kQ3HighBit : 0.0f) - kQ3Offset);
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
  float code[kChunk];
  byte_fields<CodeWord<block_q4_K>, kChunk>(b.qs + 32 * (c / 4) + kChunk * (c % 2), field_at(kNibble, 4 * ((c % 4) / 2)),
                                            code);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * code[i] + add;
}

inline void dequantize(const device block_q5_K& b, uint c, thread float* v) {
  uint sc, m;
  k4_scale_min(b.scales, c / 2, sc, m);
  const float mult = float(b.d) * float(sc);
  const float add = -(float(b.dmin) * float(m));
  const uint lane0 = kChunk * (c % 2), high_bit = 1u << (c / 2);
  float code[kChunk];
  bool set[kChunk];
  byte_fields<CodeWord<block_q5_K>, kChunk>(b.qs + 32 * (c / 4) + lane0, field_at(kNibble, 4 * ((c % 4) / 2)), code);
  byte_bits<CodeWord<block_q5_K>, kChunk>(b.qh + lane0, high_bit, set);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * (code[i] + (set[i] ? kQ5HighBit : 0.0f)) + add;
}

inline void dequantize(const device block_q6_K& b, uint c, thread float* v) {
  constexpr float high_weight = 16.0f;  // the high two bits sit above the nibble
  const uint half_index = c / 8, quarter = (c % 8) / 2, lane0 = kChunk * (c % 2);
  const uint low_byte0 = 64 * half_index + lane0 + 32 * (quarter % 2), high_byte0 = 32 * half_index + lane0;
  const float mult = float(b.d) * float(b.scales[c]);
  float low[kChunk], high[kChunk];
  byte_fields<CodeWord<block_q6_K>, kChunk>(b.ql + low_byte0, field_at(kNibble, 4 * (quarter / 2)), low);
  byte_fields<CodeWord<block_q6_K>, kChunk>(b.qh + high_byte0, field_at(kTwoBits, 2 * quarter), high);
  for (int i = 0; i < kChunk; ++i) v[i] = mult * (low[i] + high_weight * high[i] - kQ6Offset);
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

// Chunk `chunk` (counted over the whole row) of the row starting at `row`;
// its values sit in the row as chunk_runs<B> runs from chunk_run_start<B>.
template <typename B>
inline void dequantize_row_chunk(const device B* row, uint chunk, thread float* v) {
  constexpr uint chunks_per_block = traits<B>::values / kChunk;
  dequantize(row[chunk / chunks_per_block], chunk % chunks_per_block, v);
}

template <typename B>
struct chunk_runs {
  static constant constexpr int count = traits<B>::chunks::runs, values = kChunk / count;
};

// The row's value at which run `run` of chunk `chunk` (counted over the row) starts.
template <typename B>
inline uint chunk_run_start(uint chunk, int run) {
  constexpr uint chunks_per_block = traits<B>::values / kChunk;
  return chunk / chunks_per_block * traits<B>::values + traits<B>::chunks::run_offset(chunk % chunks_per_block, run);
}

// --- per-type dot: one part of one block against pre-scaled activations ---------------
//
// dot<R>(block, part, y, sums, out): out[m] = sum over the part's values
// of w * x, for R activation rows at once (the codes are converted once and
// used R times). y is [R][traits<B>::part], each row laid out as the part's
// runs scaled by traits<B>::y_scale; sums is [R][runs], the plain sums of
// those runs (read only by types with has_sums). One call reads one part of
// the block: sizeof(B) * part / traits<B>::values weight bytes
// on average (the block's scale fields included). Per value: one AND with a
// constant mask and one subtraction (field_float, no convert), one FMA; block
// scales and the offset / min are applied once per run through its sum, not
// per value.

// An integer below 2^23 as float without a convert: placed in the mantissa
// of 2^23, which is then subtracted; both steps are exact and full-rate
// (a convert is quarter-rate on Apple GPUs, audit section 0). Used for
// per-run scale codes, which would otherwise add converts per part, and
// for the 2-bit codes of Q2_K / Q3_K (see two_bit_dots).
constant constexpr uint kFloatTwoPow23 = 0x4B000000u;  // the bits of the float 2^23
inline float exact_float(uint v) { return as_type<float>(kFloatTwoPow23 | v) - 8388608.0f; }

// The fields of a 16-bit pair of code bytes, with one operation fewer each:
// the pair with 2^23's bits set above it (biased_pair, once), then per field
// one AND with the field's mask and 2^23's bits (field_float). The pair's
// bits above 16 do not matter: the mask clears them.
inline uint biased_pair(uint pair) { return pair | kFloatTwoPow23; }
inline float field_float(uint biased, uint mask) { return as_type<float>(biased & (kFloatTwoPow23 | mask)) - 8388608.0f; }

// Both nibbles of n bytes (read as Words of 2 or 4 bytes, a 32-bit word's
// upper half shifted down once): lo[m] += the low-nibble run's dot, hi[m] +=
// the high-nibble run's (y rows of 2n values laid out and scaled as nibble_scale). Codes take
// field_float: full-rate operations rather than a convert, which the H200
// runs at 1/8 of the FMA rate and Apple GPUs at 1/4 (audit section 0); one
// per weight bounded the large mat-vecs there. (With exact_float per code,
// an OR more per value, the loop of Q4_0's mul_mv took 753 SASS
// instructions per step of 4 rows in the CUDA translation; with field_float, 685.)
//
// Fifth: bits merged above the nibbles before they become floats. none: the
// 4-bit types (each field masked straight out of the pair); q5_k_fifth_bits:
// Q5_K's, making each code one 5-bit field (no per-value select).
struct no_fifth_bits {
  static constant constexpr uint code_bits = 0xFu;
  uint at(int) const { return 0; }
  static uint low_codes(uint pair, uint, int) { return pair; }
  static uint high_codes(uint pair, uint, int) { return pair; }
};
// The fifth bit of value i of run r is bit position + r of qh[i] (position
// 2g for sub-blocks 2g, 2g + 1). One shift by the position per 32-bit word
// (bit `position` of byte b to 8b, the next to 8b + 1), then constant ones
// onto the bit above each nibble as masked in place: bit 4 of a byte for the
// low run, bit 8 (16 for the second byte) for the high run.
struct q5_k_fifth_bits {
  static constant constexpr uint code_bits = 0x1Fu;
  const device uint* qh;
  uint position;
  uint at(int k) const { return qh[k] >> position; }
  static uint low_codes(uint pair, uint fifth, int half_word) {
    return (pair & 0x0F0Fu) | (((fifth >> (16 * half_word)) << 4) & 0x1010u);
  }
  static uint high_codes(uint pair, uint fifth, int half_word) {
    return (pair & 0xF0F0u) | ((half_word == 0 ? fifth << 7 : fifth >> 9) & 0x10100u);
  }
};

template <int R, typename Word, int n = 8, typename Fifth = no_fifth_bits>
inline void nibble_dots(const device uint8_t* q, const thread float* y, thread float* lo, thread float* hi,
                        Fifth fifth = Fifth()) {
  constexpr int bytes = sizeof(Word);
  constexpr uint low_mask = Fifth::code_bits, high_mask = Fifth::code_bits << 4;
  const device Word* w = reinterpret_cast<const device Word*>(q);
  for (int k = 0; k < n / bytes; ++k) {
    const uint word = w[k], fifth_bits = fifth.at(k);
    for (int half_word = 0; half_word < bytes / 2; ++half_word) {
      const uint pair = half_word == 0 ? word : word >> 16;  // two bytes, at bits 0 and 8
      const uint low = biased_pair(Fifth::low_codes(pair, fifth_bits, half_word));
      const uint high = biased_pair(Fifth::high_codes(pair, fifth_bits, half_word));
      const int i = k * bytes + 2 * half_word;
      const float low0 = field_float(low, low_mask), low1 = field_float(low, low_mask << 8);
      const float high0 = field_float(high, high_mask), high1 = field_float(high, high_mask << 8);
      for (int m = 0; m < R; ++m) {
        const thread float* ym = y + m * 2 * n;
        lo[m] += ym[i] * low0 + ym[i + 1] * low1;
        hi[m] += ym[n + i] * high0 + ym[n + i + 1] * high1;
      }
    }
  }
}

// The four 2-bit fields of n bytes (n / 2 words): acc[m * 4 + r] += run r's
// dot (y rows of 4n values, run r at n r).
// Four codes per byte would cost 3 to 4 converts per weight byte, over the
// audit's budget of 3.3 to 4.8 quarter-rate ops per byte for the whole loop,
// so these codes take field_float (full-rate) instead of a convert.
template <int R, int n>
inline void two_bit_dots(const device uint8_t* q, const thread float* y, thread float* acc) {
  const device ushort* w = words16(q);
  for (int k = 0; k < n / 2; ++k) {
    const uint pair = biased_pair(w[k]);
    for (int r = 0; r < 4; ++r) {
      const uint field = 0x0003u << (2 * r);  // in byte 0; << 8 in byte 1
      const float c0 = field_float(pair, field), c1 = field_float(pair, field << 8);
      for (int m = 0; m < R; ++m) acc[m * 4 + r] += y[m * 4 * n + n * r + 2 * k] * c0 + y[m * 4 * n + n * r + 2 * k + 1] * c1;
    }
  }
}

template <int R>
inline void zero(thread float* v) {
  for (int i = 0; i < R; ++i) v[i] = 0.0f;
}


// Q5_0 / Q5_1: the fifth bit of value i of run r is bit i of byte `high[r]`
// (qh[part], qh[2 + part]). Selected, not shifted or converted.
template <int R>
inline void legacy_high_bits(uint high0, uint high1, const thread float* y, thread float* acc) {
  for (int r = 0; r < 2; ++r) {
    const uint high = r == 0 ? high0 : high1;
    for (int i = 0; i < 8; ++i) {
      const float weight = kQ5HighBit / legacy_parts<kPart>::y_scale(r, i);  // undoes the pre-scale
      for (int m = 0; m < R; ++m) acc[m] += (high & (1u << i)) != 0 ? y[m * kPart + 8 * r + i] * weight : 0.0f;
    }
  }
}

template <int R, int Part = kPart>
inline void dot(const device block_q4_0& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  float lo[R], hi[R];
  zero<R>(lo);
  zero<R>(hi);
  nibble_dots<R, ushort, Part / 2>(b.qs + Part / 2 * part, y, lo, hi);
  const float d = float(b.d);
  for (int m = 0; m < R; ++m) out[m] = d * (lo[m] + hi[m] - kQ4Offset * (sums[2 * m] + sums[2 * m + 1]));
}

template <int R, int Part = kPart>
inline void dot(const device block_q4_1& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  float lo[R], hi[R];
  zero<R>(lo);
  zero<R>(hi);
  nibble_dots<R, ushort, Part / 2>(b.qs + Part / 2 * part, y, lo, hi);
  const float d = float(b.d), min = float(b.m);
  for (int m = 0; m < R; ++m) out[m] = d * (lo[m] + hi[m]) + min * (sums[2 * m] + sums[2 * m + 1]);
}

template <int R, int Part = kPart>
inline void dot(const device block_q5_0& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  float lo[R], hi[R];
  zero<R>(lo);
  zero<R>(hi);
  nibble_dots<R, ushort>(b.qs + 8 * part, y, lo, hi);
  legacy_high_bits<R>(b.qh[part], b.qh[2 + part], y, lo);
  const float d = float(b.d);
  for (int m = 0; m < R; ++m) out[m] = d * (lo[m] + hi[m] - kQ5Offset * (sums[2 * m] + sums[2 * m + 1]));
}

template <int R, int Part = kPart>
inline void dot(const device block_q5_1& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  float lo[R], hi[R];
  zero<R>(lo);
  zero<R>(hi);
  nibble_dots<R, ushort>(b.qs + 8 * part, y, lo, hi);
  legacy_high_bits<R>(b.qh[part], b.qh[2 + part], y, lo);
  const float d = float(b.d), min = float(b.m);
  for (int m = 0; m < R; ++m) out[m] = d * (lo[m] + hi[m]) + min * (sums[2 * m] + sums[2 * m + 1]);
}

// The int8 codes of a word, biased to unsigned as in dequantize(); the bias
// goes out through the sum of y. No sign extension, no byte extraction.

template <int R, int Part = kPart>
inline void dot(const device block_q8_0& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  const device ushort* q = words16(reinterpret_cast<const device uint8_t*>(b.qs) + Part * part);
  float acc[R];
  zero<R>(acc);
  for (int k = 0; k < Part / 2; ++k) {
    // One XOR flips both sign bits and sets 2^23's bits (a ushort has none there).
    const uint pair = q[k] ^ (kQ8SignBits16 | kFloatTwoPow23);
    const float c0 = field_float(pair, 0x00FFu), c1 = field_float(pair, 0xFF00u);
    for (int m = 0; m < R; ++m) acc[m] += y[m * Part + 2 * k] * c0 + y[m * Part + 2 * k + 1] * c1;
  }
  const float d = float(b.d);
  for (int m = 0; m < R; ++m) out[m] = d * (acc[m] - kQ8Bias * sums[m]);
}

template <int R, int Part = kPart>
inline void dot(const device block_q2_K& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  using parts = k_plane_parts<Part>;
  float acc[R * 4];
  zero<R * 4>(acc);
  two_bit_dots<R, parts::bytes>(b.qs + (32 * parts::half_of(part) + parts::byte_of(part)), y, acc);
  // The runs' scale bytes, every other byte from this part's sub-block (a
  // pointer once, then constant offsets: no index arithmetic per run).
  const device uint8_t* run_scales = b.scales + parts::sub_block(part);
  const float d = float(b.d), dmin = float(b.dmin);
  float scale[4], min[4];
  for (int r = 0; r < 4; ++r) {
    // Byte: scale code in the low nibble, min code in the high one (masked in place: code * 16).
    const uint packed = biased_pair(run_scales[2 * r]);
    scale[r] = d * field_float(packed, 0x0Fu);
    min[r] = dmin / 16.0f * field_float(packed, 0xF0u);
  }
  for (int m = 0; m < R; ++m) {
    float total = 0.0f;
    for (int r = 0; r < 4; ++r) total += scale[r] * acc[m * 4 + r] - min[r] * sums[m * 4 + r];
    out[m] = total;
  }
}

template <int R, int Part = kPart>
inline void dot(const device block_q3_K& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  using parts = k_plane_parts<Part>;
  constexpr int n = parts::bytes;
  float acc[R * 4];
  zero<R * 4>(acc);
  const uint half_index = parts::half_of(part), bytes = parts::byte_of(part);
  // The third bit of value i of run r is bit 4 half + r of hmask[bytes + i].
  // It is shifted onto bit 2r + 2 of its byte, just above the run's two bits
  // as masked in place, so that each 3-bit code is one field, no per-value
  // select (SASS of the CUDA translation, 16-value parts at 4 rows: 16.3 ->
  // 14.8 instructions per weight, 72 -> 56 registers). Even and odd runs go
  // to two words (below): the same four shifts per pair, but one mask, OR
  // and bias per word rather than per run: mul_mv's loop 1427 -> 1363
  // instructions per step of 4 rows x 32 values.
  const device ushort* codes = words16(b.qs + (32 * half_index + bytes));
  const device ushort* third_bits = words16(b.hmask + bytes);
  const bool upper = half_index != 0;
  for (int k = 0; k < n / 2; ++k) {
    const uint pair = codes[k], thirds = upper ? uint(third_bits[k]) >> 4 : uint(third_bits[k]);
    // Runs 0 and 2 (fields at bits 0 and 4 of each byte) and runs 1 and 3
    // (2 and 6) in two words, so that each run's third bit has free room
    // above its field (run 3's of the low byte at bit 8, the high byte's
    // run 0 field being masked out of `odd`).
    const uint even = biased_pair((pair & 0x3333u) | ((thirds << 2) & 0x0404u) | ((thirds << 4) & 0x4040u));
    const uint odd = biased_pair((pair & 0xCCCCu) | ((thirds << 3) & 0x1010u) | ((thirds << 5) & 0x10100u));
    for (int r = 0; r < 4; ++r) {
      const uint biased = r % 2 == 0 ? even : odd;
      const float c0 = field_float(biased, 0x0007u << (2 * r)), c1 = field_float(biased, 0x0700u << (2 * r));
      for (int m = 0; m < R; ++m) acc[m * 4 + r] += y[m * Part + n * r + 2 * k] * c0 + y[m * Part + n * r + 2 * k + 1] * c1;
    }
  }
  // Sixteen 6-bit scales: sub-block s has its low nibble in scales[s % 8]
  // (nibble s / 8) and its high two bits in scales[8 + s % 4] (bits 2 (s / 4)).
  // For this part's runs s = 8 half + 2 r + t, so the nibble is `upper` and
  // the pair 2 upper + r / 2; both are masked in place and scaled back.
  const device uint8_t* run_scales = b.scales + bytes / 16;  // + t
  const float d = float(b.d);
  float scale[4];
  for (int r = 0; r < 4; ++r) {
    const uint low = run_scales[2 * r], high = run_scales[8 + 2 * (r % 2)];
    const uint high_shift = 2 * (r / 2);  // + 4 when upper
    const float low_code = upper ? exact_float(low & 0xF0u) / 16.0f : exact_float(low & 0x0Fu);
    const float high_code = upper ? exact_float(high & (0x30u << high_shift)) / float(1 << high_shift)
                                  : exact_float(high & (0x03u << high_shift)) * float(16 >> high_shift);
    scale[r] = d * (low_code + high_code - kQ3ScaleOffset);
  }
  for (int m = 0; m < R; ++m) {
    float total = 0.0f;
    for (int r = 0; r < 4; ++r) total += scale[r] * (acc[m * 4 + r] - kQ3Offset * sums[m * 4 + r]);
    out[m] = total;
  }
}

// Q4_K / Q5_K: scale and min codes of sub-blocks 2g and 2g + 1 (this part's
// two runs), eight 6-bit pairs packed in 12 bytes (llama.cpp's
// get_scale_min_k4). Read as 16-bit pairs and masked, both branches
// computed and selected, so lanes of different g do not diverge.
inline void k4_part_scales(const device uint8_t* s, uint g, thread float* scale, thread float* min) {
  const device ushort* pairs = words16(s + 2 * (g % 2));
  const uint a = pairs[0], b = pairs[2], c = pairs[4];  // bytes 2g', 4 + 2g', 8 + 2g' (g' = g % 2)
  const bool first = g < 2;
  const uint scales = first ? a & 0x3F3Fu : (c & 0x0F0Fu) | ((a & 0xC0C0u) >> 2);
  const uint mins = first ? b & 0x3F3Fu : ((c >> 4) & 0x0F0Fu) | ((b & 0xC0C0u) >> 2);
  const uint biased_scales = biased_pair(scales), biased_mins = biased_pair(mins);
  scale[0] = field_float(biased_scales, 0x00FFu);
  scale[1] = field_float(biased_scales, 0xFF00u) / 256.0f;
  min[0] = field_float(biased_mins, 0x00FFu);
  min[1] = field_float(biased_mins, 0xFF00u) / 256.0f;
}

// Q4_K and Q5_K: the part's code bytes through nibble_dots (with Q5_K's
// fifth bits), then sub-blocks 2g and 2g + 1's scales and mins.
template <int R, int Part, typename B, typename Fifth>
inline void k4_dot(const device B& b, uint g, uint j, Fifth fifth, const thread float* y, const thread float* sums,
                   thread float* out) {
  constexpr int bytes = Part / 2;
  float lo[R], hi[R];
  zero<R>(lo);
  zero<R>(hi);
  nibble_dots<R, uint, bytes>(b.qs + 32 * g + bytes * j, y, lo, hi, fifth);
  float scale[2], min[2];
  k4_part_scales(b.scales, g, scale, min);
  const float d = float(b.d), dmin = float(b.dmin);
  for (int m = 0; m < R; ++m) {
    out[m] = d * (scale[0] * lo[m] + scale[1] * hi[m]) - dmin * (min[0] * sums[2 * m] + min[1] * sums[2 * m + 1]);
  }
}

template <int R, int Part = kPart>
inline void dot(const device block_q4_K& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  using parts = k_nibble_parts<Part>;
  k4_dot<R, Part>(b, part / parts::per_pair, part % parts::per_pair, no_fifth_bits(), y, sums, out);
}

template <int R, int Part = kPart>
inline void dot(const device block_q5_K& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  using parts = k_nibble_parts<Part>;
  const uint g = part / parts::per_pair, j = part % parts::per_pair;
  const q5_k_fifth_bits fifth = {reinterpret_cast<const device uint*>(b.qh + Part / 2 * j), 2 * g};
  k4_dot<R, Part>(b, g, j, fifth, y, sums, out);
}

template <int R, int Part = kPart>
inline void dot(const device block_q6_K& b, uint part, const thread float* y, const thread float* sums, thread float* out) {
  using parts = k_plane_parts<Part>;
  constexpr int n = parts::bytes;
  const uint half_index = parts::half_of(part), bytes = parts::byte_of(part);
  // Run r's low nibble is in ql[64 half + 32 (r % 2) + l] (nibble r / 2), its
  // high two bits in qh[32 half + l] (bits 2r). Each byte's 6-bit code is
  // assembled with constant shifts, then masked in place per byte.
  // Byte offsets are summed in 32 bits, then added to the pointer once.
  const device ushort* low_a = words16(b.ql + (64 * half_index + bytes));
  const device ushort* low_b = words16(b.ql + (64 * half_index + 32 + bytes));
  const device ushort* high = words16(b.qh + (32 * half_index + bytes));
  float acc[R * 4];
  zero<R * 4>(acc);
  for (int k = 0; k < n / 2; ++k) {
    const uint a = low_a[k], c = low_b[k], h = high[k];
    uint code[4];
    code[0] = (a & 0x0F0Fu) | ((h << 4) & 0x3030u);
    code[1] = (c & 0x0F0Fu) | ((h << 2) & 0x3030u);
    code[2] = ((a >> 4) & 0x0F0Fu) | (h & 0x3030u);
    code[3] = ((c >> 4) & 0x0F0Fu) | ((h >> 2) & 0x3030u);
    for (int r = 0; r < 4; ++r) {
      const uint pair = biased_pair(code[r]);
      const float c0 = field_float(pair, 0x003Fu), c1 = field_float(pair, 0x3F00u);
      for (int m = 0; m < R; ++m) acc[m * 4 + r] += y[m * Part + n * r + 2 * k] * c0 + y[m * Part + n * r + 2 * k + 1] * c1;
    }
  }
  const device int8_t* run_scales = b.scales + parts::sub_block(part);  // as Q2_K's
  const float d = float(b.d);
  float scale[4];
  for (int r = 0; r < 4; ++r) {
    // int8 scale, biased to unsigned (flip the sign bit) for exact_float.
    constexpr uint sign_bit = 0x80u;
    scale[r] = d * (exact_float(uint(as_type<uchar>(run_scales[2 * r])) ^ sign_bit) - float(sign_bit));
  }
  for (int m = 0; m < R; ++m) {
    float total = 0.0f;
    for (int r = 0; r < 4; ++r) total += scale[r] * (acc[m * 4 + r] - kQ6Offset * sums[m * 4 + r]);
    out[m] = total;
  }
}

inline float dense_value(const device block_f32& b, int i) { return b.x[i]; }
inline float dense_value(const device block_f16& b, int i) { return float(b.x[i]); }
inline float dense_value(const device block_bf16& b, int i) { return as_type<float>(uint(b.x[i]) << 16); }

template <int R, typename B>
inline void dense_dot(const device B& b, const thread float* y, thread float* out) {
  zero<R>(out);
  for (int i = 0; i < kPart; ++i) {
    const float v = dense_value(b, i);
    for (int m = 0; m < R; ++m) out[m] += y[m * kPart + i] * v;
  }
}

template <int R, int Part = kPart>
inline void dot(const device block_f32& b, uint, const thread float* y, const thread float*, thread float* out) {
  dense_dot<R>(b, y, out);
}
template <int R, int Part = kPart>
inline void dot(const device block_f16& b, uint, const thread float* y, const thread float*, thread float* out) {
  dense_dot<R>(b, y, out);
}
template <int R, int Part = kPart>
inline void dot(const device block_bf16& b, uint, const thread float* y, const thread float*, thread float* out) {
  dense_dot<R>(b, y, out);
}

// n consecutive values of x row m from column k. Head-major x is walked
// without a division per value: one to find the run's head, then a compare
// where the run crosses into the next head (the host passes x_head_dim = 0
// when there is one row, where head-major is row-major).
// Row-major runs of a multiple of 4 values start on 4 values (the parts' and
// tiles' runs do; rows start on 32) and are read 4 at a time.
template <int n, typename T>
inline void read_x(constant GGMLMatmulArgs& args, const device T* x, uint m, uint k, thread float* out) {
  const uint head_dim = args.x_head_dim;
  if (head_dim == 0) {
    const device T* row = x + ulong(m) * args.K + k;
    if (n % 4 == 0) {
      tile::load4<n / 4 * 4>(row, out);  // n here; n / 4 * 4 keeps the dead instantiation whole
    } else {
      for (int i = 0; i < n; ++i) out[i] = float(row[i]);
    }
    return;
  }
  const uint head = k / head_dim;
  uint d = k - head * head_dim;
  const device T* row = x + (ulong(head) * args.x_rows + m) * head_dim;
  for (int i = 0; i < n; ++i) {
    out[i] = float(row[d]);
    if (++d == head_dim) {
      d = 0;
      row += ulong(args.x_rows) * head_dim;
    }
  }
}

// --- mat-vec and small batch ---------------------------------------------------------

constant constexpr int kMvSimdgroups = int(kGGMLMvSimdgroups);

// The parts mul_mv walks with x_rows activation rows: the type's own at one
// row, its narrow ones (kPart values) at more (see k_nibble_parts).
template <typename B, int x_rows>
using MvParts = conditional_t<x_rows == 1, traits<B>, typename traits<B>::narrow>;

// Each simdgroup owns `rows` rows of w, or a K slice of them (mat_vec.h);
// lane l of slice s takes parts 32 s + l, + 32 * slices, ... of each
// (counted over the row), loads the activations of a part once for its
// `x_rows` activation rows (pre-scaled, see traits) and applies them to every
// row through dot(). With `gather`, output row z (= grid y) reads x row
// lhs[z] and expert rhs[z].
template <typename B, typename T, typename O, int rows, int x_rows, bool gather>
void mul_mv(constant GGMLMatmulArgs& args, const device T* x, const device uint8_t* w, device O* y,
            const device uint32_t* lhs, const device uint32_t* rhs, uint3 group, mat_vec::Slicing slicing, uint lane,
            threadgroup float* slice_sums) {
  using P = MvParts<B, x_rows>;
  constexpr uint values = traits<B>::values, parts = values / P::part;
  constexpr int runs = P::runs, run_length = P::part / P::runs;
  const uint N = args.N, K = args.K;
  const uint blocks_per_row = K / values;
  const uint n0 = (group.x * kMvSimdgroups + slicing.row_group) * rows;
  const uint m0 = group.y * x_rows;
  if (gather) w += ulong(rhs[m0]) * args.expert_rows * blocks_per_row * sizeof(B);
  const device B* w_rows = reinterpret_cast<const device B*>(w);
  float acc[x_rows][rows];
  for (int m = 0; m < x_rows; ++m)
    for (int r = 0; r < rows; ++r) acc[m][r] = 0.0f;
  for (uint u = slicing.slice * kSimdWidth + lane; u < blocks_per_row * parts; u += slicing.slices * kSimdWidth) {
    const uint block = u / parts, part = u % parts;
    float ys[x_rows * P::part];
    float sums[x_rows * runs];
    for (int m = 0; m < x_rows; ++m) {
      const bool in_range = m0 + m < args.M;
      const uint x_row = gather ? lhs[m0] : m0 + m;
      for (int r = 0; r < runs; ++r) {
        thread float* run = ys + m * P::part + r * run_length;
        if (in_range) {
          read_x<run_length>(args, x, x_row, block * values + P::run_offset(part, r), run);
        } else {
          for (int i = 0; i < run_length; ++i) run[i] = 0.0f;
        }
        float sum = 0.0f;
        for (int i = 0; i < run_length; ++i) {
          if (P::has_sums) sum += run[i];
          run[i] *= P::y_scale(r, i);  // a power of two: exact
        }
        sums[m * runs + r] = sum;
      }
    }
    // Unrolled: acc stays in registers (a rolled loop indexes it at run time;
    // for Q3_K's 32-value parts the CUDA translation left it rolled, with a
    // stack frame).
#pragma unroll
    for (int r = 0; r < rows; ++r) {
      // Rows past N (a ragged last threadgroup) read row N - 1, whose sums
      // store_sums drops: no branch, so every row's loads can be in flight at
      // once (behind a `break`, a row's loads wait for the previous row's check).
      const uint n = min(n0 + r, N - 1);
      float dots[x_rows];
      dot<x_rows, P::part>(w_rows[ulong(n) * blocks_per_row + block], part, ys, sums, dots);
      for (int m = 0; m < x_rows; ++m) acc[m][r] += dots[m];
    }
  }
  mat_vec::store_sums<kMvSimdgroups>(acc, slicing, lane, args.M, N, m0, n0, y, slice_sums);
}

// Threadgroup floats for the K slices' sums of mul_mv over blocks B with x_rows activation rows.
template <typename B, int x_rows>
using MvSliceSums = mat_vec::SliceSums<kMvSimdgroups, traits<B>::mv_rows, x_rows>;

// --- tiled mat-mat: 64 rows of w x 32 rows of x per threadgroup -------------------------

constant constexpr int kMmRowsW = int(kGGMLMmRowsW);
constant constexpr int kMmRowsX = int(kGGMLMmRowsX);
constant constexpr int kMmStride = tile::kK + 4;  // padded rows spread threadgroup-memory banks
constant constexpr int kMmOutStride = kMmRowsW + 4;  // the staged 32 x 64 result, in the w tile's memory
constant constexpr int kMmThreads = int(kGGMLMmThreads);  // 4 simdgroups: 2 (x rows) x 2 (w rows)
constant constexpr int kMmXValues = kMmRowsX * tile::kK / kMmThreads;  // x values one thread stages per step
// The staged tiles, in floats; kernels declare them (MSL allows threadgroup
// variables only in kernels) and mul_mm takes pointers.
constant constexpr int kMmFloatsX = kMmRowsX * kMmStride;
constant constexpr int kMmFloatsW = kMmRowsW * kMmStride;

static_assert(kMmStride % 4 == 0, "tile rows of whole float4s (tile::store4)");

// Each thread dequantizes one 16-value chunk of the w tile per K step (64
// rows x 2 chunks) and loads 8 values of the x tile; each w chunk is decoded
// once per tile and used by all 32 rows of x. With `sorted`, the x rows of
// the tile are rows z of a sorted MoE list (x row lhs[z], expert rhs[z],
// output row rows[z]) and the tile walks the runs of equal experts. With
// `split`, grid.z is the K partition: the tile sums its part of K into
// float partials [partition][M][N] (GGMLMatmulArgs).
template <typename B, typename T, typename O, bool sorted, bool split = false>
void mul_mm(constant GGMLMatmulArgs& args, const device T* x, const device uint8_t* w, device O* y,
            const device uint32_t* lhs, const device uint32_t* rhs, const device uint32_t* rows_out, uint3 group,
            uint thread_index, uint simd_group, threadgroup float* xs, threadgroup float* ws) {
  static_assert(!(sorted && split), "the sorted MoE tiles are not split");
  static_assert(chunk_runs<B>::count == 1 || tile::kK % traits<B>::values == 0, "a chunk's runs stay in its K step");
  const uint M = args.M, N = args.N, K = args.K;
  const uint k_begin = split ? group.z * args.k_per_partition : 0;
  const uint k_end = split ? min(K, k_begin + args.k_per_partition) : K;
  y += split ? ulong(group.z) * M * N : 0;
  const uint blocks_per_row = K / traits<B>::values;
  const uint tile_m = group.y * kMmRowsX, tile_n = group.x * kMmRowsW;
  const uint w_row = thread_index / 2, w_chunk = thread_index % 2;        // one chunk of the w tile
  const uint x_row = thread_index / 4, x_col = thread_index % 4 * kMmXValues;  // 8 values of the x tile
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
    for (uint k0 = k_begin; k0 < k_end; k0 += tile::kK) {
      float x_values[kMmXValues];
      if (x_live) {
        read_x<kMmXValues>(args, x, x_source, k0 + x_col, x_values);
      } else {
        for (int i = 0; i < kMmXValues; ++i) x_values[i] = 0.0f;
      }
      tile::store4<kMmXValues>(x_values, xs + x_row * kMmStride + x_col);
      float v[kChunk];
      if (tile_n + w_row < N) {
        dequantize_row_chunk(w_rows + ulong(tile_n + w_row) * blocks_per_row, k0 / kChunk + w_chunk, v);
      } else {
        for (int i = 0; i < kChunk; ++i) v[i] = 0.0f;
      }
      // The runs' places in the step, from the step's chunk alone (steps
      // start on a block, or inside one-run blocks): visibly whole float4s.
      // Through chunk_run_start(k0 / kChunk + w_chunk, r) - k0 nvcc could not
      // see that and stored Q4_K's w tile in 16 scalar stores, not 4 vector
      // ones: 1.89 ms against 1.42 (H200, 4096 x 4096, M = 512; bench/README.md,
      // session 9; test_tiles_are_staged_with_vector_stores).
      for (int r = 0; r < chunk_runs<B>::count; ++r) {
        tile::store4<chunk_runs<B>::values>(v + r * chunk_runs<B>::values,
                                            ws + w_row * kMmStride + chunk_run_start<B>(w_chunk, r));
      }
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
  for (int r = 0; r < chunk_runs<B>::count; ++r) {
    device O* run = out + ulong(row) * args.K + chunk_run_start<B>(chunk, r);
    for (int i = 0; i < chunk_runs<B>::values; ++i) run[i] = O(v[r * chunk_runs<B>::values + i]);
  }
}

}  // namespace ggml

// --- kernels --------------------------------------------------------------------------------

#define QMETAL_GGML_PARAMS                                                                    \
  constant GGMLMatmulArgs &args [[buffer(kArgsBufferIndex)]], const device T *x [[buffer(kGGMLX)]], \
      const device uint8_t *w [[buffer(kGGMLW)]], device O *y [[buffer(kGGMLY)]],              \
      uint3 group [[threadgroup_position_in_grid]]

// The mat-vec kernels: their threadgroups hold kMvSimdgroups simdgroups per
// K slice (mat_vec.h).
#define QMETAL_GGML_MV_PARAMS                                                                          \
  QMETAL_GGML_PARAMS, uint simd_group [[simdgroup_index_in_threadgroup]],                              \
      uint simdgroups [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mv(QMETAL_GGML_MV_PARAMS) {
  threadgroup float slice_sums[ggml::MvSliceSums<B, 1>::floats];
  ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, 1, false>(
      args, x, w, y, nullptr, nullptr, group, mat_vec::slicing(simd_group, simdgroups, ggml::kMvSimdgroups), lane,
      slice_sums);
}

// Small batches: ggml_mul_mv_ext_r<x_rows> applies each part's codes to
// x_rows activation rows (the host picks x_rows per M, 2..4; see
// mv_ext_rows in csrc/core/ggml.cpp).
#define QMETAL_GGML_MV_EXT(x_rows)                                                                        \
  template <typename B, typename T, typename O>                                                          \
  [[kernel]] void ggml_mul_mv_ext_r##x_rows(QMETAL_GGML_MV_PARAMS) {                                      \
    threadgroup float slice_sums[ggml::MvSliceSums<B, x_rows>::floats];                                  \
    ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, x_rows, false>(                                      \
        args, x, w, y, nullptr, nullptr, group, mat_vec::slicing(simd_group, simdgroups, ggml::kMvSimdgroups), \
        lane, slice_sums);                                                                               \
  }
QMETAL_GGML_MV_EXT(2)
QMETAL_GGML_MV_EXT(3)
QMETAL_GGML_MV_EXT(4)

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm(QMETAL_GGML_PARAMS, uint thread_index [[thread_index_in_threadgroup]],
                            uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float4 xs[ggml::kMmFloatsX / 4], ws[ggml::kMmFloatsW / 4];  // float4: staged 4 floats at a time
  ggml::mul_mm<B, T, O, false>(args, x, w, y, nullptr, nullptr, nullptr, group, thread_index, simd_group,
                               reinterpret_cast<threadgroup float*>(xs), reinterpret_cast<threadgroup float*>(ws));
}

// Split-K: float partial sums per K partition (grid.z), then
// affine_sum_partials; named with float32 output (the partials').
template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm_split(QMETAL_GGML_PARAMS, uint thread_index [[thread_index_in_threadgroup]],
                                  uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float4 xs[ggml::kMmFloatsX / 4], ws[ggml::kMmFloatsW / 4];  // float4: staged 4 floats at a time
  ggml::mul_mm<B, T, O, false, true>(args, x, w, y, nullptr, nullptr, nullptr, group, thread_index, simd_group,
                                     reinterpret_cast<threadgroup float*>(xs), reinterpret_cast<threadgroup float*>(ws));
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mv_id(QMETAL_GGML_MV_PARAMS, const device uint32_t* lhs [[buffer(kGGMLLhs)]],
                               const device uint32_t* rhs [[buffer(kGGMLRhs)]]) {
  threadgroup float slice_sums[ggml::MvSliceSums<B, 1>::floats];
  ggml::mul_mv<B, T, O, ggml::traits<B>::mv_rows, 1, true>(
      args, x, w, y, lhs, rhs, group, mat_vec::slicing(simd_group, simdgroups, ggml::kMvSimdgroups), lane,
      slice_sums);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm_id(QMETAL_GGML_PARAMS, const device uint32_t* lhs [[buffer(kGGMLLhs)]],
                               const device uint32_t* rhs [[buffer(kGGMLRhs)]],
                               const device uint32_t* rows [[buffer(kGGMLRows)]],
                               uint thread_index [[thread_index_in_threadgroup]],
                               uint simd_group [[simdgroup_index_in_threadgroup]]) {
  threadgroup float4 xs[ggml::kMmFloatsX / 4], ws[ggml::kMmFloatsW / 4];  // float4: staged 4 floats at a time
  ggml::mul_mm<B, T, O, true>(args, x, w, y, lhs, rhs, rows, group, thread_index, simd_group,
                              reinterpret_cast<threadgroup float*>(xs), reinterpret_cast<threadgroup float*>(ws));
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
// Kernels whose output is always float32 (split-K partials).
#define QMETAL_GGML_FLOAT_OUT(kernel, block, type_name)                       \
  QMETAL_GGML_ONE(kernel, block, type_name, float, float32, float, float32)   \
  QMETAL_GGML_ONE(kernel, block, type_name, half, float16, float, float32)    \
  QMETAL_GGML_ONE(kernel, block, type_name, bfloat, bfloat16, float, float32)
#define QMETAL_GGML_INSTANTIATE(kernel) QMETAL_GGML_TYPES(kernel, QMETAL_GGML_DTYPES)
#define QMETAL_GGML_INSTANTIATE_FLOAT_OUT(kernel) QMETAL_GGML_TYPES(kernel, QMETAL_GGML_FLOAT_OUT)
#define QMETAL_GGML_TYPES(kernel, dtypes)                  \
  dtypes(kernel, block_q4_0, q4_0)           \
  dtypes(kernel, block_q4_1, q4_1)           \
  dtypes(kernel, block_q5_0, q5_0)           \
  dtypes(kernel, block_q5_1, q5_1)           \
  dtypes(kernel, block_q8_0, q8_0)           \
  dtypes(kernel, block_q2_K, q2_k)           \
  dtypes(kernel, block_q3_K, q3_k)           \
  dtypes(kernel, block_q4_K, q4_k)           \
  dtypes(kernel, block_q5_K, q5_k)           \
  dtypes(kernel, block_q6_K, q6_k)           \
  dtypes(kernel, block_f32, f32)             \
  dtypes(kernel, block_f16, f16)             \
  dtypes(kernel, block_bf16, bf16)

#define QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, O, o_name)                                        \
  template [[host_name("ggml_dequantize_" #type_name "_" #o_name)]] [[kernel]]                         \
  decltype(ggml_dequantize<ggml::block, O>) ggml_dequantize<ggml::block, O>;
#define QMETAL_GGML_DEQUANTIZE(block, type_name)                  \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, float, float32)    \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, half, float16)     \
  QMETAL_GGML_DEQUANTIZE_ONE(block, type_name, bfloat, bfloat16)
