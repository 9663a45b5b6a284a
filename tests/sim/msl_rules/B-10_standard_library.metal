// MSL rule B-10: Apple's compiler rejects this; so must the simulator.
// expect: MSL has no C++ standard library
#include <metal_stdlib>
using namespace metal;

#include <algorithm>  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = 1.0f; }
