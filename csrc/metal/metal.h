// The Metal backend (macOS): the device, MTLBuffer views of qmetal Buffers,
// the precompiled metallib with its pipeline cache, and streams that encode
// DispatchPlans. Objective-C stays inside the .mm files; this header is
// plain C++ so the ops layer can call it. It makes no decisions: every
// choice was made by the planner, the same one the simulator runs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal::metal {

// Whether this machine has a GPU qmetal can use: one that supports the
// Apple7 and Metal3 families, with this build's kernel library loaded and
// checked. Found once per process (MTLCopyAllDevices, then
// MTLCreateSystemDefaultDevice) and cached.
bool available();

// That GPU as a qmetal Device; when there is none, RuntimeError saying why
// (no GPU, a GPU without the families, a missing or stale metallib).
DevicePtr create_device();

// Encodes plans into command buffers, committing them in batches, with a
// memory barrier between consecutive dispatches (each may read what the
// previous wrote) and each command buffer waiting for the previous one's
// end. Errors of the GPU surface at synchronize().
//
// Thread-safe: calls from several threads are serialized (each holds the
// stream while it encodes or waits). No Metal thread ever releases a
// Buffer: they are released on the threads that call encode/synchronize.
// The destructor does not wait for the GPU: work still running keeps its
// buffers alive until a later call on any stream sees it finished. Each
// live stream may hold one uncommitted command buffer, and a command queue
// admits 64, so keep fewer than 64 streams with unsynchronized work.
class Stream {
 public:
  explicit Stream(DevicePtr device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void encode(const DispatchPlan& plan);
  // Commits what is encoded and waits for it; raises RuntimeError with
  // Metal's message if a command buffer failed.
  void synchronize();

  const DevicePtr& device() const { return device_; }

 private:
  struct State;
  DevicePtr device_;
  std::unique_ptr<State> state_;
};

// Encodes plans on a fresh stream and waits, as the simulator does.
void execute(const Device& device, const std::vector<DispatchPlan>& plans);

// Where the metallib is looked for: QMETAL_METALLIB, else qmetal.metallib
// next to the binary holding this code (the Python extension module); an
// absolute path.
std::string metallib_path();

}  // namespace qmetal::metal
