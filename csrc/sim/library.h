// Kernels the simulator can run, and running them: the built-in library
// (every shaders/*.metal, compiled at build time) and libraries compiled from
// users' .metal files at run time (qmetal.sim.compile). execute() runs a
// DispatchPlan exactly as the Metal backend encodes it; it is how every op
// runs on a machine without Metal.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "executor.h"
#include "faults.h"
#include "qmetal/plan.h"
#include "qmetal_sim/abi.h"

namespace qmetal::sim {

// Metal's argument table has 31 buffer slots per stage.
inline constexpr uint32_t kMaxBufferBindings = 31;

struct FunctionConstant {
  uint32_t index = 0;
  bool is_float = false;  // value in `real`, else in `integer`
  int64_t integer = 0;
  double real = 0.0;
};

struct KernelLaunch {
  std::array<void*, kMaxBufferBindings> buffers{};  // [[buffer(i)]], nullptr when unbound
  // Bytes bound at each slot (checked against the struct a `constant T&`
  // needs; 0: unknown) and whether the memory is read-only (refused for a
  // parameter the kernel may write through).
  std::array<size_t, kMaxBufferBindings> buffer_bytes{};
  std::array<bool, kMaxBufferBindings> readonly{};
  std::vector<uint32_t> threadgroup_memory;         // bytes of each [[threadgroup(i)]]
  Dim3 grid;                                        // threadgroups
  Dim3 threadgroup;                                 // threads per threadgroup
  Dim3 threads{0, 0, 0};                            // non-uniform grid in threads; zero: uniform
  Schedule schedule = Schedule::forward;
  uint64_t seed = 0;
  unsigned workers = 0;
  std::vector<FunctionConstant> function_constants;
  bool race_check = false;  // needs a library built for it (race_instrumented())
  double timeout_seconds = 0;  // 0: none
  // Run on guarded copies of the bound buffers (each ends at a guard page):
  // an access past a buffer is reported, never lands in neighbouring memory.
  bool guard_buffers = false;
};

// A launch's buffers, run on guarded copies (KernelLaunch::guard_buffers).
class GuardedCopies {
 public:
  GuardedCopies(const abi::Kernel& kernel, const KernelLaunch& launch, std::array<void*, kMaxBufferBindings>& bound);
  ~GuardedCopies();
  // Copies results back and reports an access out of bounds (SimError).
  void finish(const std::string& who);

 private:
  struct Copy {
    uint32_t index = 0;
    size_t bytes = 0;
    bool writable = false;
    char* data = nullptr;
    faults::GuardedBlock block;
    int watch = -1;
  };
  const KernelLaunch& launch_;
  std::vector<Copy> copies_;
};

class Library {
 public:
  // Loads a library compiled from .metal by the generator (a shared object).
  static std::shared_ptr<Library> open(const std::string& path);
  // The kernels of shaders/*.metal.
  static const Library& builtin();

  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  const abi::Kernel* find(std::string_view name) const;
  // Throws ValueError naming the missing kernel.
  const abi::Kernel& kernel(std::string_view name) const;
  std::vector<std::string> kernel_names() const;
  const std::string& path() const { return path_; }
  // Built for race checks: its kernels report their loads and stores.
  bool race_instrumented() const { return race_instrumented_; }

  // Checks the launch against the kernel's bindings and the device limits
  // (ValueError before anything runs), then runs every thread. Divergence and
  // other kernel faults raise SimError.
  RunStats launch(std::string_view name, const KernelLaunch& launch) const;

 private:
  Library() = default;
  void add(const abi::Library* library, const std::string& origin);

  void* handle_ = nullptr;
  bool race_instrumented_ = false;
  std::string path_;
  std::vector<const abi::Kernel*> kernels_;
};

// Runs a plan through `library` (the built-in kernels by default).
void execute(const DispatchPlan& plan, const Library& library = Library::builtin(),
             Schedule schedule = Schedule::forward, uint64_t seed = 0, bool race_check = false);

// The library ops run their plans with (the built-in kernels unless a test
// or a kernel developer installs another, e.g. a race-checked build of
// modified shaders), and whether those runs check for races.
struct OpsLibrary {
  std::shared_ptr<const Library> library;  // null: the built-in kernels
  bool race_check = false;
};
void set_ops_library(OpsLibrary ops);
OpsLibrary ops_library();

// The runtime table kernels call into.
const abi::Runtime& runtime();

}  // namespace qmetal::sim
