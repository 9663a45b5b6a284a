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
};

struct ThreadgroupMemory {
  uint32_t index = 0;
  uint32_t bytes = 0;
};

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

  void bind(uint32_t index, BufferPtr buffer, Access access, size_t offset = 0) {
    buffers.push_back({index, std::move(buffer), offset, access});
  }

  // Checks the plan against the device's limits and its own consistency
  // (unique indices, offsets inside their buffers, nothing bound at the args
  // slot). Throws ValueError; a failure here is a planner bug.
  void validate(const DeviceCapabilities& caps) const;
};

}  // namespace qmetal
