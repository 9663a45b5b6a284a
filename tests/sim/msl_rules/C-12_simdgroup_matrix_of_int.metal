// MSL rule C-12: Apple's compiler rejects this; so must the simulator.
// expect: simdgroup_matrix elements are half, float or bfloat
#include <metal_stdlib>
using namespace metal;

kernel void k(device int* out [[buffer(0)]]) {
  simdgroup_matrix<int, 8, 8> m;  // <- error
  (void)m;
  out[0] = 1;
}
