// MSL rule D-5: Apple's compiler rejects this; so must the simulator.
// expect: invalid type 'uint' for input declaration in a kernel function
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint n) {  // <- error
  out[0] = float(n);
}
