// MSL rule B-5: Apple's compiler rejects this; so must the simulator.
// expect: 'goto' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  if (out[0] > 0.0f) goto done;  // <- error
  out[0] = 1.0f;
done:
  out[1] = 2.0f;
}
