// Argument structs and binding slots shared by the host (C++) and the kernels
// (MSL). Every kernel family takes one struct at kArgsBufferIndex (the host
// sets it with setBytes); its buffers follow at fixed indices from
// kFirstDataBufferIndex on. Keep this header plain: fixed-width integer and
// float members only, no pointers, so both compilers lay structs out alike.
#pragma once

#ifdef __METAL_VERSION__
#include <metal_stdlib>
#define QMETAL_CONSTEXPR constant constexpr
#else
#include <cstdint>
#define QMETAL_CONSTEXPR inline constexpr
#endif

namespace qmetal_args {

QMETAL_CONSTEXPR uint32_t kArgsBufferIndex = 0;
QMETAL_CONSTEXPR uint32_t kFirstDataBufferIndex = 1;
QMETAL_CONSTEXPR uint32_t kSimdWidth = 32;

// Batch dimensions a batched matmul broadcasts over (MLX broadcasts any
// number; more than this are folded by the host where contiguous).
QMETAL_CONSTEXPR uint32_t kMaxBatchDims = 4;

// --- MLX affine ----------------------------------------------------------------

// Buffers of every affine matmul kernel.
QMETAL_CONSTEXPR uint32_t kAffineX = 1;        // activations [batch..., M, K]
QMETAL_CONSTEXPR uint32_t kAffineW = 2;        // packed codes, read as bytes
QMETAL_CONSTEXPR uint32_t kAffineScales = 3;
QMETAL_CONSTEXPR uint32_t kAffineBiases = 4;
QMETAL_CONSTEXPR uint32_t kAffineY = 5;        // output [batch..., M, N]
QMETAL_CONSTEXPR uint32_t kAffineLhs = 6;      // gather: x matrix of each output matrix (uint32)
QMETAL_CONSTEXPR uint32_t kAffineRhs = 7;      // gather: w matrix (expert) of each output matrix
QMETAL_CONSTEXPR uint32_t kAffineRows = 8;     // sorted gather: output row of each sorted row

// y = x @ dequant(w)^T (transposed, w [N, K]) or x @ dequant(w) (w [K, N]).
// Matrix z of the batch reads x matrix x_index(z) and w matrix w_index(z):
// sum(batch position[d] * stride[d]) over the batch shape, or, in the gather
// kernels, lhs[z] and rhs[z].
struct AffineMatmulArgs {
  uint32_t M, N, K;
  // Split-K: grid.z = batch * k_partitions; partition p sums K range
  // [p * k_per_partition, (p + 1) * k_per_partition) into float partials.
  uint32_t k_partitions;
  uint32_t k_per_partition;
  uint32_t batch_ndim;
  uint32_t batch_shape[kMaxBatchDims];
  uint32_t x_batch_strides[kMaxBatchDims];  // in matrices; 0 where x broadcasts
  uint32_t w_batch_strides[kMaxBatchDims];
};

// Buffers of the quantize / dequantize kernels.
QMETAL_CONSTEXPR uint32_t kAffineDense = 1;    // w [rows, K]
QMETAL_CONSTEXPR uint32_t kAffinePacked = 2;
QMETAL_CONSTEXPR uint32_t kAffineQScales = 3;
QMETAL_CONSTEXPR uint32_t kAffineQBiases = 4;

struct AffineQuantizeArgs {
  uint32_t rows, K;
};

// --- GGML blocks -------------------------------------------------------------------

QMETAL_CONSTEXPR uint32_t kGGMLX = 1;          // activations [M, K] (or head-major, see below)
QMETAL_CONSTEXPR uint32_t kGGMLW = 2;          // blocks, rows of K / block values blocks
QMETAL_CONSTEXPR uint32_t kGGMLY = 3;          // output [M, N]
QMETAL_CONSTEXPR uint32_t kGGMLLhs = 4;        // MoE: x row of each output row (uint32)
QMETAL_CONSTEXPR uint32_t kGGMLRhs = 5;        // MoE: expert of each output row
QMETAL_CONSTEXPR uint32_t kGGMLRows = 6;       // MoE sorted: output row of each sorted row

// y[m, n] = sum_k x[m, k] w[n, k]. x is row-major [M, K], or with
// x_head_dim > 0 head-major [K / x_head_dim, M, x_head_dim] (attention
// output read as [M, heads * head_dim] without a copy). In the MoE kernels
// row z of y is x row lhs[z] times expert rhs[z] (M counts those rows).
struct GGMLMatmulArgs {
  uint32_t M, N, K;
  uint32_t x_head_dim;
  uint32_t x_rows;        // rows of x (for head-major addressing)
  uint32_t expert_rows;   // N (rows of one expert), for the MoE kernels
};

struct GGMLDequantizeArgs {
  uint32_t rows, K;
};

// affine_sum_partials: y[i] = sum over p of partials[p * count + i].
QMETAL_CONSTEXPR uint32_t kPartials = 1;
QMETAL_CONSTEXPR uint32_t kPartialsSum = 2;

struct SumPartialsArgs {
  uint32_t count;       // elements of y
  uint32_t partitions;
};

}  // namespace qmetal_args
