// MSL rule E-1: Apple's compiler rejects this; so must the simulator.
// expect: a function constant cannot have an initializer
#include <metal_stdlib>
using namespace metal;

constant bool use_bias [[function_constant(0)]] = true;  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = use_bias ? 1.0f : 0.0f; }
