// The precompiled kernel library (qmetal.metallib, built from shaders/ at
// install time): found, loaded and checked when the device is created, and
// its pipelines, cached by kernel name.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

// CMake names a kernel of the library after a hash of the shader sources
// (CMakeLists.txt, qmetal_library_id.metal): a library from another build
// lacks it.
#ifndef QMETAL_LIBRARY_ID
#error "QMETAL_LIBRARY_ID is set by CMakeLists.txt (the kernel that names this build's qmetal.metallib)"
#endif

namespace qmetal::metal {

namespace {

constexpr const char* kMetallibName = "qmetal.metallib";
constexpr const char* kTensorMetallibName = "qmetal_tensor.metallib";

std::string describe(NSError* error) {
  const char* text = error != nil ? error.localizedDescription.UTF8String : nullptr;
  return text != nullptr ? std::string(text) : std::string("no reason given");
}

// The absolute path, so that a chdir after the first lookup changes nothing
// (dladdr can report a path relative to the working directory).
std::string absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

}  // namespace

std::string metallib_path() {
  if (const char* path = std::getenv("QMETAL_METALLIB"); path != nullptr && *path != '\0') return absolute(path);
  Dl_info info;
  if (dladdr(reinterpret_cast<const void*>(&metallib_path), &info) != 0 && info.dli_fname != nullptr) {
    const std::string binary = absolute(info.dli_fname);
    const size_t slash = binary.rfind('/');
    if (slash != std::string::npos) return binary.substr(0, slash + 1) + kMetallibName;
  }
  return absolute(kMetallibName);
}

std::string tensor_metallib_path() {
  if (const char* path = std::getenv("QMETAL_TENSOR_METALLIB"); path != nullptr && *path != '\0') {
    return absolute(path);
  }
  const std::string main = metallib_path();
  const size_t slash = main.rfind('/');
  return (slash == std::string::npos ? std::string() : main.substr(0, slash + 1)) + kTensorMetallibName;
}

id<MTLLibrary> load_library(id<MTLDevice> device, const std::string& path, std::string& problem) {
  const char* fix = "reinstall qmetal, or set QMETAL_METALLIB to the qmetal.metallib of this build";
  if (access(path.c_str(), R_OK) != 0) {
    problem = "its kernel library " + path + " cannot be read (" + std::strerror(errno) + "): " + fix;
    return nil;
  }
  NSString* text = [NSString stringWithUTF8String:path.c_str()];
  if (text == nil) {
    problem = "its kernel library path " + path + " is not UTF-8: set QMETAL_METALLIB";
    return nil;
  }
  NSError* error = nil;
  id<MTLLibrary> library = [device newLibraryWithURL:[NSURL fileURLWithPath:text] error:&error];
  if (library == nil) {
    problem = "its kernel library " + path + " does not load: " + describe(error) + " (" + fix + ")";
    return nil;
  }
  NSString* marker = [NSString stringWithUTF8String:QMETAL_LIBRARY_ID];
  if (marker == nil || [library newFunctionWithName:marker] == nil) {
    problem = "its kernel library " + path + " is from another qmetal build (it lacks " + QMETAL_LIBRARY_ID +
              ", so its kernels may not match this build's): " + fix;
    return nil;
  }
  return library;
}

id<MTLComputePipelineState> MetalDevice::pipeline(const std::string& kernel, uint64_t threads,
                                                  size_t threadgroup_memory) const {
  std::lock_guard<std::mutex> lock(mutex_);
  id<MTLComputePipelineState> state = pipelines_[kernel];
  if (state == nil) {
    NSString* name = [NSString stringWithUTF8String:kernel.c_str()];
    id<MTLFunction> function = name != nil ? [library_ newFunctionWithName:name] : nil;
    // The tensor-op kernels live in their own library (MSL 4.0).
    if (function == nil && name != nil && tensor_ops_.library != nil) {
      function = [tensor_ops_.library newFunctionWithName:name];
    }
    if (function == nil) {
      runtime_error("Metal: the kernel library ", library_path_, " has no kernel '", kernel,
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
  if (state.staticThreadgroupMemoryLength + threadgroup_memory > device_.maxThreadgroupMemoryLength) {
    runtime_error("Metal: kernel '", kernel, "' declares ", state.staticThreadgroupMemoryLength,
                  " bytes of threadgroup memory and the plan adds ", threadgroup_memory,
                  "; this GPU allows ", device_.maxThreadgroupMemoryLength);
  }
  return state;
}

uint32_t MetalDevice::max_threads_per_threadgroup(const std::string& kernel) const {
  return uint32_t(pipeline(kernel, 0, 0).maxTotalThreadsPerThreadgroup);
}

}  // namespace qmetal::metal
