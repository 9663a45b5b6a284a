#include "qmetal/plan.h"

#include <set>

#include "planning.h"
#include "qmetal/error.h"

namespace qmetal {

void DispatchPlan::validate(const DeviceCapabilities& caps) const {
  const char* name = kernel.c_str();
  if (kernel.empty()) value_error("DispatchPlan: kernel name is empty");
  if (grid.volume() == 0) value_error(name, ": grid has a zero extent");
  if (threadgroup.volume() == 0) value_error(name, ": threadgroup has a zero extent");
  if (threadgroup.volume() > caps.max_threads_per_threadgroup) {
    value_error(name, ": threadgroup of ", threadgroup.volume(), " threads exceeds the device limit of ",
                caps.max_threads_per_threadgroup);
  }

  if (args.size() > kMaxArgsBytes) {
    value_error(name, ": the arg struct has ", args.size(), " bytes; setBytes takes less than 4096");
  }

  std::set<uint32_t> buffer_slots;
  for (const BufferBinding& binding : buffers) {
    if (!binding.buffer) value_error(name, ": buffer ", binding.index, " is null");
    if (binding.index == qmetal_args::kArgsBufferIndex && !args.empty()) {
      value_error(name, ": buffer index ", binding.index, " is reserved for the arg struct");
    }
    if (!buffer_slots.insert(binding.index).second) {
      value_error(name, ": buffer index ", binding.index, " is bound twice");
    }
    if (binding.offset > binding.buffer->nbytes()) {
      value_error(name, ": buffer ", binding.index, " offset ", binding.offset, " is past its ",
                  binding.buffer->nbytes(), " bytes");
    }
    if (binding.extent > binding.buffer->nbytes() - binding.offset) {
      value_error(name, ": buffer ", binding.index, " extent ", binding.extent, " from offset ", binding.offset,
                  " runs past its ", binding.buffer->nbytes(), " bytes");
    }
    if (binding.access != Access::read && binding.buffer->readonly()) {
      value_error(name, ": buffer ", binding.index, " is written but read-only");
    }
  }

  std::set<uint32_t> memory_slots;
  size_t total = 0;
  for (const ThreadgroupMemory& memory : threadgroup_memory) {
    if (!memory_slots.insert(memory.index).second) {
      value_error(name, ": threadgroup memory index ", memory.index, " is set twice");
    }
    if (memory.bytes % kThreadgroupMemoryGranularity != 0) {
      value_error(name, ": threadgroup memory index ", memory.index, " has ", memory.bytes,
                  " bytes; Metal takes multiples of ", kThreadgroupMemoryGranularity);
    }
    total += memory.bytes;
  }
  if (total > caps.max_threadgroup_memory) {
    value_error(name, ": ", total, " bytes of threadgroup memory exceed the device limit of ",
                caps.max_threadgroup_memory);
  }
}

uint32_t mat_vec_k_slices(uint64_t simdgroups, uint64_t lane_steps, uint64_t target_threadgroups) {
  return planning::mat_vec_slices(simdgroups, lane_steps, target_threadgroups);
}

}  // namespace qmetal
