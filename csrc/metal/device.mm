// MTLDevice as a qmetal Device: which GPU (if any) qmetal uses, checked once
// per process, and the name, architecture, limits and capabilities the
// planner routes on.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

// MTLGPUFamilyMetal4 (SDK 26 and later; older SDKs do not name it). A GPU
// on an older macOS answers NO, so no OS-version check is needed: macOS 26
// reports version 16 to a process built with an older SDK.
constexpr MTLGPUFamily kFamilyMetal4 = static_cast<MTLGPUFamily>(5002);
// MTLGPUFamilyApple10: M5 and A19, the first GPUs whose cores have the
// matrix units Metal 4's tensor operations run on (older ones run them on
// the shader cores).
constexpr MTLGPUFamily kFamilyApple10 = static_cast<MTLGPUFamily>(1010);
// The probe kernel (shaders/metal4/tensor_probe.metal): C = A B, 16 x 16.
constexpr NSUInteger kProbeSide = 16;
constexpr NSUInteger kProbeThreads = 128;  // execution_simdgroups<4>

std::string to_string(NSString* text) {
  const char* utf8 = text != nil ? text.UTF8String : nullptr;
  return utf8 != nullptr ? std::string(utf8) : std::string();
}

std::string families_of(id<MTLDevice> device) {
  const std::pair<MTLGPUFamily, const char*> known[] = {
      {MTLGPUFamilyApple7, "apple7"}, {MTLGPUFamilyApple8, "apple8"}, {MTLGPUFamilyApple9, "apple9"},
      {kFamilyApple10, "apple10"}, {MTLGPUFamilyMetal3, "metal3"}, {kFamilyMetal4, "metal4"}};
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

std::string describe(NSError* error) {
  const char* text = error != nil ? error.localizedDescription.UTF8String : nullptr;
  return text != nullptr ? std::string(text) : std::string("no reason given");
}

// Runs the probe kernel once and checks its result exactly (small integers:
// every product and sum is exact in half and float).
bool run_probe(id<MTLDevice> device, id<MTLComputePipelineState> state, std::string& problem) {
  const NSUInteger count = kProbeSide * kProbeSide;
  id<MTLBuffer> a = [device newBufferWithLength:count * sizeof(_Float16) options:MTLResourceStorageModeShared];
  id<MTLBuffer> b = [device newBufferWithLength:count * sizeof(_Float16) options:MTLResourceStorageModeShared];
  id<MTLBuffer> c = [device newBufferWithLength:count * sizeof(float) options:MTLResourceStorageModeShared];
  id<MTLCommandQueue> queue = [device newCommandQueue];
  id<MTLCommandBuffer> commands = queue != nil ? [queue commandBuffer] : nil;
  id<MTLComputeCommandEncoder> encoder = commands != nil ? [commands computeCommandEncoder] : nil;
  if (a == nil || b == nil || c == nil || encoder == nil) {
    problem = "could not allocate the probe's buffers or command buffer";
    return false;
  }
  auto* pa = static_cast<_Float16*>([a contents]);
  auto* pb = static_cast<_Float16*>([b contents]);
  auto* pc = static_cast<float*>([c contents]);
  const int kValues = 5;  // entries in -2..2
  for (NSUInteger i = 0; i < count; ++i) {
    pa[i] = _Float16(int(i * 7 % kValues) - 2);
    pb[i] = _Float16(int(i * 3 % kValues) - 2);
    pc[i] = -1.0f;
  }
  [encoder setComputePipelineState:state];
  [encoder setBuffer:a offset:0 atIndex:0];
  [encoder setBuffer:b offset:0 atIndex:1];
  [encoder setBuffer:c offset:0 atIndex:2];
  [encoder dispatchThreadgroups:MTLSizeMake(1, 1, 1) threadsPerThreadgroup:MTLSizeMake(kProbeThreads, 1, 1)];
  [encoder endEncoding];
  [commands commit];
  [commands waitUntilCompleted];
  if (commands.status != MTLCommandBufferStatusCompleted) {
    problem = "the probe kernel failed on the GPU: " + describe(commands.error);
    return false;
  }
  for (NSUInteger m = 0; m < kProbeSide; ++m) {
    for (NSUInteger n = 0; n < kProbeSide; ++n) {
      float expected = 0.0f;
      for (NSUInteger k = 0; k < kProbeSide; ++k) expected += float(pa[m * kProbeSide + k]) * float(pb[k * kProbeSide + n]);
      if (pc[m * kProbeSide + n] != expected) {
        problem = "the probe kernel computed a wrong product (C[" + std::to_string(m) + "][" + std::to_string(n) +
                  "] = " + std::to_string(pc[m * kProbeSide + n]) + ", expected " + std::to_string(expected) + ")";
        return false;
      }
    }
  }
  return true;
}

// Whether qmetal routes prefill to the tensor-op kernels on `device`, decided
// once: the Metal4 family, M5 / A19-class hardware (Apple10: before it the
// ops run on the shader cores, where llama.cpp measured no gain on M4 and a
// loss on M2 Ultra), qmetal_tensor.metallib present and loading, and its
// probe kernel building and computing right. QMETAL_TENSOR_OPS=0 turns them
// off; =1 skips the hardware check (for measurements on older GPUs).
TensorOps probe_tensor_ops(id<MTLDevice> device) {
  TensorOps out;
  const char* env = std::getenv("QMETAL_TENSOR_OPS");
  const std::string setting = env != nullptr ? env : "";
  if (setting == "0") {
    out.status = "off (QMETAL_TENSOR_OPS=0)";
    return out;
  }
  if (![device supportsFamily:kFamilyMetal4]) {
    out.status = "off: the GPU does not report the Metal4 family (it needs macOS 26 or later)";
    return out;
  }
  if (setting != "1" && ![device supportsFamily:kFamilyApple10]) {
    out.status = "off: not an M5 / A19-class GPU (Apple10), whose matrix units the tensor operations need to "
                 "pay off (QMETAL_TENSOR_OPS=1 uses them anyway)";
    return out;
  }
  const std::string path = tensor_metallib_path();
  if (access(path.c_str(), R_OK) != 0) {
    out.status = "off: no tensor-op library " + path + " (" + std::strerror(errno) +
                 "; it is built only with an SDK that supports Metal 4, Xcode 26.2 or later)";
    return out;
  }
  NSString* text = [NSString stringWithUTF8String:path.c_str()];
  NSError* error = nil;
  id<MTLLibrary> library = text != nil ? [device newLibraryWithURL:[NSURL fileURLWithPath:text] error:&error] : nil;
  if (library == nil) {
    out.status = "off: the tensor-op library " + path + " does not load: " + describe(error);
    return out;
  }
  NSString* marker = [NSString stringWithUTF8String:QMETAL_LIBRARY_ID];
  if (marker == nil || [library newFunctionWithName:marker] == nil) {
    out.status = "off: the tensor-op library " + path + " is from another qmetal build (it lacks " +
                 QMETAL_LIBRARY_ID + "): reinstall qmetal";
    return out;
  }
  id<MTLFunction> function = [library newFunctionWithName:@"qmetal_tensor_probe"];
  id<MTLComputePipelineState> state =
      function != nil ? [device newComputePipelineStateWithFunction:function error:&error] : nil;
  // llama.cpp also treats a pipeline that reports no threads as failed.
  if (state == nil || state.maxTotalThreadsPerThreadgroup < kProbeThreads || state.threadExecutionWidth == 0) {
    out.status = "off: the probe kernel's pipeline does not build: " +
                 (function == nil ? std::string("the library has no qmetal_tensor_probe") : describe(error));
    return out;
  }
  std::string problem;
  if (!run_probe(device, state, problem)) {
    out.status = "off: " + problem;
    return out;
  }
  out.library = library;
  out.status = std::string("on (") + path + (setting == "1" ? ", QMETAL_TENSOR_OPS=1" : "") + ")";
  return out;
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
    caps.wrap_alignment = kKernelLoadAlignment;
    caps.recommended_working_set = device.recommendedMaxWorkingSetSize;
    // probe() admitted only Apple7 + Metal3 devices.
    caps.simdgroup_reduction = true;
    caps.simdgroup_matrix = true;
    caps.bfloat = true;  // MSL 3.1 on macOS 14, the deployment target
    TensorOps tensor_ops = probe_tensor_ops(device);
    caps.tensor_ops = tensor_ops.library != nil;
    caps.gpu_cores = estimated_apple_gpu_cores(to_string(device.architecture.name));
    out = std::make_shared<MetalDevice>(device, found.library, found.library_path, to_string(device.name),
                                        to_string(device.architecture.name), families_of(device), caps,
                                        tensor_ops);
  });
  return out;
}

MetalDevice::MetalDevice(id<MTLDevice> device, id<MTLLibrary> library, std::string library_path, std::string name,
                         std::string architecture, std::string families, DeviceCapabilities capabilities,
                         TensorOps tensor_ops)
    : Device(Backend::metal, std::move(name), std::move(architecture), capabilities),
      device_(device),
      queue_([device newCommandQueue]),
      library_(library),
      library_path_(std::move(library_path)),
      families_(std::move(families)),
      tensor_ops_(std::move(tensor_ops)) {
  if (queue_ == nil) runtime_error("Metal: cannot create a command queue on ", this->name());
}

MetalDevice::~MetalDevice() = default;

std::string MetalDevice::details() const {
  return "GPU families: " + families_ + "; kernel library: " + library_path_ + "; Metal 4 tensor ops: " +
         tensor_ops_.status;
}

}  // namespace qmetal::metal
