// The ops, and running plans on a device (library qmetal_ops, which links
// the backends).
#pragma once

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
// the simulator runs each op as it is queued.
class Stream {
 public:
  explicit Stream(DevicePtr device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void enqueue(const std::vector<DispatchPlan>& plans);
  // Waits for everything queued; raises RuntimeError if the GPU failed.
  void synchronize();
  const DevicePtr& device() const { return device_; }

 private:
  DevicePtr device_;
  std::shared_ptr<void> backend_;  // the Metal backend's stream
};

}  // namespace qmetal
