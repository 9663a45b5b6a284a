// MSL rule D-2: Apple's compiler rejects this; so must the simulator.
// expect: 'buffer' attribute parameter is out of bounds: must be between 0 and 30
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(31)]]) {  // <- error
  out[0] = 1.0f;
}
