// MSL rule C-8: Apple's compiler rejects this; so must the simulator.
// expect: bfloat
#include <metal_stdlib>
using namespace metal;

kernel void k(device bfloat* b [[buffer(0)]], device half* h [[buffer(1)]]) {
  h[0] = b[0];  // <- error
}
