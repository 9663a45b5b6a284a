// Helpers the planners share (internal to the core).
#pragma once

#include <algorithm>
#include <cstdint>

#include "qmetal/error.h"

namespace qmetal::planning {

inline uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// A count the kernels index with 32 bits; ValueError naming it otherwise.
inline uint32_t checked_u32(int64_t value, const char* what) {
  if (value < 0 || value > int64_t(UINT32_MAX)) value_error(what, " (", value, ") does not fit the kernels' 32-bit indices");
  return static_cast<uint32_t>(value);
}

// MoE: whether rows (one activation row each) should be sorted by expert
// so that each expert's dequantized tiles serve all its rows: when there
// are at least `min_rows` and, on average, enough rows per expert to fill
// half a 32-row tile. A tile walks every expert among its rows over the
// whole K, so few rows per expert cost more than a mat-vec per row: on the
// H200 (bench/README.md) 32 rows over 8 experts ran 5x slower sorted than
// as mat-vecs, 1024 rows 1.9x faster; the cost model there puts the
// crossover near 16 rows per expert. Apple's simdgroup-matrix hardware
// makes tiles cheaper, so its crossover is likely lower (to be measured).
inline bool prefers_sorted_rows(int64_t rows, int64_t experts, int64_t min_rows) {
  constexpr int64_t kMinRowsPerExpert = 16;
  return rows >= std::max(min_rows, kMinRowsPerExpert * experts);
}

}  // namespace qmetal::planning
