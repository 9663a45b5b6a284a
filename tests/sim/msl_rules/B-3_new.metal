// MSL rule B-3: Apple's compiler rejects this; so must the simulator.
// expect: 'new' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  thread float* p = new float(1.0f);  // <- error
  out[0] = *p;
}
