// Streams: plans encoded into command buffers exactly as planned (setBytes,
// setBuffer, setThreadgroupMemoryLength, dispatchThreadgroups) and committed
// in batches; errors of the GPU surface at synchronize().
//
// Ordering. Within a command buffer, a memory barrier (scope: buffers)
// separates consecutive dispatches, whatever MTLBuffer objects they bind.
// Across command buffers, Metal's hazard tracking is per MTLBuffer object,
// and an op's output that the next op re-wraps (Python returns a NumPy
// array, the next op wraps it again) is a second MTLBuffer over the same
// pages, which Metal does not see as the same resource; and `commit` only
// orders the *start* of command buffers. So each command buffer of a stream
// waits for an event that the previous one signals when it ends. It is an
// MTLSharedEvent so that the CPU can signal it too: when a command buffer
// fails, its successors are released (Apple does not say whether a failed
// command buffer still signals) and synchronize() reports the failure
// instead of waiting forever.
//
// Threads and the GIL. Nothing runs on Metal's threads (no completion
// handlers): the buffers a command buffer binds are kept in the stream and
// released on the caller's thread once the command buffer is done (at the
// next commit, at synchronize). Releasing a buffer may release a Python
// object, which takes the GIL, so buffers are released after the stream's
// lock is dropped. A stream destroyed with work in flight does not wait
// (its destructor may run with the GIL held): it leaves that work's buffers
// in a process-wide list, released by a later commit or synchronize of any
// stream once the GPU is done, or never, at exit. A mutex makes a Stream
// safe to share between threads; each call holds it while it encodes or
// waits.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <vector>

#include "metal/metal_objc.h"
#include "qmetal/error.h"
#include "qmetal_args.h"

namespace qmetal::metal {

namespace {

// Dispatches per command buffer before it is committed without waiting, so
// the GPU starts while more work is encoded (MLX commits in batches too).
constexpr int kDispatchesPerCommandBuffer = 64;

MetalDevice& metal_device(const Device& device) {
  auto* metal = dynamic_cast<const MetalDevice*>(&device);
  if (metal == nullptr) {
    value_error("device: the Metal backend needs a Metal device, got backend '", backend_name(device.backend()), "'");
  }
  return *const_cast<MetalDevice*>(metal);
}

MTLSize size_of(const Dim3& d) { return MTLSizeMake(d.x, d.y, d.z); }

// A committed command buffer, the buffers it binds (alive until the GPU is
// done with them) and the event value it signals at its end.
struct Batch {
  id<MTLCommandBuffer> command_buffer;
  id<MTLSharedEvent> event;
  uint64_t value;
  std::vector<BufferPtr> buffers;
};

bool finished(id<MTLCommandBuffer> command_buffer) {
  const MTLCommandBufferStatus status = command_buffer.status;
  return status == MTLCommandBufferStatusCompleted || status == MTLCommandBufferStatusError;
}

// A failed command buffer may not have signalled its event: signal it from
// the CPU, so the stream's next command buffer does not wait forever.
void release_successors(const Batch& batch) {
  if (batch.command_buffer.status == MTLCommandBufferStatusError && batch.event.signaledValue < batch.value) {
    batch.event.signaledValue = batch.value;
  }
}

// Removes the finished batches: their buffers go to `released` (to be
// dropped by the caller, outside any lock) and their errors to `failures`.
void collect_finished(std::vector<Batch>& batches, std::vector<BufferPtr>& released, std::string* failures) {
  size_t kept = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    Batch& batch = batches[i];
    if (!finished(batch.command_buffer)) {
      if (kept != i) batches[kept] = std::move(batch);
      ++kept;
      continue;
    }
    release_successors(batch);
    if (failures != nullptr && batch.command_buffer.status == MTLCommandBufferStatusError) {
      NSError* error = batch.command_buffer.error;
      const char* text = error != nil ? error.localizedDescription.UTF8String : nullptr;
      *failures += std::string(text != nullptr ? text : "unknown error") + "; ";
    }
    for (BufferPtr& buffer : batch.buffers) released.push_back(std::move(buffer));
  }
  batches.resize(kept);
}

// Work of streams destroyed before the GPU finished it. Never destroyed:
// at exit its buffers are not released into a finalized Python.
struct Orphans {
  std::mutex mutex;
  std::vector<Batch> batches;
};

Orphans& orphans() {
  static Orphans* const all = new Orphans();
  return *all;
}

void collect_finished_orphans(std::vector<BufferPtr>& released) {
  Orphans& o = orphans();
  std::lock_guard<std::mutex> lock(o.mutex);
  if (!o.batches.empty()) collect_finished(o.batches, released, nullptr);
}

}  // namespace

struct Stream::State {
  MetalDevice* device = nullptr;
  std::mutex mutex;
  id<MTLSharedEvent> event = nil;  // signalled with value n by the n-th command buffer at its end
  uint64_t committed = 0;          // command buffers committed so far
  id<MTLCommandBuffer> command_buffer = nil;
  id<MTLComputeCommandEncoder> encoder = nil;
  int dispatches = 0;
  std::vector<BufferPtr> bound;    // what the open command buffer binds
  std::vector<Batch> in_flight;    // committed, not yet seen finished
  std::string failures;            // of finished command buffers, reported at synchronize

