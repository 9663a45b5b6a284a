// MSL rule B-17: Apple's compiler rejects this; so must the simulator.
// expect: variadic arguments are not allowed in Metal qualified functions
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], ...) {  // <- error
  out[0] = 1.0f;
}
