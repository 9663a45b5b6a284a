// MSL rule D-4: Apple's compiler rejects this; so must the simulator.
// expect: cannot have input declarations with 'threads_per_simdgroup' and 'thread_execution_width'
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint a [[threads_per_simdgroup]],
              uint b [[thread_execution_width]]) {  // <- error
  out[0] = float(a + b);
}
