// MSL rule D-3: Apple's compiler rejects this; so must the simulator.
// expect: is not valid for attribute 'thread_position_in_grid'
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], float gid [[thread_position_in_grid]]) {  // <- error
  out[0] = gid;
}
