// GGML block weights exactly as GGUF files store them, and their ops.
// Validation raises ValueError / TypeError naming the argument before any
// work is queued; the planner here is the one place GGML routing lives.
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

// One row of the type table; adding a type adds a row here and its block
// struct, dequantize() and instantiations in shaders/ggml.h.
struct GGMLType {
  const char* name;         // as GGUF names it: "Q4_K"
  const char* kernel_name;  // as kernel names spell it: "q4_k"
  uint32_t gguf_id;         // GGMLQuantizationType
  uint32_t block_values;    // values per block (16 for the dense types, as the kernels read them)
  uint32_t block_bytes;
  uint32_t mv_rows;         // rows of w per simdgroup in mul_mv (traits<B>::mv_rows in the shader)
  uint32_t mv_part;         // values per lane step of mul_mv at one x row (traits<B>::part); 16 in mul_mv_ext
  uint32_t alignment;       // bytes a weight's blocks start on (kGGMLWord<type>: the kernels' widest loads)
  bool mv_ext;              // small batches on full grids take mul_mv_ext, else M mul_mv rows (ggml_types())
};

const std::vector<GGMLType>& ggml_types();
// By name, case-insensitive ("q4_k" or "Q4_K"); ValueError listing the names.
const GGMLType& ggml_type(std::string_view name);

// Blocks of a weight of logical shape [..., N, K]: rows of K / block_values
// blocks, one after the other.
// `offset` lets many weights share one buffer, e.g. a whole GGUF file
// mapped once (tensor data is aligned to 32 bytes there, not to pages).
struct GGMLWeight {
  BufferPtr data;  // uint8
  const GGMLType* type = nullptr;
  Shape shape;
  size_t offset = 0;  // bytes from data->data() to the first block

  // Checks the dtype (uint8), the shape, the offset's alignment and that
  // the buffer holds the blocks of `shape` from `offset` (ValueError naming
  // what is short).
  static GGMLWeight from_buffer(BufferPtr data, std::string_view type, Shape shape, size_t offset = 0);
  size_t expected_bytes() const;
};

// mm_tensor / mm_id_tensor: mm / mm_id on Metal 4 tensor operations
// (M5-class GPUs), taken automatically where the device runs them.
enum class GGMLRoute { automatic, mv, mv_ext, mm, mm_split_k, mv_id, mm_id, mm_tensor, mm_id_tensor };
GGMLRoute ggml_route_from_name(std::string_view name);
std::string_view ggml_route_name(GGMLRoute route);

// "ggml_<kernel>_<type>_<activation dtype>_<output dtype>".
std::string ggml_kernel_name(std::string_view kernel, const GGMLType& type, DType activations, DType output);

// y = x @ dequant(w)^T. x [..., K] (or, with heads_first, [heads, M,
// head_dim] read as [M, heads * head_dim] without a copy); a stacked w
// [..., N, K] broadcasts against x's leading dimensions as for affine
// weights. `output`: float32 or x's dtype.
BufferPtr ggml_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w, DType output,
                      bool heads_first = false, const BufferPtr& out = nullptr,
                      GGMLRoute route = GGMLRoute::automatic, Stream* stream = nullptr);
// MoE with the semantics of mlx.core.gather_qmm (see affine_gather_matmul).
BufferPtr ggml_gather_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w,
                             const BufferPtr& lhs_indices, const BufferPtr& rhs_indices, DType output,
                             const BufferPtr& out = nullptr, GGMLRoute route = GGMLRoute::automatic,
                             Stream* stream = nullptr);
BufferPtr ggml_dequantize(const Device& device, const GGMLWeight& w, DType output);

// The planner. Row-list routes (mv_id, mm_id) take x row and expert per
// output row; mm_id also the output row of each (rows sorted by expert).
struct GGMLRows {
  BufferPtr lhs, rhs, rows;  // uint32 each; rows only for mm_id
  uint32_t count = 0;
};
// Whether the MoE row list (one activation row each) is sorted by expert
// for mul_mm_id, rather than one mat-vec per row.
bool ggml_gather_prefers_sorted(int64_t rows, int64_t experts);

std::vector<DispatchPlan> plan_ggml_matmul(const Device& device, const BufferPtr& x, const GGMLWeight& w,
                                           const BufferPtr& y, uint32_t M, uint32_t head_dim, GGMLRoute route,
                                           const GGMLRows* rows = nullptr);

}  // namespace qmetal
