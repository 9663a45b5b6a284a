// Runs a kernel's threads the way a GPU does, on the CPU: every simulated
// thread is a fiber; threadgroups run in parallel on worker threads; inside a
// threadgroup, fibers run until they block at a barrier or a simdgroup
// collective. Kernels that would hang or be undefined on a GPU (divergent
// barriers or collectives, a barrier some threads skipped) raise SimError
// naming both threads and both source lines, never hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qmetal/error.h"
#include "qmetal/plan.h"
#include "qmetal_sim/abi.h"

namespace qmetal::sim {

inline constexpr uint32_t kSimdWidth = 32;

using ThreadIds = abi::ThreadIds;
using Uint3 = abi::Uint3;

enum class Schedule { forward, reverse, random };

// Each simulated thread's stack: QMETAL_SIM_STACK_KB (default 128) KB.
size_t default_stack_bytes();

struct LaunchConfig {
  Dim3 grid;                                 // threadgroups
  Dim3 threadgroup;                          // threads per threadgroup
  // Non-uniform grids (dispatchThreads): the total threads per dimension;
  // threadgroups on the far edges are then partial. Zero: uniform.
  Dim3 threads{0, 0, 0};
  std::vector<uint32_t> threadgroup_memory;  // bytes of each [[threadgroup(i)]] argument
  Schedule schedule = Schedule::forward;
  uint64_t seed = 0;                         // for Schedule::random
  size_t stack_bytes = default_stack_bytes(); // per simulated thread
  unsigned workers = 0;                      // OS threads; 0: one per core
  const void* context = nullptr;             // the caller's, see launch_context()
  // Report data races: two threads of a threadgroup touching the same byte
  // (one of them writing) with no barrier between them. Needs a kernel
  // library built for it (its loads and stores call memory_access).
  bool race_check = false;
  // Stop the run with an error naming the running threadgroups after this
  // many seconds (0: never), as a GPU driver stops a kernel that hangs.
  double timeout_seconds = 0;
};

// Called about every 50 ms while a run is in progress: true stops it with
// ErrorKind::interrupted (the Python module checks for Ctrl-C here).
using InterruptPoll = bool (*)();
void set_interrupt_poll(InterruptPoll poll);


// One simulated thread's body. threadgroup_args[i] is the threadgroup's
// [[threadgroup(i)]] memory.
using ThreadBody = std::function<void(const ThreadIds& ids, void* const* threadgroup_args)>;

// Divergence and other kernel faults; a RuntimeError in Python.
class SimError : public Error {
 public:
  explicit SimError(const std::string& message) : Error(ErrorKind::runtime, message) {}
};

// What a run did, for benchmarks.
struct RunStats {
  uint64_t threads = 0;
  uint64_t switches = 0;  // scheduler-to-fiber switches (each is matched by one back)
};

// Runs every thread of the grid; returns when all are done. Throws SimError
// (or what a thread threw) after stopping every threadgroup.
RunStats run(const ThreadBody& body, const LaunchConfig& config);

// A source location and operation, captured at the call site by the shim's
// default arguments.
using Site = abi::Site;
bool same_site(const Site& a, const Site& b);
std::string site_str(const Site& site);

// --- called from kernel code, only inside run() ------------------------------

// threadgroup_barrier: every thread of the threadgroup must reach the same one.
void barrier(Site site);

// The one primitive behind every simdgroup collective: each live lane gives
// `bytes` of its value; once every live lane of the simdgroup is at the same
// collective, `all_lanes` receives the 32 lanes' values in lane order (the
// slots of lanes that are not live, returned or past a partial simdgroup's
// end, are 0xFF bytes). Returns the active-lane mask.
uint32_t simd_exchange(const void* value, size_t bytes, void* all_lanes, Site site);

// Storage for a `threadgroup` variable declared in a kernel: the first thread
// of the threadgroup to ask allocates it (poisoned with 0xFF so reads of
// unwritten memory show up as NaN or -1), the rest share it.
void* threadgroup_variable(const void* declaration, size_t bytes, size_t alignment);

// The calling thread's ids (for shim functions that need them).
const ThreadIds& current_thread();

// LaunchConfig::context of the launch the calling thread belongs to.
const void* launch_context();

// A load or store of kernel code (libraries built for race checks): checked
// against the other threads' accesses since the last barrier when the
// launch asks for race checks. `pc` locates the access for the report.
void memory_access(const void* address, size_t bytes, bool is_write, const void* pc);

}  // namespace qmetal::sim
