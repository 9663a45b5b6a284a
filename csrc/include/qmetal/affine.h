// MLX affine quantized weights and their ops: quantize, dequantize, matmul.
// Ops validate every argument (ValueError / TypeError naming it) before any
// work is queued, plan the launches (the planner is the one place routing
// lives) and run them on the device.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

class Stream;

inline constexpr int kAffineBits[] = {2, 3, 4, 5, 6, 8};
inline constexpr int kAffineGroupSizes[] = {32, 64, 128};

// A weight [..., rows, cols] quantized along cols: packed uint32
// [..., rows, cols * bits / 32], scales and biases [..., rows, cols / group_size].
struct QuantizedWeight {
  BufferPtr packed, scales, biases;
  int bits = 4;
  int group_size = 64;

  // Unpacked (DWQ): `packed` holds one uint8 code per value, [..., rows,
  // cols]. That is byte for byte MLX's 8-bit packing, so the 8-bit kernels
  // run it (kernel_bits()); `bits` stays the true width (codes < 2^bits).
  bool unpacked = false;

  // Checks dtypes and shapes against each other (TypeError / ValueError).
  static QuantizedWeight from_buffers(BufferPtr packed, BufferPtr scales, BufferPtr biases, int bits, int group_size);
  // Wraps unpacked codes (uint8 [..., rows, cols], each < 2^bits, checked)
  // without copying; bits 1..8, group_size a power of two in 2..1024
  // dividing cols (the matmul kernels take 32, 64, 128). See qmetal/dwq.h.
  static QuantizedWeight from_codes(BufferPtr codes, BufferPtr scales, BufferPtr biases, int bits, int group_size);
  // The same codes with other scales and biases (same shape, any float dtype).
  QuantizedWeight with_scales(BufferPtr scales, BufferPtr biases) const;

  DType dtype() const { return scales->dtype(); }
  // The width the kernels decode: 8 for unpacked codes.
  int kernel_bits() const { return unpacked ? 8 : bits; }
  // The dense weight's shape [..., rows, cols].
  Shape shape() const;
};

// Kernel routes; `automatic` lets the planner choose. Forcing one is for
// tests and benchmarks (ValueError if the shape does not allow it).
// qmm_tensor: Metal 4 tensor operations (M5-class GPUs), transpose=True;
// taken automatically where the device runs them (tensor_routes.h).
enum class AffineRoute { automatic, qmv, qmv_fast, qmv_wide, qvm, qvm_split_k, qmm, qmm_split_k, qmm_sorted, qmm_tensor };
AffineRoute affine_route_from_name(std::string_view name);
std::string_view affine_route_name(AffineRoute route);

// "affine_<kernel>_<dtype>_gs<group size>_b<bits>", as the shaders' instantiation macro names them.
std::string affine_kernel_name(std::string_view kernel, DType dtype, int group_size, int bits);

// Below this many activation rows the mat-vec kernels win; from a table by
// GPU generation, with a default for the simulator.
uint32_t affine_matmat_threshold(const Device& device);

// K partitions for a tiled matmul with `tiles` threadgroups: more than one
// when the tiles alone cannot fill the GPU and K is long enough to share.
uint32_t affine_k_partitions(uint64_t tiles, uint32_t K, uint64_t target_threadgroups = 128);
// Threadgroups that keep the device's cores busy: a few per core where the
// core count is known, else 128 (about that for the largest Apple GPUs).
uint64_t affine_target_threadgroups(const Device& device);

// Launch plans (the planner). Buffers are bound as given; `y` must have the
// result's shape and dtype.
std::vector<DispatchPlan> plan_affine_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                                             bool transpose, const BufferPtr& y, AffineRoute route);

// The ops.
QuantizedWeight affine_quantize(const Device& device, const BufferPtr& w, int bits, int group_size);
BufferPtr affine_dequantize(const Device& device, const QuantizedWeight& w);
// y = x @ dequant(w)^T (transpose) or x @ dequant(w); x [..., M, K] with
// x.dtype == w.dtype(); a batched w broadcasts against x's leading dims.
// Writes into `out` when given (checked first), else allocates.
// With a stream, the work is queued on it (its device must be `device`)
// and y is ready after stream->synchronize().
BufferPtr affine_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w, bool transpose,
                        const BufferPtr& out = nullptr, AffineRoute route = AffineRoute::automatic,
                        Stream* stream = nullptr);
// The shape affine_matmul returns (ValueError if x and w do not fit).
Shape affine_matmul_shape(const Shape& x, const QuantizedWeight& w, bool transpose);

// MoE, with the semantics of mlx.core.gather_qmm: x [..., M, K], experts
// stacked w [E..., N, K]; lhs_indices index x's batch matrices and
// rhs_indices the experts (either may be null: every matrix in order); the
// two broadcast to a shape I and the result is I + [M, N], matrix i being
// x[lhs[i]] @ dequant(w[rhs[i]])^T. Indices: any integer dtype, in range.
// With one row per matrix (decode-style MoE) and many rows, the rows are
// sorted by expert so each expert's tiles are dequantized once for all its
// rows (route qmm_sorted); `sorted_indices` says rhs is sorted already
// (checked), as in mlx.
BufferPtr affine_gather_matmul(const Device& device, const BufferPtr& x, const QuantizedWeight& w,
                               const BufferPtr& lhs_indices, const BufferPtr& rhs_indices, bool transpose,
                               bool sorted_indices = false, const BufferPtr& out = nullptr,
                               AffineRoute route = AffineRoute::automatic, Stream* stream = nullptr);

// The planner's part of it: lhs and rhs already broadcast, flattened uint32
// buffers of one index per output matrix. Route qmm_sorted takes rhs sorted
// and `rows`, the output matrix of each sorted position.
std::vector<DispatchPlan> plan_affine_gather_matmul(const Device& device, const BufferPtr& x,
                                                    const QuantizedWeight& w, const BufferPtr& lhs,
                                                    const BufferPtr& rhs, bool transpose, const BufferPtr& y,
                                                    AffineRoute route, const BufferPtr& rows = nullptr);

// Whether gather_matmul would sort rows by expert for this shape.
bool affine_gather_prefers_sorted(const Device& device, bool transpose, int64_t rows_per_matrix, int64_t matrices,
                                  int64_t experts);

}  // namespace qmetal
