// MSL rule F-3: Apple's compiler rejects this; so must the simulator.
// expect: simdgroup_load takes a pointer to the matrix's own element type
#include <metal_stdlib>
using namespace metal;

kernel void k(device half* in [[buffer(0)]], device float* out [[buffer(1)]]) {
  simdgroup_float8x8 m;
  simdgroup_load(m, in);  // <- error
  simdgroup_store(m, out);
}
