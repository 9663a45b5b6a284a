// MSL rule D-4: Apple's compiler rejects this; so must the simulator.
// expect: declaration with attribute 'thread_position_in_grid' already specified
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint a [[thread_position_in_grid]],
              uint b [[thread_position_in_grid]]) {  // <- error
  out[a] = float(b);
}
