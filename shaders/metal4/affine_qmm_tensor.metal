// MLX affine qmm_t (y = x @ dequant(w)^T) on Metal 4 tensor operations, dense
// and MoE (gather), for M5-class GPUs: x rows and dequantized w rows staged
// in the activation type, one matmul2d per K step (tensor_tile.h). Same
// arguments, bindings and batch rules as affine_qmm_t (affine.h); K is a
// multiple of the group size, so of the K step.
#include "affine.h"
#include "tensor_tile.h"

namespace affine_tensor {

using namespace tensor_tile;

constant constexpr int kXPerThread = kElementsX / kThreads;  // x values each thread stages per step
static_assert(kElementsW / kThreads == affine::kPack, "each thread dequantizes one pack of w per step");
static_assert(kK % kXPerThread == 0 && kK % affine::kPack == 0, "staging covers whole rows");

template <typename T, int group_size, int bits, bool gather>
void qmm_t(constant AffineMatmulArgs& args, const device T* x, const device uint8_t* w, const device T* scales,
           const device T* biases, device T* y, const device uint32_t* lhs, const device uint32_t* rhs, uint3 group,
           uint thread_index, threadgroup T* xs, threadgroup T* ws) {
  const uint M = args.M, N = args.N, K = args.K;
  const uint row_bytes = K * bits / 8;
  const uint groups_per_row = K / group_size;
  ulong x_matrix, w_matrix;
  affine::batch_matrices<gather>(args, lhs, rhs, group.z, x_matrix, w_matrix);
  x += x_matrix * M * K;
  w += w_matrix * N * K * bits / 8;
  scales += w_matrix * N * K / group_size;
  biases += w_matrix * N * K / group_size;
  y += ulong(group.z) * M * N;

  const uint tile_m = group.y * kRowsX, tile_n = group.x * kRowsW;
  const uint x_row = thread_index / (kK / kXPerThread), x_col = thread_index % (kK / kXPerThread) * kXPerThread;
  const uint w_row = thread_index / (kK / affine::kPack), w_col = thread_index % (kK / affine::kPack) * affine::kPack;
  const uint m = tile_m + x_row, n = tile_n + w_row;

  Op<T> op;
  auto xv = x_view(xs);
  auto wv = w_view(ws);
  auto acc = op.template get_destination_cooperative_tensor<decltype(xv), decltype(wv), float>();
  for (uint i = 0; i < acc.get_capacity(); ++i) {
    if (acc.is_valid_element(i)) acc[i] = 0.0f;
  }
  for (uint k0 = 0; k0 < K; k0 += kK) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous step's op is done with the tiles
    for (int j = 0; j < kXPerThread; ++j) {
      xs[x_row * kK + x_col + j] = m < M ? x[ulong(m) * K + k0 + x_col + j] : T(0.0f);
    }
    if (n < N) {
      float q[affine::kPack];
      affine::unpack<bits>(w + ulong(n) * row_bytes, (k0 + w_col) / affine::kPack, q);
      const ulong g = ulong(n) * groups_per_row + (k0 + w_col) / group_size;
      const float scale = float(scales[g]), bias = float(biases[g]);
      for (int j = 0; j < affine::kPack; ++j) ws[w_row * kK + w_col + j] = T(scale * q[j] + bias);
    } else {
      for (int j = 0; j < affine::kPack; ++j) ws[w_row * kK + w_col + j] = T(0.0f);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    op.run(xv, wv, acc);
  }
  for (uint i = 0; i < acc.get_capacity(); ++i) {
    if (!acc.is_valid_element(i)) continue;
    const auto idx = acc.get_multidimensional_index(i);  // (w row, x row) in the tile
    const uint out_m = tile_m + uint(idx[1]), out_n = tile_n + uint(idx[0]);
    if (out_m < M && out_n < N) y[ulong(out_m) * N + out_n] = T(acc[i]);
  }
}

}  // namespace affine_tensor

template <typename T, int group_size, int bits>
[[kernel]] void affine_qmm_t_tensor(QMETAL_AFFINE_MATMUL_PARAMS, uint thread_index [[thread_index_in_threadgroup]]) {
  threadgroup T xs[tensor_tile::kElementsX], ws[tensor_tile::kElementsW];
  affine_tensor::qmm_t<T, group_size, bits, false>(args, x, w, scales, biases, y, nullptr, nullptr, group,
                                                   thread_index, xs, ws);
}

template <typename T, int group_size, int bits>
[[kernel]] void affine_gather_qmm_t_tensor(QMETAL_AFFINE_MATMUL_PARAMS,
                                           const device uint32_t* lhs [[buffer(kAffineLhs)]],
                                           const device uint32_t* rhs [[buffer(kAffineRhs)]],
                                           uint thread_index [[thread_index_in_threadgroup]]) {
  threadgroup T xs[tensor_tile::kElementsX], ws[tensor_tile::kElementsW];
  affine_tensor::qmm_t<T, group_size, bits, true>(args, x, w, scales, biases, y, lhs, rhs, group, thread_index, xs,
                                                  ws);
}

QMETAL_AFFINE_INSTANTIATE(qmm_t_tensor)
QMETAL_AFFINE_INSTANTIATE(gather_qmm_t_tensor)
