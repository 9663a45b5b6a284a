// MSL rule C-2: Apple's compiler rejects this; so must the simulator.
// expect: 'long long' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  long long n = 3;  // <- error
  out[0] = float(n);
}
