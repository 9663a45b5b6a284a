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

// --- Kernel geometry: what the host's grids must agree on with the shaders ---------
// (each shader header derives its own constants from these)

// Every tiled kernel (affine qmm, GGML mul_mm, DWQ; shaders/tile.h) steps K by this.
QMETAL_CONSTEXPR uint32_t kTileK = 32;

// Bytes of the words the kernels read a type's code bytes in (traits<B>::Word
// in shaders/ggml.h), so the alignment its blocks need (GGMLType::alignment
// on the host): 4 where every block keeps its code bytes on 4 bytes (block
// size and field offsets multiples of 4), else 2. F32's floats take 4.
QMETAL_CONSTEXPR uint32_t kGGMLWordQ4_0 = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ4_1 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ5_0 = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ5_1 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ8_0 = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ2_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ3_K = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ4_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ5_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordQ6_K = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordF32 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLWordF16 = 2;
QMETAL_CONSTEXPR uint32_t kGGMLWordBF16 = 2;

// shaders/mat_vec.h: at most this many simdgroups share one row's K in the
// mat-vec kernels (each a "K slice"); the host picks the count per grid.
QMETAL_CONSTEXPR uint32_t kMatVecMaxSlices = 8;

// shaders/affine.h's mat-vec step: the codes one lane decodes at a time, the
// fewest (at least 16, two packs as MLX's qmv) whose bits fill whole 32-bit words.
inline constexpr uint32_t affine_step_values(uint32_t bits) { return bits % 2 == 0 ? 16 : 32; }

// shaders/affine.h: codes per pack; mat-vec simdgroups per threadgroup and
// weight rows per simdgroup; qvm simdgroups (they split K); the 32 x 32
// tiles' threads (4 simdgroups, each a 16 x 16 quarter).
QMETAL_CONSTEXPR uint32_t kAffinePack = 8;
QMETAL_CONSTEXPR uint32_t kAffineQmvSimdgroups = 2;
QMETAL_CONSTEXPR uint32_t kAffineQmvRowsPerSimdgroup = 4;
QMETAL_CONSTEXPR uint32_t kAffineQvmSimdgroups = 4;
QMETAL_CONSTEXPR uint32_t kAffineTileThreads = 128;

// shaders/ggml.h: values one dequantize() call yields; values per mat-vec
// lane step; mat-vec simdgroups per
// threadgroup; the mul_mm tile (rows of w x rows of x) and its threads.
QMETAL_CONSTEXPR uint32_t kGGMLChunk = 16;
QMETAL_CONSTEXPR uint32_t kGGMLMvPart = 16;  // values of a block one mul_mv lane takes per step (most types)
QMETAL_CONSTEXPR uint32_t kGGMLMvSimdgroups = 2;
QMETAL_CONSTEXPR uint32_t kGGMLMmRowsW = 64;
QMETAL_CONSTEXPR uint32_t kGGMLMmRowsX = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMmThreads = 128;

// Rows of w per simdgroup in mul_mv / mul_mv_ext, per type (traits<B>::mv_rows
// in shaders/ggml.h, GGMLType::mv_rows on the host): fewer for types whose
// parts carry more per-lane state. Q5_K takes 4 (it took 1): its activations
// and their sums are loaded once per part for all rows, and at 1 row that
// load was a third of the step (SASS of the CUDA translation: 17 instructions
// per weight at 1 row, 13 at 4, with 64 registers; H200: 0.52 of MLX's
// 5-bit GB/s at 14336 x 4096). Q2_K and Q3_K take 4 (they took 2): 12.2 ->
// 10.5 and 18.9 -> 16.3 instructions per weight, 56 and 72 registers.
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ4_0 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ4_1 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ5_0 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ5_1 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ8_0 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ2_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ3_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ4_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ5_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsQ6_K = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsF32 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsF16 = 4;
QMETAL_CONSTEXPR uint32_t kGGMLMvRowsBF16 = 4;

