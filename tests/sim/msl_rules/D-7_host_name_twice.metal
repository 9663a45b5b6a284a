// MSL rule D-7: Apple's compiler rejects this; so must the simulator.
// expect: is already the name of another kernel
#include <metal_stdlib>
using namespace metal;

template <typename T>
kernel void fill(device T* out [[buffer(0)]]) { out[0] = T(1); }

template [[host_name("fill")]] kernel void fill<float>(device float*);
template [[host_name("fill")]] kernel void fill<half>(device half*);  // <- error
