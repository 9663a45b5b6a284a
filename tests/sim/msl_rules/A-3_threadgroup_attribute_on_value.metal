// MSL rule A-3: Apple's compiler rejects this; so must the simulator.
// expect: is not valid for attribute 'threadgroup'
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint scratch [[threadgroup(0)]]) {  // <- error
  out[0] = float(scratch);
}
