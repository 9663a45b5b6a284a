// MSL rule C-4: Apple's compiler rejects this; so must the simulator.
// expect: 'size_t' cannot be used as the type of a kernel parameter
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], constant size_t& n [[buffer(1)]]) {  // <- error
  out[0] = float(n);
}
