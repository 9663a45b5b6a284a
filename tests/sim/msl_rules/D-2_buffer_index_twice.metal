// MSL rule D-2: Apple's compiler rejects this; so must the simulator.
// expect: cannot reserve 'buffer' resource location at index 0
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]],
              device float* more [[buffer(0)]]) {  // <- error
  out[0] = more[0];
}
