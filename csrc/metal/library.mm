// The precompiled kernel library (qmetal.metallib, built from shaders/ at
// install time) and its pipelines, cached by kernel name.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <dlfcn.h>

#include <cstdlib>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

constexpr const char* kMetallibName = "qmetal.metallib";

std::string describe(NSError* error) {
  return error != nil ? std::string(error.localizedDescription.UTF8String) : std::string("no reason given");
}

}  // namespace

std::string metallib_path() {
  if (const char* path = std::getenv("QMETAL_METALLIB"); path != nullptr && *path != '\0') return path;
  Dl_info info;
  if (dladdr(reinterpret_cast<const void*>(&metallib_path), &info) != 0 && info.dli_fname != nullptr) {
    std::string binary = info.dli_fname;
    const size_t slash = binary.rfind('/');
    if (slash != std::string::npos) return binary.substr(0, slash + 1) + kMetallibName;
  }
  return kMetallibName;
}

id<MTLLibrary> MetalDevice::library() {
  if (library_ != nil) return library_;
  const std::string path = metallib_path();
  NSError* error = nil;
  NSURL* url = [NSURL fileURLWithPath:[NSString stringWithUTF8String:path.c_str()]];
  library_ = [device_ newLibraryWithURL:url error:&error];
  if (library_ == nil) {
    runtime_error("Metal: cannot load the kernel library ", path, ": ", describe(error),
                  " (reinstall qmetal, or set QMETAL_METALLIB)");
  }
  return library_;
}

id<MTLComputePipelineState> MetalDevice::pipeline(const std::string& kernel, uint64_t threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  id<MTLComputePipelineState> state = pipelines_[kernel];
  if (state == nil) {
    id<MTLFunction> function = [library() newFunctionWithName:[NSString stringWithUTF8String:kernel.c_str()]];
    if (function == nil) {
      runtime_error("Metal: the kernel library ", metallib_path(), " has no kernel '", kernel,
                    "': it does not match this qmetal build (reinstall qmetal)");
    }
    NSError* error = nil;
    state = [device_ newComputePipelineStateWithFunction:function error:&error];
    if (state == nil) runtime_error("Metal: cannot build the pipeline of '", kernel, "': ", describe(error));
    pipelines_[kernel] = state;
  }
  if (state.maxTotalThreadsPerThreadgroup < threads) {
    runtime_error("Metal: kernel '", kernel, "' runs at most ", state.maxTotalThreadsPerThreadgroup,
                  " threads per threadgroup on this GPU; the plan asks for ", threads);
  }
  return state;
}

}  // namespace qmetal::metal
