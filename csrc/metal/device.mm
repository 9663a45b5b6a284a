// MTLDevice as a qmetal Device: which GPU (if any) qmetal uses, checked once
// per process, and the name, architecture, limits and capabilities the
// planner routes on.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstdio>
#include <vector>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

// MTLGPUFamilyMetal4 (SDK 26 and later; older SDKs do not name it). A GPU
// on an older macOS answers NO, so no OS-version check is needed: macOS 26
// reports version 16 to a process built with an older SDK.
constexpr MTLGPUFamily kFamilyMetal4 = static_cast<MTLGPUFamily>(5002);

std::string to_string(NSString* text) {
  const char* utf8 = text != nil ? text.UTF8String : nullptr;
  return utf8 != nullptr ? std::string(utf8) : std::string();
}

std::string families_of(id<MTLDevice> device) {
  const std::pair<MTLGPUFamily, const char*> known[] = {
      {MTLGPUFamilyApple7, "apple7"}, {MTLGPUFamilyApple8, "apple8"}, {MTLGPUFamilyApple9, "apple9"},
      {MTLGPUFamilyMetal3, "metal3"}, {kFamilyMetal4, "metal4"}};
  std::string out;
  for (const auto& [family, name] : known) {
    if ([device supportsFamily:family]) out += (out.empty() ? "" : " ") + std::string(name);
  }
  return out.empty() ? "none of apple7..9, metal3..4" : out;
}

// Why qmetal's kernels cannot run on `device` ("" when they can). Every
// kernel uses simd_sum and simdgroup_matrix (Apple7: M1 and later) and the
// library is MSL 3.1 (Metal3). Apple's Virtualization framework, which
// GitHub's arm64 runners use, exposes an "Apple Paravirtual device" with
// neither (Metal.jl#309), and Intel/AMD Macs lack Apple7.
std::string unsupported(id<MTLDevice> device) {
  const bool apple7 = [device supportsFamily:MTLGPUFamilyApple7];
  const bool metal3 = [device supportsFamily:MTLGPUFamilyMetal3];
  if (apple7 && metal3) return {};
  std::string missing;
  if (!apple7) missing = "Apple7 (simdgroup reductions and matrices)";
  if (!metal3) missing += std::string(missing.empty() ? "" : " and ") + "Metal3 (MSL 3.1)";
  return "the GPU '" + to_string(device.name) + "' lacks " + missing + " (its families: " + families_of(device) + ")";
}

// What this process found, once: the GPU qmetal uses and its checked
// kernel library, or why there is none. Never destroyed (no Objective-C
// release during static destruction at exit).
struct Probe {
  id<MTLDevice> device = nil;
  id<MTLLibrary> library = nil;
  std::string library_path;
  std::string reason;  // empty when device and library are set
};

void find_device(Probe& found) {
  // MTLCopyAllDevices first (as MLX does): it works in command-line
  // processes and does not switch a dual-GPU Mac to its discrete GPU.
  // MTLCreateSystemDefaultDevice needs CoreGraphics linked (CMakeLists.txt
  // links it) and is the fallback.
  std::vector<id<MTLDevice>> candidates;
  NSArray<id<MTLDevice>>* all = MTLCopyAllDevices();
  for (NSUInteger i = 0; i < all.count; ++i) candidates.push_back([all objectAtIndex:i]);
  if (candidates.empty()) {
    id<MTLDevice> fallback = MTLCreateSystemDefaultDevice();
    if (fallback != nil) candidates.push_back(fallback);
  }
  if (candidates.empty()) {
    found.reason = "no Metal device (MTLCopyAllDevices and MTLCreateSystemDefaultDevice found none: a virtual "
                   "machine without GPU access, or a session without access to the GPU)";
    return;
  }
  id<MTLDevice> chosen = nil;
  for (id<MTLDevice> candidate : candidates) {
    const std::string why = unsupported(candidate);
    if (why.empty()) {
      chosen = candidate;
      break;
    }
    found.reason += (found.reason.empty() ? "" : "; ") + why;
  }
  if (chosen == nil) return;
  // The kernel library is loaded now, so that a missing or stale one makes
  // Metal unavailable with the reason instead of failing at the first op.
  const std::string path = metallib_path();
  std::string problem;
  id<MTLLibrary> library = load_library(chosen, path, problem);
  if (library == nil) {
    found.reason = "the GPU '" + to_string(chosen.name) + "' is usable but " + problem;
    // A capable Mac that falls back to the CPU because of a broken install
    // must not do it silently.
    std::fprintf(stderr,
                 "qmetal: warning: Metal is not used: %s. Running on the CPU simulator instead "
                 "(QMETAL_BACKEND=metal makes this an error).\n",
                 found.reason.c_str());
    return;
  }
  found.reason.clear();
  found.device = chosen;
  found.library = library;
  found.library_path = path;
}

const Probe& probe() {
  static const Probe* const found = [] {
    auto* result = new Probe();
    try {
      with_autorelease_pool([&] { find_device(*result); });
    } catch (const std::exception& error) {
      result->device = nil;
      result->library = nil;
      result->reason = std::string("probing for a Metal GPU failed: ") + error.what();
    }
    return result;
  }();
  return *found;
}

}  // namespace

bool available() { return probe().device != nil; }

DevicePtr create_device() {
  const Probe& found = probe();
  if (found.device == nil) runtime_error(found.reason);
  DevicePtr out;
  with_autorelease_pool([&] {
    id<MTLDevice> device = found.device;
    DeviceCapabilities caps;
    caps.simd_width = 32;
    caps.max_threads_per_threadgroup = static_cast<uint32_t>(device.maxThreadsPerThreadgroup.width);
    caps.max_threadgroup_memory = device.maxThreadgroupMemoryLength;
    caps.max_buffer_length = device.maxBufferLength;
    // Views wrap whole pages around any pointer (buffer.mm), so host memory
    // needs only the alignment the kernels' widest loads need (float4 /
    // uint4), as on the simulator.
    caps.wrap_alignment = 16;
    caps.recommended_working_set = device.recommendedMaxWorkingSetSize;
    // probe() admitted only Apple7 + Metal3 devices.
    caps.simdgroup_reduction = true;
    caps.simdgroup_matrix = true;
    caps.bfloat = true;  // MSL 3.1 on macOS 14, the deployment target
    caps.tensor_ops = [device supportsFamily:kFamilyMetal4] && [device supportsFamily:MTLGPUFamilyApple9];
    out = std::make_shared<MetalDevice>(device, found.library, found.library_path, to_string(device.name),
                                        to_string(device.architecture.name), families_of(device), caps);
  });
  return out;
}

MetalDevice::MetalDevice(id<MTLDevice> device, id<MTLLibrary> library, std::string library_path, std::string name,
                         std::string architecture, std::string families, DeviceCapabilities capabilities)
    : Device(Backend::metal, std::move(name), std::move(architecture), capabilities),
      device_(device),
      queue_([device newCommandQueue]),
      library_(library),
      library_path_(std::move(library_path)),
      families_(std::move(families)) {
  if (queue_ == nil) runtime_error("Metal: cannot create a command queue on ", this->name());
}

MetalDevice::~MetalDevice() = default;

std::string MetalDevice::details() const {
  return "GPU families: " + families_ + "; kernel library: " + library_path_;
}

}  // namespace qmetal::metal
