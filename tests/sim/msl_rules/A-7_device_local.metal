// MSL rule A-7: Apple's compiler rejects this; so must the simulator.
// expect: automatic variable qualified with an address space
#include <metal_stdlib>
using namespace metal;

kernel void k(device float* out [[buffer(0)]]) {
  device float local = 1.0f;  // <- error
  out[0] = local;
}
