// MSL rule F-1: Apple's compiler rejects this; so must the simulator.
// expect: too few arguments
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_threadgroup]]) {
  threadgroup_barrier();  // <- error
  out[lane] = 1.0f;
}
