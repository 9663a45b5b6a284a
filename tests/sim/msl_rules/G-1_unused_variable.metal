// MSL rule G-1: Apple's compiler rejects this; so must the simulator.
// expect: unused variable
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  int unused = 3;  // <- error
  out[0] = 1.0f;
}
