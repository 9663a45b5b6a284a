// MSL rule A-4: Apple's compiler rejects this; so must the simulator.
// expect: pointer type must have explicit address space qualifier
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  float* p = out;  // <- error
  p[0] = 1.0f;
}
