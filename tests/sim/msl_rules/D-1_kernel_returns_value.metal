// MSL rule D-1: Apple's compiler rejects this; so must the simulator.
// expect: invalid return type 'int' for kernel function
#include <metal_stdlib>
using namespace metal;

kernel int k(device float* out [[buffer(0)]]) {  // <- error
  out[0] = 1.0f;
  return 0;
}
