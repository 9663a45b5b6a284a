// MSL rule B-18: Apple's compiler rejects this; so must the simulator.
// expect: cannot be overloaded
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) { out[0] = 1.0f; }
kernel void k(device half* out [[buffer(0)]]) { out[0] = 1.0h; }  // <- error
