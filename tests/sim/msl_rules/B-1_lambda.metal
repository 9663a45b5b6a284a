// MSL rule B-1: Apple's compiler rejects this; so must the simulator.
// expect: lambda expressions are not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  auto twice = [](float x) { return 2.0f * x; };  // <- error
  out[0] = twice(out[0]);
}
