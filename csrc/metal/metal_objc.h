// Objective-C++ declarations shared by the .mm files of the Metal backend
// (never included from plain C++). C++ objects own Objective-C ones as
// strong ARC members.
#pragma once

#import <Metal/Metal.h>

#include <exception>
#include <map>
#include <mutex>
#include <string>

#include "metal/metal.h"
#include "qmetal/buffer.h"

namespace qmetal::metal {

// Runs `body` inside an autorelease pool and rethrows its exception after
// the pool is drained: clang does not drain an @autoreleasepool block that
// an exception leaves, which would leak a little per error on a long-lived
// Python thread.
template <class Body>
void with_autorelease_pool(Body&& body) {
  std::exception_ptr error;
  @autoreleasepool {
    try {
      body();
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// The kernel library at `path` for `device`, checked to be the one this
// build compiled (it holds the kernel QMETAL_LIBRARY_ID, named by CMake from
// a hash of the shader sources). nil, with `problem` saying what to do, when
// the file is missing, unreadable or from another build.
id<MTLLibrary> load_library(id<MTLDevice> device, const std::string& path, std::string& problem);

// qmetal_tensor.metallib (the Metal 4 tensor-op kernels, shaders/metal4/),
// next to qmetal.metallib or QMETAL_TENSOR_METALLIB; built only with an SDK
// that has Metal 4.
std::string tensor_metallib_path();

// What the device found about Metal 4 tensor operations, once at creation:
// the library of the tensor-op kernels when qmetal routes to them (nil
// otherwise), and for people the reason either way.
struct TensorOps {
  id<MTLLibrary> library = nil;
  std::string status;
};

class MetalDevice : public Device {
 public:
  // `library` was loaded and checked from `library_path` by load_library.
  MetalDevice(id<MTLDevice> device, id<MTLLibrary> library, std::string library_path, std::string name,
              std::string architecture, std::string families, DeviceCapabilities capabilities,
              TensorOps tensor_ops = {});
  ~MetalDevice() override;

  id<MTLDevice> device() const { return device_; }
  id<MTLCommandQueue> queue() const { return queue_; }
  std::string details() const override;

  // The pipeline of a kernel of the metallib; cached, thread-safe. Raises
  // RuntimeError naming the kernel (or the metallib) when it is missing, when
  // the pipeline cannot run `threads` threads per threadgroup, and when its
  // static threadgroup memory plus `threadgroup_memory` dynamic bytes exceed
  // the device's limit (Apple: "the sum of all threadgroup memory
  // allocations ... can't exceed the device limits").
  id<MTLComputePipelineState> pipeline(const std::string& kernel, uint64_t threads, size_t threadgroup_memory) const;
  // The pipeline's maxTotalThreadsPerThreadgroup (building it if need be).
  uint32_t max_threads_per_threadgroup(const std::string& kernel) const override;

 private:
  id<MTLDevice> device_;
  id<MTLCommandQueue> queue_;
  id<MTLLibrary> library_;
  std::string library_path_;
  std::string families_;
  TensorOps tensor_ops_;
  // The pipeline cache: filled by const queries too (planners ask for a
  // kernel's thread limit through a const Device).
  mutable std::mutex mutex_;
  mutable std::map<std::string, id<MTLComputePipelineState>> pipelines_;
};

// The MTLBuffer that holds bytes [offset, offset + extent) of a Buffer (extent
// 0: to the end of the buffer), and the offset to bind it with. Views cover
// whole pages around the Buffer's memory (newBufferWithBytesNoCopy needs a
// page-aligned pointer and length), so any Buffer is used without a copy
// whatever the alignment of its data; they are made on first use and kept
// with the Buffer. A Buffer larger than the device's maxBufferLength gets
// several views; a binding that no single view can hold is a ValueError.
struct BufferView {
  id<MTLBuffer> buffer;
  size_t offset;
};
BufferView buffer_view(const MetalDevice& device, const Buffer& buffer, size_t offset, size_t extent);

}  // namespace qmetal::metal
