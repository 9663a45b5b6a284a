// gather_check: runs after a gather (MoE) kernel whose index lists were read
// on the device, where the host never saw them. An output matrix whose x
// matrix (lhs) or expert (rhs) is out of range was computed from clamped
// indices: it becomes NaN, and a flag bit tells the host which argument
// was wrong (reported at Stream.synchronize()). One thread per output matrix.
#include <metal_stdlib>

#include "qmetal_args.h"

using namespace metal;
using namespace qmetal_args;

template <typename T>
[[kernel]] void gather_check(constant GatherCheckArgs& args [[buffer(kArgsBufferIndex)]],
                             const device uint32_t* lhs [[buffer(kGatherCheckLhs)]],
                             const device uint32_t* rhs [[buffer(kGatherCheckRhs)]],
                             device T* y [[buffer(kGatherCheckY)]],
                             device atomic_uint* flags [[buffer(kGatherCheckFlags)]],
                             uint z [[thread_position_in_grid]]) {
  if (z >= args.matrices) return;
  const uint bad = (lhs[z] >= args.lhs_count ? kGatherBadLhs : 0u) | (rhs[z] >= args.rhs_count ? kGatherBadRhs : 0u);
  if (bad == 0) return;
  atomic_fetch_or_explicit(flags, bad, memory_order_relaxed);
  device T* matrix = y + ulong(z) * args.matrix_size;
  for (uint i = 0; i < args.matrix_size; ++i) matrix[i] = T(NAN);
}

#define QMETAL_GATHER_CHECK(type, type_name) \
  template [[host_name("gather_check_" #type_name)]] [[kernel]] decltype(gather_check<type>) gather_check<type>;
QMETAL_GATHER_CHECK(float, float32)
QMETAL_GATHER_CHECK(half, float16)
QMETAL_GATHER_CHECK(bfloat, bfloat16)
