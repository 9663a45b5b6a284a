// MSL rule B-2: Apple's compiler rejects this; so must the simulator.
// expect: dynamic_cast is not supported in Metal
#include <metal_stdlib>
using namespace metal;

struct A { int x; };

kernel void k(device float* out [[buffer(0)]]) {
  thread A a{1};
  out[0] = dynamic_cast<thread A*>(&a) ? 1.0f : 0.0f;  // <- error
}
