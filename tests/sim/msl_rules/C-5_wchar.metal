// MSL rule C-5: Apple's compiler rejects this; so must the simulator.
// expect: 'wchar_t' is not a Metal type
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  wchar_t c = 1;  // <- error
  out[0] = float(c);
}
