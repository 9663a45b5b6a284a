// Streams: plans encoded into command buffers exactly as planned (setBytes,
// setBuffer, setThreadgroupMemoryLength, dispatchThreadgroups) and committed
// in batches; errors of the GPU surface at synchronize().
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

}  // namespace

struct Stream::State {
  MetalDevice* device = nullptr;
  id<MTLCommandBuffer> command_buffer = nil;
  id<MTLComputeCommandEncoder> encoder = nil;
  int dispatches = 0;
  std::vector<BufferPtr> in_flight;  // what the open command buffer binds
  std::vector<id<MTLCommandBuffer>> committed;

  void commit() {
    if (encoder == nil) return;
    [encoder endEncoding];
    // The buffers stay alive until the GPU is done with them.
    auto keep = std::make_shared<std::vector<BufferPtr>>(std::move(in_flight));
    [command_buffer addCompletedHandler:^(id<MTLCommandBuffer> done) {
      (void)done;
      keep->clear();
    }];
    [command_buffer commit];
    committed.push_back(command_buffer);
    encoder = nil;
    command_buffer = nil;
    dispatches = 0;
    in_flight.clear();
  }
};

Stream::Stream(DevicePtr device) : device_(std::move(device)), state_(std::make_unique<State>()) {
  if (!device_) value_error("device is required");
  state_->device = &metal_device(*device_);
}

Stream::~Stream() {
  try {
    synchronize();
  } catch (...) {
    // Destructors must not throw; a failure was reported to whoever synchronized.
  }
}

void Stream::encode(const DispatchPlan& plan) {
  State& s = *state_;
  @autoreleasepool {
    id<MTLComputePipelineState> pipeline = s.device->pipeline(plan.kernel, plan.threadgroup.volume());
    if (s.encoder == nil) {
      s.command_buffer = [s.device->queue() commandBuffer];
      if (s.command_buffer == nil) runtime_error("Metal: cannot create a command buffer");
      s.encoder = [s.command_buffer computeCommandEncoder];
      if (s.encoder == nil) runtime_error("Metal: cannot create a compute encoder");
    } else {
      // The next dispatch may read what this one writes.
      [s.encoder memoryBarrierWithScope:MTLBarrierScopeBuffers];
    }
    [s.encoder setComputePipelineState:pipeline];
    if (!plan.args.empty()) {
      [s.encoder setBytes:plan.args.data() length:plan.args.size() atIndex:qmetal_args::kArgsBufferIndex];
    }
    for (const BufferBinding& binding : plan.buffers) {
      const BufferView view = buffer_view(*s.device, *binding.buffer, binding.offset);
      [s.encoder setBuffer:view.buffer offset:view.offset atIndex:binding.index];
      s.in_flight.push_back(binding.buffer);
    }
    for (const ThreadgroupMemory& memory : plan.threadgroup_memory) {
      [s.encoder setThreadgroupMemoryLength:memory.bytes atIndex:memory.index];
    }
    [s.encoder dispatchThreadgroups:size_of(plan.grid) threadsPerThreadgroup:size_of(plan.threadgroup)];
    if (++s.dispatches >= kDispatchesPerCommandBuffer) s.commit();
  }
}

void Stream::synchronize() {
  State& s = *state_;
  @autoreleasepool {
    s.commit();
    std::string failures;
    for (id<MTLCommandBuffer> command_buffer : s.committed) {
      [command_buffer waitUntilCompleted];
      if (command_buffer.status == MTLCommandBufferStatusError) {
        NSError* error = command_buffer.error;
        failures += error != nil ? std::string(error.localizedDescription.UTF8String) : std::string("unknown error");
        failures += "; ";
      }
    }
    s.committed.clear();
    if (!failures.empty()) runtime_error("Metal: a command buffer failed: ", failures);
  }
}

void execute(const Device& device, const std::vector<DispatchPlan>& plans) {
  MetalDevice& metal = metal_device(device);
  // A stream for these plans only; the device outlives it (the caller holds it).
  Stream stream(DevicePtr(std::shared_ptr<Device>{}, &metal));
  for (const DispatchPlan& plan : plans) stream.encode(plan);
  stream.synchronize();
}

}  // namespace qmetal::metal
