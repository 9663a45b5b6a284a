// MSL rule B-9: Apple's compiler rejects this; so must the simulator.
// expect: 'throw' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  if (out[0] < 0.0f) throw 1;  // <- error
  out[0] = 1.0f;
}
