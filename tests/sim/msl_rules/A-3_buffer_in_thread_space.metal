// MSL rule A-3: Apple's compiler rejects this; so must the simulator.
// expect: invalid address space
#include <metal_stdlib>
using namespace metal;

kernel void k(thread float* out [[buffer(0)]]) {  // <- error
  out[0] = 1.0f;
}
