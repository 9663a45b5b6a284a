// The ops, and running plans on a device (library qmetal_ops, which links
// the backends).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "qmetal/affine.h"
#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal {

// Registers the backends compiled into this build (Metal on macOS) with
// the device registry. Call once before asking for devices; ops call it too.
void initialize();

// Runs plans on the device's backend, in order, and waits for them.
void execute(const Device& device, const std::vector<DispatchPlan>& plans);

// Queues the work of many ops so an LLM runtime can encode a whole layer
// and wait once: on Metal, plans are encoded into command buffers that run
// while more are queued, and their results are ready after synchronize();
// the simulator and the CUDA backend keep the plans and run them at
// synchronize(), so that reading a result too early shows here as it would
// on a Mac.
class Stream {
 public:
  explicit Stream(DevicePtr device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void enqueue(const std::vector<DispatchPlan>& plans);
  // Waits for everything queued; raises RuntimeError if the GPU failed, and
  // ValueError for the first failed device check (below).
  void synchronize();
  const DevicePtr& device() const { return device_; }
  // The kernels queued since the last synchronize(), in order (which routes
  // an op took, e.g. whether MoE rows were sorted on the device).
  const std::vector<std::string>& queued_kernels() const { return queued_kernels_; }

  // A check of data that only the GPU saw (MoE indices produced by an
  // earlier op): after the queued work, each bit of the uint32 `flags` that
  // a kernel set is reported by synchronize() with its message.
  struct DeviceCheck {
    BufferPtr flags;
    std::vector<std::pair<uint32_t, std::string>> messages;  // (bit, ValueError message)
  };
  void add_check(DeviceCheck check);

 private:
  DevicePtr device_;
  std::shared_ptr<void> backend_;       // the Metal backend's stream
  std::vector<DispatchPlan> pending_;   // sim and cuda: plans queued until synchronize
  std::vector<DeviceCheck> checks_;
  std::vector<std::string> queued_kernels_;
};

}  // namespace qmetal
