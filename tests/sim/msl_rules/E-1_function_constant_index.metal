// MSL rule E-1: Apple's compiler rejects this; so must the simulator.
// expect: function constant index 70000 is out of range
#include <metal_stdlib>
using namespace metal;

constant bool use_bias [[function_constant(70000)]];  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = use_bias ? 1.0f : 0.0f; }
