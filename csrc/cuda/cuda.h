// The CUDA backend: an NVIDIA GPU running the CUDA translation of the same
// shaders/*.metal (python/qmetal/sim/_cuda.py), built when CMake finds nvcc.
// Plain C++ over CUDA's runtime API, so the ops layer can call it. Like the
// Metal backend it makes no decisions: it executes the planner's
// DispatchPlans as they are.
//
// Memory: a qmetal Buffer is host memory (NumPy's); the GPU works on a
// device copy of each bound buffer (cudaMalloc, never managed memory), kept
// with the buffer and reused. execute() copies every bound buffer in, runs
// the plans in order on one stream (each sees what the previous wrote, as
// Metal's barrier between dispatches gives), and copies every buffer a plan
// may write back out; transfers() counts those copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qmetal/device.h"
#include "qmetal/plan.h"

namespace qmetal::cuda {

// Whether a CUDA GPU qmetal can use is here (compute capability 7.0 or
// later: warp-synchronous shuffles); found once and cached.
bool available();

// That GPU (device 0, or QMETAL_CUDA_DEVICE) as a qmetal Device; when there
// is none, RuntimeError saying why (no driver, no GPU, too old a GPU).
DevicePtr create_device();

// Kernels compiled at run time (qmetal.sim._cuda.compile_cubin): a cubin
// loaded with cudaLibraryLoadFromFile; its kernels are found by host name.
class Module {
 public:
  explicit Module(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  // The kernel's launch handle, or nullptr if the module has none of that name.
  const void* find(const std::string& host_name) const;
  const std::string& path() const { return path_; }

 private:
  struct State;
  std::string path_;
  std::unique_ptr<State> state_;
};

// Runs plans and waits, as the simulator does. Kernels are looked up in
// `module` first (when given), then among the built-in ones.
void execute(const Device& device, const std::vector<DispatchPlan>& plans, const Module* module = nullptr);

// For benchmarks: copies in once, runs the plans `warmup` times, then
// `repeat` times each timed with CUDA events (milliseconds per run), with
// `flush_bytes` of device memory overwritten before every timed run so that
// no run starts with the previous one's data in L2 (0: no flush); copies
// out once at the end.
std::vector<double> time_plans(const Device& device, const std::vector<DispatchPlan>& plans, const Module* module,
                               int warmup, int repeat, size_t flush_bytes);

// Device-to-device cudaMemcpy of `bytes`, timed with events: the median of
// `repeat` copies, in GB/s counting bytes read and written (2 * bytes).
double copy_bandwidth(const Device& device, size_t bytes, int repeat);

// While capturing, execute() also records the plans it runs, so that a
// benchmark can time exactly what an op launched (time_plans) without the
// op's copies; captured() returns them and set_capture(false) clears them.
void set_capture(bool on);
std::vector<DispatchPlan> captured();

// Copies between host and device memory so far, and launches.
struct Transfers {
  uint64_t to_device = 0, to_device_bytes = 0;
  uint64_t to_host = 0, to_host_bytes = 0;
  uint64_t launches = 0;
};
Transfers transfers();
void reset_transfers();

// The properties benchmarks report: name, compute capability, SMs, L2 bytes, memory bytes.
struct Properties {
  std::string name;
  int major = 0, minor = 0, multiprocessors = 0;
  size_t l2_bytes = 0, memory_bytes = 0;
};
Properties properties(const Device& device);

}  // namespace qmetal::cuda