// Values per mul_mv part, per type (traits<B>::part, GGMLType::mv_part): Q4_K
// and Q5_K take 32, the 16 code bytes of two sub-blocks' halves, so that the
// per-part work (two scales and mins unpacked from 12 bytes, d and dmin, the
// block's address) is spread over twice the values. The loop of mul_mv in
// the CUDA translation, SASS instructions per weight (4 rows): Q4_K 9.4 at
// 16, 7.3 at 32; Q5_K (with its fifth bits merged into the codes) 13.4 at
// 16, 9.7 at 32; MLX's 4-bit qmv_fast 6.3. mul_mv_ext keeps 16 (see
// k_nibble_parts in shaders/ggml.h).
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ4_K = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ5_K = 32;
// Q2_K, Q3_K, Q6_K: 8 bytes of each of a half's four 32-byte planes (their
// runs' four scales and the block's d per 32 values, not 16): SASS per
// weight at 4 rows, Q2_K 10.5 -> 7.9, Q3_K 14.8 -> 11.1, Q6_K 12.0 -> 9.8.
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ2_K = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ3_K = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ6_K = 32;
// Q4_0, Q4_1, Q8_0: the whole 32-value block (d, and Q4_1's m, once per
// block): the loop of mul_mv in the CUDA translation, SASS instructions per
// weight (4 rows), Q4_0 6.9 -> 6.2, Q4_1 7.1 -> 6.3, Q8_0 7.2 -> 6.4 (MLX's qmv_fast 6.3).
// Q5_0 and Q5_1 keep 16 (their fifth bits are selected per part).
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ4_0 = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ4_1 = 32;
QMETAL_CONSTEXPR uint32_t kGGMLMvPartQ8_0 = 32;

// shaders/dwq.h: the fused gradient's tile threads (4 simdgroups).
QMETAL_CONSTEXPR uint32_t kDwqTileThreads = 128;

// --- MLX affine ----------------------------------------------------------------

// Activation rows one threadgroup of affine_qmv_wide_r<rows> takes: small
// batches run the mat-vec loop once per weight step for all of them; the
// host picks the variant with the fewest idle rows.
QMETAL_CONSTEXPR uint32_t kQmvWideRowsSmall = 2;
QMETAL_CONSTEXPR uint32_t kQmvWideRowsLarge = 4;

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
  // Gather: matrices of x and of w (experts). Indices read on the device
  // are clamped below these (gather_check then reports and NaNs the rows).
  uint32_t x_matrices, w_matrices;
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
  // Split-K (ggml_mul_mm_split): grid.z counts K partitions; partition p sums
  // K range [p * k_per_partition, (p + 1) * k_per_partition) into float
  // partials [p][M][N] (affine_sum_partials adds them).
  uint32_t k_partitions;
  uint32_t k_per_partition;
};

struct GGMLDequantizeArgs {
  uint32_t rows, K;
};

// gather_rows / gather_sort (shaders/gather.metal): MoE ids read on the
// device, one per output matrix, made into the row lists of the gather
// kernels: row z * rows_per_matrix + m takes x row lhs[z] *
// rows_per_matrix + m and expert rhs[z], both clamped into range.
QMETAL_CONSTEXPR uint32_t kGatherRowsLhs = 1;     // per output matrix: x matrix (uint32 or int32)
QMETAL_CONSTEXPR uint32_t kGatherRowsRhs = 2;     // per output matrix: expert
QMETAL_CONSTEXPR uint32_t kGatherRowsLhsOut = 3;  // per row: x row
QMETAL_CONSTEXPR uint32_t kGatherRowsRhsOut = 4;  // per row: expert
QMETAL_CONSTEXPR uint32_t kGatherRowsOrder = 5;   // gather_sort: output row of each sorted row

struct GatherRowsArgs {
  uint32_t matrices;          // entries of lhs and rhs
  uint32_t rows_per_matrix;   // rows of x per matrix (M)
  uint32_t lhs_count;         // x matrices, >= 1
  uint32_t rhs_count;         // experts, >= 1
};

