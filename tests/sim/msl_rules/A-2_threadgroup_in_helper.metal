// MSL rule A-2: Apple's compiler rejects this; so must the simulator.
// expect: variables in the threadgroup address space cannot be declared in a non-qualified function
#include <metal_stdlib>
using namespace metal;

float total(float v, uint lane) {
  threadgroup float scratch[32];  // <- error
  scratch[lane] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return scratch[0];
}

kernel void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_threadgroup]]) {
  out[lane] = total(1.0f, lane);
}
