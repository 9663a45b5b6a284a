// MSL rule A-1: Apple's compiler rejects this; so must the simulator.
// expect: program scope variable must reside in constant address space
#include <metal_stdlib>
using namespace metal;

float offset = 1.0f;  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = offset; }