// gather_check_<dtype>: after a gather (MoE) kernel that read its index
// lists on the device, output matrix z whose lhs[z] or rhs[z] is out of
// range is filled with NaN and a bit of `flags` is set (the op's stream
// reports it at synchronize as a ValueError naming the argument).
QMETAL_CONSTEXPR uint32_t kGatherCheckLhs = 1;
QMETAL_CONSTEXPR uint32_t kGatherCheckRhs = 2;
QMETAL_CONSTEXPR uint32_t kGatherCheckY = 3;
QMETAL_CONSTEXPR uint32_t kGatherCheckFlags = 4;   // one uint32, bits below
QMETAL_CONSTEXPR uint32_t kGatherBadLhs = 1;
QMETAL_CONSTEXPR uint32_t kGatherBadRhs = 2;

struct GatherCheckArgs {
  uint32_t matrices;       // output matrices (entries of lhs and rhs)
  uint32_t matrix_size;    // elements of y per output matrix
  uint32_t lhs_count;      // valid lhs values: [0, lhs_count)
  uint32_t rhs_count;
};

// affine_sum_partials: y[i] = sum over p of partials[p * count + i].
QMETAL_CONSTEXPR uint32_t kPartials = 1;
QMETAL_CONSTEXPR uint32_t kPartialsSum = 2;

struct SumPartialsArgs {
  uint32_t count;       // elements of y
  uint32_t partitions;
};

// --- DWQ (distilled weight quantization, shaders/dwq.h) ------------------------------

// dwq_init / dwq_grads: one reduction per group of a [rows, K] weight.
QMETAL_CONSTEXPR uint32_t kDwqDense = 1;    // init: w; grads: dw (float dtype T)
QMETAL_CONSTEXPR uint32_t kDwqCodes = 2;    // init: uint8 codes written; grads: codes read (kernel bits)
QMETAL_CONSTEXPR uint32_t kDwqScales = 3;   // float32 [rows, K / group_size]: init scales; grads d_scales
QMETAL_CONSTEXPR uint32_t kDwqBiases = 4;   // init biases; grads d_biases

struct DwqGroupArgs {
  uint32_t groups;             // rows * K / group_size
  uint32_t K;                  // values per row
  uint32_t group_size;         // a power of two, 2..1024
  uint32_t threads_per_group;  // min(group_size, threads per threadgroup): a power of two
  uint32_t bits;               // init: the codes' width (1..8)
};

// dwq_vjp: d_scale[w][r][g] = sum over c in g of code[w][r][c] * D[r][c] and
// d_bias[w][r][g] = sum over c in g of D[r][c], where D = sum over the
// (A, B) matrix pairs p of weight matrix w of A_p^T B_p (A_p [M, R],
// B_p [M, C]): the weight gradient, never stored. Transposed weights
// (codes [N, K]): A = dy, B = x; otherwise (codes [K, N]): A = x, B = dy.
QMETAL_CONSTEXPR uint32_t kDwqA = 1;
QMETAL_CONSTEXPR uint32_t kDwqB = 2;
QMETAL_CONSTEXPR uint32_t kDwqW = 3;          // codes [W, R, C * bits / 8]
QMETAL_CONSTEXPR uint32_t kDwqDScales = 4;    // float32 [W, R, C / group_size]
QMETAL_CONSTEXPR uint32_t kDwqDBiases = 5;
QMETAL_CONSTEXPR uint32_t kDwqPairs = 6;      // uint32 [W, pairs_per_weight, 2]: A matrix, B matrix

struct DwqVjpArgs {
  uint32_t M;                  // rows of each A and B matrix
  uint32_t R, C;               // a codes matrix: R rows of C values
  uint32_t group_size;         // a multiple of the 32-column tile
  uint32_t pairs_per_weight;
};

}  // namespace qmetal_args
