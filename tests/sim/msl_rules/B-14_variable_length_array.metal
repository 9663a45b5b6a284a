// MSL rule B-14: Apple's compiler rejects this; so must the simulator.
// expect: variable length array
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], constant uint& n [[buffer(1)]]) {
  float values[n];  // <- error
  values[0] = 1.0f;
  out[0] = values[0];
}
