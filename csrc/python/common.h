// Conversions shared by the binding files.
#pragma once

#include <cstdint>
#include <vector>

#include "qmetal/error.h"
#include "qmetal/plan.h"

namespace qmetal {

// A grid or threadgroup size given as 1 to 3 extents.
inline Dim3 dim3_from(const std::vector<uint32_t>& v, const char* what) {
  if (v.empty() || v.size() > 3) value_error(what, ": expected 1 to 3 extents, got ", v.size());
  Dim3 d;
  d.x = v[0];
  if (v.size() > 1) d.y = v[1];
  if (v.size() > 2) d.z = v[2];
  return d;
}

}  // namespace qmetal
