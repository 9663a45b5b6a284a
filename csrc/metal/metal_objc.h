// Objective-C++ declarations shared by the .mm files of the Metal backend
// (never included from plain C++). C++ objects own Objective-C ones as
// strong ARC members.
#pragma once

#import <Metal/Metal.h>

#include <map>
#include <mutex>
#include <string>

#include "metal/metal.h"
#include "qmetal/buffer.h"

namespace qmetal::metal {

class MetalDevice : public Device {
 public:
  MetalDevice(id<MTLDevice> device, std::string name, std::string architecture, DeviceCapabilities capabilities);
  ~MetalDevice() override;

  id<MTLDevice> device() const { return device_; }
  id<MTLCommandQueue> queue() const { return queue_; }

  // The pipeline of a kernel of the metallib; cached, thread-safe. Raises
  // RuntimeError naming the kernel (or the metallib) when it is missing and
  // when the pipeline cannot run `threads` threads per threadgroup.
  id<MTLComputePipelineState> pipeline(const std::string& kernel, uint64_t threads);

 private:
  id<MTLLibrary> library();

  id<MTLDevice> device_;
  id<MTLCommandQueue> queue_;
  std::mutex mutex_;
  id<MTLLibrary> library_ = nil;
  std::map<std::string, id<MTLComputePipelineState>> pipelines_;
};

// The MTLBuffer over a Buffer's memory that holds byte `offset`, and the
// offset within it. Made without copying on first use and kept with the
// Buffer; buffers larger than the device's maxBufferLength get several
// overlapping views.
struct BufferView {
  id<MTLBuffer> buffer;
  size_t offset;
};
BufferView buffer_view(const MetalDevice& device, const Buffer& buffer, size_t offset);

}  // namespace qmetal::metal
