// MSL rule A-8: Apple's compiler rejects this; so must the simulator.
// expect: parameter may not be qualified with an address space
#include <metal_stdlib>
using namespace metal;

float scaled(constant float factor, float v) { return factor * v; }  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = scaled(2.0f, out[0]); }
