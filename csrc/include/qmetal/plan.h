// A DispatchPlan is everything needed to run one kernel launch, decided by the
// portable planner and executed unchanged by either backend: Metal turns it
// into setBytes / setBuffer / setThreadgroupMemoryLength /
// dispatchThreadgroups, the simulator runs the same kernel on the CPU.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "qmetal/buffer.h"
#include "qmetal/device.h"
#include "qmetal_args.h"

namespace qmetal {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
  uint64_t volume() const { return uint64_t(x) * y * z; }
};

enum class Access : uint8_t { read, write, read_write };

struct BufferBinding {
  uint32_t index = 0;
  BufferPtr buffer;
  size_t offset = 0;  // bytes from buffer->data()
  Access access = Access::read;
  // Bytes the kernel may touch from `offset`; 0: up to the end of the buffer.
  // Metal needs it for a binding into a buffer larger than the device's
  // maxBufferLength (a whole mapped GGUF file), where one MTLBuffer cannot
  // hold the rest of the buffer.
  size_t extent = 0;
};

struct ThreadgroupMemory {
  uint32_t index = 0;
  uint32_t bytes = 0;  // a multiple of 16 (Metal's setThreadgroupMemoryLength rule)
};

// Apple's rules for what the encoder passes, checked by validate():
// setBytes is "only for data smaller than 4 kilobytes", and threadgroup memory
// lengths must be multiples of 16 bytes. (The third rule, static plus dynamic
// threadgroup memory within the device limit, needs the pipeline: the Metal
// backend checks it with the pipeline's staticThreadgroupMemoryLength.)
constexpr size_t kMaxArgsBytes = 4096 - 1;
constexpr uint32_t kThreadgroupMemoryGranularity = 16;

struct DispatchPlan {
  std::string kernel;          // host name, as built by the kernel naming function
  std::vector<uint8_t> args;   // the kernel family's arg struct, at kArgsBufferIndex
  std::vector<BufferBinding> buffers;
  std::vector<ThreadgroupMemory> threadgroup_memory;
  Dim3 grid;                   // threadgroups, as dispatchThreadgroups counts them
  Dim3 threadgroup;            // threads per threadgroup

  template <class Args>
  void set_args(const Args& value) {
    static_assert(std::is_trivially_copyable_v<Args>, "arg structs are copied as bytes");
    args.resize(sizeof(Args));
    std::memcpy(args.data(), &value, sizeof(Args));
  }

  void bind(uint32_t index, BufferPtr buffer, Access access, size_t offset = 0, size_t extent = 0) {
    buffers.push_back({index, std::move(buffer), offset, access, extent});
  }

  // Checks the plan against the device's limits, Apple's encoder rules (see
  // kMaxArgsBytes) and its own consistency (unique indices, offsets and
  // extents inside their buffers, nothing bound at the args slot). Throws
  // ValueError; a failure here is a planner bug.
  void validate(const DeviceCapabilities& caps) const;
};

// The K slices the planners give a mat-vec grid of `simdgroups` simdgroups
// whose lanes take `lane_steps` steps each (shaders/mat_vec.h), for a GPU
// that wants `target_threadgroups` threadgroups (6 per core).
uint32_t mat_vec_k_slices(uint64_t simdgroups, uint64_t lane_steps, uint64_t target_threadgroups);

}  // namespace qmetal