  void open() {
    id<MTLCommandBuffer> fresh = [device->queue() commandBuffer];
    if (fresh == nil) runtime_error("Metal: cannot create a command buffer");
    // Start only after the previous command buffer of this stream has ended.
    if (committed > 0) [fresh encodeWaitForEvent:event value:committed];
    id<MTLComputeCommandEncoder> fresh_encoder = [fresh computeCommandEncoder];
    if (fresh_encoder == nil) runtime_error("Metal: cannot create a compute encoder");
    command_buffer = fresh;
    encoder = fresh_encoder;
  }

  void commit() {
    if (encoder == nil) return;
    [encoder endEncoding];
    [command_buffer encodeSignalEvent:event value:committed + 1];
    [command_buffer commit];
    ++committed;
    in_flight.push_back({command_buffer, event, committed, std::move(bound)});
    bound.clear();
    encoder = nil;
    command_buffer = nil;
    dispatches = 0;
  }

  void encode(const DispatchPlan& plan, std::vector<BufferPtr>& released) {
    size_t threadgroup_memory = 0;
    for (const ThreadgroupMemory& memory : plan.threadgroup_memory) threadgroup_memory += memory.bytes;
    id<MTLComputePipelineState> pipeline =
        device->pipeline(plan.kernel, plan.threadgroup.volume(), threadgroup_memory);
    // Views first: a binding that cannot be wrapped fails before anything
    // of this plan is encoded.
    std::vector<BufferView> views;
    views.reserve(plan.buffers.size());
    for (const BufferBinding& binding : plan.buffers) {
      views.push_back(buffer_view(*device, *binding.buffer, binding.offset, binding.extent));
    }
    if (encoder == nil) {
      open();
    } else {
      // The next dispatch may read what this one writes.
      [encoder memoryBarrierWithScope:MTLBarrierScopeBuffers];
    }
    [encoder setComputePipelineState:pipeline];
    if (!plan.args.empty()) {
      [encoder setBytes:plan.args.data() length:plan.args.size() atIndex:qmetal_args::kArgsBufferIndex];
    }
    for (size_t i = 0; i < plan.buffers.size(); ++i) {
      [encoder setBuffer:views[i].buffer offset:views[i].offset atIndex:plan.buffers[i].index];
      bound.push_back(plan.buffers[i].buffer);
    }
    for (const ThreadgroupMemory& memory : plan.threadgroup_memory) {
      [encoder setThreadgroupMemoryLength:memory.bytes atIndex:memory.index];
    }
    [encoder dispatchThreadgroups:size_of(plan.grid) threadsPerThreadgroup:size_of(plan.threadgroup)];
    if (++dispatches >= kDispatchesPerCommandBuffer) {
      commit();
      collect_finished(in_flight, released, &failures);
    }
  }
};

Stream::Stream(DevicePtr device) : device_(std::move(device)), state_(std::make_unique<State>()) {
  if (!device_) value_error("device is required");
  state_->device = &metal_device(*device_);
  with_autorelease_pool([&] {
    state_->event = [state_->device->device() newSharedEvent];
    if (state_->event == nil) runtime_error("Metal: cannot create an event on ", device_->name());
  });
}

Stream::~Stream() {
  std::vector<BufferPtr> released;  // dropped last, after the locks
  try {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    with_autorelease_pool([&] {
      s.commit();
      collect_finished(s.in_flight, released, nullptr);
      if (!s.in_flight.empty()) {
        // No wait here (this may run with the GIL held): the GPU's work
        // keeps its buffers in the orphans until it is done.
        Orphans& o = orphans();
        std::lock_guard<std::mutex> orphans_lock(o.mutex);
        for (Batch& batch : s.in_flight) o.batches.push_back(std::move(batch));
        s.in_flight.clear();
      }
    });
  } catch (...) {
    // Destructors must not throw; errors of work never synchronized are lost.
  }
}

void Stream::encode(const DispatchPlan& plan) {
  std::vector<BufferPtr> released;  // dropped last, after the lock
  {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    with_autorelease_pool([&] { s.encode(plan, released); });
  }
  collect_finished_orphans(released);
}

void Stream::synchronize() {
  std::vector<BufferPtr> released;  // dropped last, after the lock
  std::string failures;
  {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    with_autorelease_pool([&] {
      s.commit();
      for (const Batch& batch : s.in_flight) {
        [batch.command_buffer waitUntilCompleted];
        release_successors(batch);
      }
      collect_finished(s.in_flight, released, &s.failures);
      failures.swap(s.failures);
    });
  }
  collect_finished_orphans(released);
  if (!failures.empty()) runtime_error("Metal: a command buffer failed: ", failures);
}

void execute(const Device& device, const std::vector<DispatchPlan>& plans) {
  MetalDevice& metal = metal_device(device);
  // A stream for these plans only; the device outlives it (the caller holds it).
  Stream stream(DevicePtr(std::shared_ptr<Device>{}, &metal));
  for (const DispatchPlan& plan : plans) stream.encode(plan);
  stream.synchronize();
}

}  // namespace qmetal::metal
