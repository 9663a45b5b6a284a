// GGML mul_mm and its MoE form mul_mm_id (rows sorted by expert) on Metal 4
// tensor operations, for M5-class GPUs: x rows and dequantized w rows
// staged in the activation type, one matmul2d per K step (tensor_tile.h).
// Same arguments, bindings and row rules as ggml_mul_mm / ggml_mul_mm_id
// (ggml.h): K is a multiple of 32, x may be head-major.
#include "ggml.h"
#include "tensor_tile.h"

namespace ggml_tensor {

using namespace tensor_tile;

constant constexpr int kXPerThread = kElementsX / kThreads;          // x values each thread stages per step
constant constexpr int kWChunks = kRowsW * kK / ggml::kChunk;        // dequantize() calls per step
static_assert(kK % kXPerThread == 0 && kK % ggml::kChunk == 0, "staging covers whole rows");
static_assert(kWChunks <= kThreads, "one chunk of w per thread at most");

// With `sorted`, tile row z is row z of a sorted MoE list (x row lhs[z],
// expert rhs[z], output row rows_out[z]); the tile walks the runs of equal
// experts, each run's x rows staged with the others zero.
template <typename B, typename T, typename O, bool sorted>
void mul_mm(constant GGMLMatmulArgs& args, const device T* x, const device uint8_t* w, device O* y,
            const device uint32_t* lhs, const device uint32_t* rhs, const device uint32_t* rows_out, uint3 group,
            uint thread_index, threadgroup T* xs, threadgroup T* ws) {
  static_assert(ggml::chunk_runs<B>::count == 1 || kK % ggml::traits<B>::values == 0,
                "a chunk's runs stay in its K step");
  const uint M = args.M, N = args.N, K = args.K;
  const uint blocks_per_row = K / ggml::traits<B>::values;
  const uint tile_m = group.y * kRowsX, tile_n = group.x * kRowsW;
  const uint x_row = thread_index / (kK / kXPerThread), x_col = thread_index % (kK / kXPerThread) * kXPerThread;
  const uint w_row = thread_index / (kK / ggml::kChunk), w_chunk = thread_index % (kK / ggml::kChunk);
  const bool stages_w = thread_index < uint(kWChunks);

  Op<T> op;
  auto xv = x_view(xs);
  auto wv = w_view(ws);
  auto acc = op.template get_destination_cooperative_tensor<decltype(xv), decltype(wv), float>();
  for (uint i = 0; i < acc.get_capacity(); ++i) {
    if (acc.is_valid_element(i)) acc[i] = 0.0f;
  }
  const uint end = sorted ? min(tile_m + kRowsX, M) : tile_m + 1;
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
    for (uint k0 = 0; k0 < K; k0 += kK) {
      threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous op is done with the tiles
      // x as ggml::read_x reads it (row-major or head-major, one division
      // per run rather than per value); T -> float -> T is exact.
      float x_values[kXPerThread];
      if (x_live) {
        ggml::read_x<kXPerThread>(args, x, x_source, k0 + x_col, x_values);
      } else {
        for (int j = 0; j < kXPerThread; ++j) x_values[j] = 0.0f;
      }
      for (int j = 0; j < kXPerThread; ++j) xs[x_row * kK + x_col + j] = T(x_values[j]);
      if (stages_w) {
        float v[ggml::kChunk];
        if (tile_n + w_row < N) {
          ggml::dequantize_row_chunk(w_rows + ulong(tile_n + w_row) * blocks_per_row, k0 / ggml::kChunk + w_chunk, v);
        } else {
          for (int j = 0; j < ggml::kChunk; ++j) v[j] = 0.0f;
        }
        using runs = ggml::chunk_runs<B>;
        for (int r = 0; r < runs::count; ++r) {
          const uint first = ggml::chunk_run_start<B>(w_chunk, r);  // in the step (see ggml::mul_mm)
          for (int j = 0; j < runs::values; ++j) ws[w_row * kK + first + j] = T(v[r * runs::values + j]);
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      op.run(xv, wv, acc);
    }
    run = run_end;
  }
  for (uint i = 0; i < acc.get_capacity(); ++i) {
    if (!acc.is_valid_element(i)) continue;
    const auto idx = acc.get_multidimensional_index(i);  // (w row, x row) in the tile
    const uint out_m = tile_m + uint(idx[1]), out_n = tile_n + uint(idx[0]);
    if (out_m < M && out_n < N) {
      const ulong out_row = sorted ? rows_out[out_m] : out_m;
      y[out_row * N + out_n] = O(acc[i]);
    }
  }
}

}  // namespace ggml_tensor

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm_tensor(QMETAL_GGML_PARAMS, uint thread_index [[thread_index_in_threadgroup]]) {
  threadgroup T xs[tensor_tile::kElementsX], ws[tensor_tile::kElementsW];
  ggml_tensor::mul_mm<B, T, O, false>(args, x, w, y, nullptr, nullptr, nullptr, group, thread_index, xs, ws);
}

template <typename B, typename T, typename O>
[[kernel]] void ggml_mul_mm_id_tensor(QMETAL_GGML_PARAMS, const device uint32_t* lhs [[buffer(kGGMLLhs)]],
                                      const device uint32_t* rhs [[buffer(kGGMLRhs)]],
                                      const device uint32_t* rows [[buffer(kGGMLRows)]],
                                      uint thread_index [[thread_index_in_threadgroup]]) {
  threadgroup T xs[tensor_tile::kElementsX], ws[tensor_tile::kElementsW];
  ggml_tensor::mul_mm<B, T, O, true>(args, x, w, y, lhs, rhs, rows, group, thread_index, xs, ws);
}

QMETAL_GGML_INSTANTIATE(mul_mm_tensor)
QMETAL_GGML_INSTANTIATE(mul_mm_id_tensor)
