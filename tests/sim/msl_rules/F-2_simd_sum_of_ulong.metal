// MSL rule F-2: Apple's compiler rejects this; so must the simulator.
// expect: simd/quad functions take integer or floating-point types other than bool, long, ulong
#include <metal_stdlib>
using namespace metal;

kernel void k(device ulong* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  out[lane] = simd_sum(out[lane]);  // <- error
}
