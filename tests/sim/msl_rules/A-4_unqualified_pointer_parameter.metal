// MSL rule A-4: Apple's compiler rejects this; so must the simulator.
// expect: pointer type must have explicit address space qualifier
#include <metal_stdlib>
using namespace metal;

float first(const float* values) { return values[0]; }  // <- error

kernel void k(device float* out [[buffer(0)]]) {
  float v[2] = {1.0f, 2.0f};
  out[0] = first(v);
}
