// MSL rule B-13: Apple's compiler rejects this; so must the simulator.
// expect: non-qualified function cannot be called 'main'
#include <metal_stdlib>
using namespace metal;

int main() { return 0; }  // <- error

kernel void k(device float* out [[buffer(0)]]) { out[0] = 1.0f; }
