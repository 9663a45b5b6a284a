// What the `cuda` backend (host C++) and the kernels generated from .metal
// (python/qmetal/sim/_cuda.py) agree on: every kernel is one __global__
// function named kernel_symbol(host name) taking one Params by value, and
// each generated file lists its kernels in a KernelEntry table. Plain C++:
// the host side compiles it without CUDA.
#pragma once

#include <cstdint>

namespace qmetal_cuda {

// Metal's argument table has 31 buffer slots, and as many threadgroup slots.
inline constexpr unsigned kMaxBuffers = 31;
inline constexpr unsigned kMaxThreadgroupArgs = 31;

struct Params {
  void* buffers[kMaxBuffers];                        // [[buffer(i)]]: device pointers, nullptr when unbound
  uint32_t threadgroup_offsets[kMaxThreadgroupArgs];  // [[threadgroup(i)]]: byte offset in dynamic shared memory
  uint32_t grid[3];                                  // threadgroups in the whole dispatch
  uint32_t group_base[3];                            // first threadgroup of this launch (grids past CUDA's
                                                     // 65535 in y or z run as several launches)
};

struct KernelEntry {
  const char* name;      // host name
  const void* function;  // the __global__ function (host stub), for cudaLaunchKernel
};

// The C symbol of a kernel's entry: the host name with every byte outside
// [A-Za-z0-9_] written as _xHH, after a prefix no kernel name can take.
inline constexpr const char* kSymbolPrefix = "__qmetal_cuda_";

}  // namespace qmetal_cuda
