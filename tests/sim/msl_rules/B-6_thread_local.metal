// MSL rule B-6: Apple's compiler rejects this; so must the simulator.
// expect: 'thread_local' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  thread_local float t = 1.0f;  // <- error
  out[0] = t;
}
