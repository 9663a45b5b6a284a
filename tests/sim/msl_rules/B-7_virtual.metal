// MSL rule B-7: Apple's compiler rejects this; so must the simulator.
// expect: virtual member functions are not supported in Metal
#include <metal_stdlib>
using namespace metal;

struct Shape {
  virtual float area() const { return 1.0f; }  // <- error
};

kernel void k(device float* out [[buffer(0)]]) {
  thread Shape s;
  out[0] = s.area();
}
