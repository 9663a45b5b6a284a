// MSL rule B-11: Apple's compiler rejects this; so must the simulator.
// expect: variables in function scope cannot be declared static
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  static int calls = 0;  // <- error
  calls++;
  out[0] = float(calls);
}
