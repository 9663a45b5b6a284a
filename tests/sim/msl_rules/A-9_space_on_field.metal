// MSL rule A-9: Apple's compiler rejects this; so must the simulator.
// expect: field may not be qualified with an address space
#include <metal_stdlib>
using namespace metal;

struct Pair {
  device float first;  // <- error
  float second;
};

kernel void k(device float* out [[buffer(0)]]) { out[0] = 1.0f; }
