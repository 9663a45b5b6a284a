#include "qmetal/device.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "qmetal/buffer.h"
#include "qmetal/error.h"

namespace qmetal {

uint32_t estimated_apple_gpu_cores(std::string_view architecture) {
  if (architecture.rfind("applegpu_", 0) != 0 || architecture.empty()) return 0;
  switch (architecture.back()) {
    case 'p': return 5;   // iPhone / iPad: 4-6 cores
    case 'g': return 10;  // M1-M4: 7-10
    case 's': return 18;  // Pro: 14-20
    case 'c': return 36;  // Max: 24-40
    case 'd': return 72;  // Ultra: 48-80
    default: return 0;
  }
}

std::string_view backend_name(Backend backend) {
  return backend == Backend::metal ? "metal" : backend == Backend::cuda ? "cuda" : "sim";
}

Backend backend_from_name(std::string_view name, const char* what) {
  if (name == "sim") return Backend::sim;
  if (name == "metal") return Backend::metal;
  if (name == "cuda") return Backend::cuda;
  value_error(what, ": expected 'sim', 'metal' or 'cuda', got '", std::string(name), "'");
}

namespace {

const char* host_architecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__) || defined(__arm64__)
  return "arm64";
#else
  return "unknown";
#endif
}

uint64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  return pages > 0 ? static_cast<uint64_t>(pages) * page_size() : 0;
}

// The simulator models an Apple7+ GPU (simdgroup matrices, bfloat) with the
// limits Metal guarantees on every such device.
DevicePtr make_sim_device(bool tensor_ops, uint32_t max_threads_per_threadgroup = 1024) {
  DeviceCapabilities caps;
  caps.tensor_ops = tensor_ops;
  caps.max_threads_per_threadgroup = max_threads_per_threadgroup;
  caps.max_buffer_length = size_t(1) << 40;
  // 16 bytes: the widest vector load a kernel makes (float4 / uint4).
  caps.wrap_alignment = kKernelLoadAlignment;
  caps.recommended_working_set = physical_memory();
  const unsigned threads = std::thread::hardware_concurrency();
  std::string name = "qmetal simulator (" + std::string(host_architecture()) + ", " +
                     std::to_string(threads == 0 ? 1 : threads) + " threads" +
                     (tensor_ops ? ", Metal 4 tensor operations" : "") + ")";
  return std::make_shared<Device>(Backend::sim, std::move(name),
                                  std::string("sim-") + host_architecture(), caps);
}

}  // namespace

namespace {

struct Registry {
  std::mutex mutex;
  BackendFactory metal, cuda;
  DevicePtr sim_device, metal_device, cuda_device;
  BackendFactory& factory(Backend backend) { return backend == Backend::cuda ? cuda : metal; }
  DevicePtr& device(Backend backend) { return backend == Backend::cuda ? cuda_device : metal_device; }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_backend(Backend backend, BackendFactory factory) {
  if (backend == Backend::sim) value_error("backend: only 'metal' and 'cuda' register themselves; the simulator is built in");
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().factory(backend) = factory;
}

bool backend_available(Backend backend) {
  if (backend == Backend::sim) return true;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const BackendFactory& factory = r.factory(backend);
  return factory.available != nullptr && factory.available();
}

namespace {

// Why a registered backend is not usable: its create() says (see BackendFactory).
std::string unavailable_reason(const BackendFactory& factory) {
  try {
    factory.create();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "its device reports itself unavailable";
}

}  // namespace

DevicePtr get_device(Backend backend) {
  Registry& r = registry();
  if (backend == Backend::sim) {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (!r.sim_device) {
      const char* tensor_ops = std::getenv("QMETAL_SIM_TENSOR_OPS");
      r.sim_device = make_sim_device(tensor_ops != nullptr && std::string(tensor_ops) == "1");
    }
    return r.sim_device;
  }
  if (!backend_available(backend)) {
    if (r.factory(backend).available == nullptr) {
      value_error("backend: '", backend_name(backend), "' is not available in this build (available: 'sim')");
    }
    value_error("backend: '", backend_name(backend), "' is not available on this machine: ",
                unavailable_reason(r.factory(backend)), " (available: 'sim')");
  }
  std::lock_guard<std::mutex> lock(r.mutex);
  DevicePtr& device = r.device(backend);
  if (!device) device = r.factory(backend).create();
  return device;
}

std::string backend_status(Backend backend) {
  Registry& r = registry();
  if (backend == Backend::metal && r.metal.available == nullptr) {
    return "not part of this build (the Metal backend is built on macOS, where QMETAL_BUILD_METAL=OFF leaves it out)";
  }
  if (backend == Backend::cuda && r.cuda.available == nullptr) {
    return "not part of this build (the CUDA backend is built where CMake finds a CUDA toolkit, nvcc; "
           "QMETAL_BUILD_CUDA=OFF leaves it out)";
  }
  if (!backend_available(backend)) return "not usable: " + unavailable_reason(r.factory(backend));
  const DevicePtr device = get_device(backend);
  const std::string details = device->details();
  return "available: " + device->name() + (details.empty() ? "" : " (" + details + ")");
}

DevicePtr make_simulator_device(bool tensor_ops, uint32_t max_threads_per_threadgroup) {
  if (max_threads_per_threadgroup < 32 || max_threads_per_threadgroup > 1024 || max_threads_per_threadgroup % 32 != 0) {
    value_error("max_threads_per_threadgroup: expected a multiple of 32 from 32 to 1024, got ",
                max_threads_per_threadgroup);
  }
  return make_sim_device(tensor_ops, max_threads_per_threadgroup);
}

uint32_t Device::max_threads_per_threadgroup(const std::string&) const {
  return capabilities_.max_threads_per_threadgroup;
}

DevicePtr default_device() {
  if (const char* env = std::getenv("QMETAL_BACKEND"); env != nullptr && *env != '\0') {
    return get_device(backend_from_name(env, "QMETAL_BACKEND"));
  }
  if (backend_available(Backend::metal)) return get_device(Backend::metal);
  return get_device(Backend::sim);
}

}  // namespace qmetal
