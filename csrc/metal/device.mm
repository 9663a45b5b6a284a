// MTLDevice as a qmetal Device: name, architecture, limits and the
// capabilities the planner routes on.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <unistd.h>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

bool at_least_macos(NSInteger major) {
  NSOperatingSystemVersion version = {major, 0, 0};
  return [[NSProcessInfo processInfo] isOperatingSystemAtLeastVersion:version];
}

std::string to_string(NSString* text) { return text ? std::string(text.UTF8String) : std::string(); }

}  // namespace

bool available() {
  @autoreleasepool {
    return MTLCreateSystemDefaultDevice() != nil;
  }
}

DevicePtr create_device() {
  @autoreleasepool {
    id<MTLDevice> device = MTLCreateSystemDefaultDevice();
    if (device == nil) runtime_error("Metal: this machine has no Metal GPU");
    DeviceCapabilities caps;
    caps.simd_width = 32;
    caps.max_threads_per_threadgroup = static_cast<uint32_t>(device.maxThreadsPerThreadgroup.width);
    caps.max_threadgroup_memory = device.maxThreadgroupMemoryLength;
    caps.max_buffer_length = device.maxBufferLength;
    // newBufferWithBytesNoCopy needs page-aligned memory.
    caps.wrap_alignment = static_cast<size_t>(getpagesize());
    caps.recommended_working_set = device.recommendedMaxWorkingSetSize;
    caps.simdgroup_reduction = [device supportsFamily:MTLGPUFamilyApple7];
    caps.simdgroup_matrix = [device supportsFamily:MTLGPUFamilyApple7];
    caps.bfloat = at_least_macos(14) && [device supportsFamily:MTLGPUFamilyMetal3];
    caps.tensor_ops = at_least_macos(26) && [device supportsFamily:MTLGPUFamilyApple9];
    const std::string architecture = at_least_macos(14) ? to_string(device.architecture.name) : "apple";
    return std::make_shared<MetalDevice>(device, to_string(device.name), architecture, caps);
  }
}

MetalDevice::MetalDevice(id<MTLDevice> device, std::string name, std::string architecture,
                         DeviceCapabilities capabilities)
    : Device(Backend::metal, std::move(name), std::move(architecture), capabilities),
      device_(device),
      queue_([device newCommandQueue]) {
  if (queue_ == nil) runtime_error("Metal: cannot create a command queue on ", this->name());
}

MetalDevice::~MetalDevice() = default;

}  // namespace qmetal::metal
