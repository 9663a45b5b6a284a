// What a backend can do. The planner reads these capabilities to pick kernels
// and geometry; nothing else decides routing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "qmetal/buffer.h"

namespace qmetal {

enum class Backend : uint8_t { sim, metal, cuda };

std::string_view backend_name(Backend backend);
// Throws ValueError naming `what` for anything but "sim", "metal" or "cuda".
Backend backend_from_name(std::string_view name, const char* what = "backend");

struct DeviceCapabilities {
  uint32_t simd_width = 32;
  uint32_t max_threads_per_threadgroup = 1024;
  size_t max_threadgroup_memory = 32 * 1024;
  size_t max_buffer_length = 0;
  // Host memory at this alignment is wrapped without a copy.
  size_t wrap_alignment = kKernelLoadAlignment;
  uint64_t recommended_working_set = 0;
  bool simdgroup_reduction = true;
  bool simdgroup_matrix = true;
  bool bfloat = true;
  bool tensor_ops = false;
  // Shader cores (Apple GPUs: estimated from the architecture name, see
  // estimated_apple_gpu_cores) or streaming multiprocessors (CUDA); 0 when
  // unknown, as on the simulator. Planners size split-K grids from it.
  uint32_t gpu_cores = 0;
};

// Apple GPUs report no core count through Metal. The architecture name's
// last letter gives the class (MLX reads it the same way: phone, base, Pro,
// Max, Ultra), whose core counts span a range; this is its middle.
uint32_t estimated_apple_gpu_cores(std::string_view architecture);

class Device {
 public:
  Device(Backend backend, std::string name, std::string architecture,
         DeviceCapabilities capabilities)
      : backend_(backend),
        name_(std::move(name)),
        architecture_(std::move(architecture)),
        capabilities_(capabilities) {}
  virtual ~Device() = default;

  Backend backend() const { return backend_; }
  const std::string& name() const { return name_; }
  const std::string& architecture() const { return architecture_; }
  const DeviceCapabilities& capabilities() const { return capabilities_; }
  // For people (qmetal info, selftest): what the backend checked about this
  // device, e.g. the Metal GPU families and the kernel library's path.
  virtual std::string details() const { return {}; }
  // The most threads a threadgroup of `kernel` can have here: the device's
  // limit, or less where the kernel's registers lower it (Metal: the
  // pipeline's maxTotalThreadsPerThreadgroup; CUDA: maxThreadsPerBlock).
  // Planners that size threadgroups to the work (the mat-vecs' K slices) ask.
  virtual uint32_t max_threads_per_threadgroup(const std::string& kernel) const;

 private:
  Backend backend_;
  std::string name_;
  std::string architecture_;
  DeviceCapabilities capabilities_;
};

using DevicePtr = std::shared_ptr<Device>;

// Backends other than the simulator register here when they are part of
// the build (qmetal::initialize() in the ops library does it for Metal and
// CUDA).
// When available() is false, create() throws an error that says why (no GPU,
// a GPU without the families the kernels need, a missing or stale kernel
// library); backend_status() reports that message.
struct BackendFactory {
  bool (*available)() = nullptr;   // a usable device exists on this machine
  DevicePtr (*create)() = nullptr;
};
void register_backend(Backend backend, BackendFactory factory);

// Backends compiled into this build and usable here.
bool backend_available(Backend backend);

// One line for people: the device a backend uses ("available: ..."), or why
// it is not used here ("not part of this build ...", "not usable: ...").
std::string backend_status(Backend backend);

// The device of a backend (created once, then shared). Throws ValueError when
// the backend is not part of this build or has no usable device.
DevicePtr get_device(Backend backend);

// QMETAL_BACKEND if set, else Metal where a Metal GPU exists, else the
// simulator.
DevicePtr default_device();

// A simulator device of its own (get_device shares another) that reports
// Metal 4 tensor operations when `tensor_ops` is set, so the planners route
// as they would on an M5-class GPU, and `max_threads_per_threadgroup` as its
// limit for every kernel (a GPU's can be lower for kernels with many
// registers). QMETAL_SIM_TENSOR_OPS=1 makes the shared simulator device
// report tensor operations too.
DevicePtr make_simulator_device(bool tensor_ops, uint32_t max_threads_per_threadgroup = 1024);

}  // namespace qmetal
