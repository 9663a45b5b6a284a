// MSL rule A-4: Apple's compiler rejects this; so must the simulator.
// expect: reference type must have explicit address space qualifier
#include <metal_stdlib>
using namespace metal;

void twice(float& value) { value *= 2.0f; }  // <- error

kernel void k(device float* out [[buffer(0)]]) {
  thread float v = 1.0f;
  twice(v);
  out[0] = v;
}
