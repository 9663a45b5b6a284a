// MSL rule C-1: Apple's compiler rejects this; so must the simulator.
// expect: 'double' is not supported in Metal
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  double wide = out[0];  // <- error
  out[0] = float(wide);
}
