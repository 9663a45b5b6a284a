// MSL rule A-6: Apple's compiler rejects this; so must the simulator.
// expect: read-only
#include <metal_stdlib>
using namespace metal;

kernel void k(constant float* table [[buffer(0)]], device float* out [[buffer(1)]]) {
  out[0] = table[0];
  table[1] = 2.0f;  // <- error
}
