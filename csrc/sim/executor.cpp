#include "executor.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <unordered_map>

#include <dlfcn.h>

#include <cstdio>

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>

#include "faults.h"
#include "fiber.h"

namespace qmetal::sim {

namespace {
bool same_text(const char* a, const char* b) { return a == b || std::strcmp(a ? a : "", b ? b : "") == 0; }
}  // namespace

bool same_site(const Site& a, const Site& b) {
  return a.line == b.line && a.column == b.column && same_text(a.file, b.file) && same_text(a.op, b.op);
}

namespace {
// The scheduler's check, inlined: sites of one library share their strings.
inline bool same_site_fast(const Site& a, const Site& b) {
  if (a.line != b.line || a.column != b.column) return false;
  if (a.file == b.file && a.op == b.op) return true;
  return same_site(a, b);
}
}  // namespace

std::string site_str(const Site& site) {
  std::string where = std::string(site.file ? site.file : "") + ":" + std::to_string(site.line);
  if (site.op && *site.op) return std::string(site.op) + " at " + where;
  return where;
}

namespace {

constexpr unsigned char kPoison = 0xFF;

std::atomic<InterruptPoll> interrupt_poll_hook{nullptr};

enum class State { runnable, at_barrier, at_collective, done };

struct Thread {
  std::unique_ptr<Fiber> fiber;
  ThreadIds ids;
  State state = State::runnable;
  Site site;
  const void* value = nullptr;  // collective input
  void* all_lanes = nullptr;    // collective output
  size_t bytes = 0;
  uint32_t* active_mask = nullptr;
};

// Race checks: the last writer and a reader of one byte, with the barrier
// and simdgroup epochs they accessed it in (a thread in a later epoch is
// ordered after them).
struct Access {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t thread = kNone;
  uint64_t barrier_epoch = 0;
  uint64_t simd_epoch = 0;
  const void* pc = nullptr;
};

// Two readers are enough: a write races with a read by any other thread.
struct Shadow {
  Access write;
  Access read;
  Access other_read;  // a second thread's read, not ordered with `read`
};

struct Allocation {
  const void* declaration;
  std::unique_ptr<unsigned char[]> memory;
  size_t offset;  // to the aligned start
  size_t bytes;
};

// One worker's state: the fibers of the threadgroup it is running.
struct Group {
  const ThreadBody* body = nullptr;
  const LaunchConfig* config = nullptr;
  uint32_t count = 0;  // threads in the current threadgroup (fewer at non-uniform edges)
  std::vector<Thread> threads;
  std::unique_ptr<Fiber> scheduler;
  // [[threadgroup(i)]] memory, each ending at a watched guard page.
  struct ThreadgroupArg {
    faults::GuardedBlock block;
    char* data = nullptr;
    size_t bytes = 0;
    int watch = -1;
  };
  std::vector<ThreadgroupArg> threadgroup_args;
  std::vector<void*> threadgroup_arg_ptrs;
  // Set from a signal handler when a fiber had to be stopped (stack overflow,
  // timeout, Ctrl-C); the scheduler raises it.
  volatile bool in_fiber = false;
  const char* volatile stop_reason = nullptr;
  volatile uintptr_t stop_address = 0;
  const std::atomic<const char*>* cancel = nullptr;  // the run's cancellation
  std::vector<Allocation> variables;
  uint32_t current = 0;
  uint32_t done = 0;
  RunStats stats;
  std::vector<unsigned char> gathered;  // a collective's 32 values
  std::exception_ptr thread_error;
  // Race checks (LaunchConfig::race_check): epochs advance when a barrier
  // (all threads) or a collective (its simdgroup) completes.
  uint64_t barrier_epoch = 0;
  std::vector<uint64_t> simd_epoch;
  std::unordered_map<uintptr_t, Shadow> shadow;
  std::string race;  // the first race found; the scheduler raises it
};

thread_local Group* tls_group = nullptr;

Thread& running_thread(const char* what) {
  if (tls_group == nullptr) throw SimError(std::string(what) + " called outside a simulated kernel");
  return tls_group->threads[tls_group->current];
}

// in_fiber is true exactly while code runs on a fiber's stack, so a signal
// handler can tell whether it interrupted a simulated thread.
void yield_to_scheduler(Thread& thread) {
  Group& group = *tls_group;
  group.in_fiber = false;
  Fiber::switch_to(*thread.fiber, *group.scheduler);
  group.in_fiber = true;
}

void thread_entry(void* arg) {
  auto& thread = *static_cast<Thread*>(arg);
  Group& group = *tls_group;
  group.in_fiber = true;
  try {
    (*group.body)(thread.ids, group.threadgroup_arg_ptrs.data());
  } catch (...) {
    if (!group.thread_error) group.thread_error = std::current_exception();
  }
  thread.state = State::done;
  ++group.done;
  yield_to_scheduler(thread);  // never resumed
}

std::string thread_label(uint32_t index) {
  return "thread " + std::to_string(index) + " (simdgroup " + std::to_string(index / kSimdWidth) + ", lane " +
         std::to_string(index % kSimdWidth) + ")";
}

std::string describe(uint32_t index, const Thread& t) {
  std::string where = "thread " + std::to_string(index) + " (simdgroup " +
                      std::to_string(t.ids.simdgroup_index_in_threadgroup) + ", lane " +
                      std::to_string(t.ids.thread_index_in_simdgroup) + ")";
  switch (t.state) {
    case State::at_barrier: return where + " waits at " + site_str(t.site);
    case State::at_collective: return where + " waits at " + site_str(t.site);
    case State::done: return where + " has returned";
    default: return where + " is running";
  }
}

std::string group_name(const Thread& t) {
  const Uint3& g = t.ids.threadgroup_position_in_grid;
  return "threadgroup (" + std::to_string(g.x) + ", " + std::to_string(g.y) + ", " + std::to_string(g.z) + ")";
}

// Completes a simdgroup's collective once every live lane waits at it; does
// nothing while some lane is still running.
void try_complete_collective(Group& group, uint32_t simdgroup) {
  const uint32_t first = simdgroup * kSimdWidth;
  const uint32_t last = std::min<uint32_t>(first + kSimdWidth, group.count);
  int32_t leader = -1;
  for (uint32_t i = first; i < last; ++i) {
    const Thread& t = group.threads[i];
    if (t.state == State::done) continue;
    if (t.state != State::at_collective) return;  // wait for it (a barrier is judged later)
    if (leader < 0) {
      leader = static_cast<int32_t>(i);
    } else if (!same_site_fast(t.site, group.threads[leader].site) || t.bytes != group.threads[leader].bytes) {
      throw SimError("divergent simdgroup collectives in " + group_name(t) + ": " +
                     describe(static_cast<uint32_t>(leader), group.threads[leader]) + ", but " + describe(i, t));
    }
  }
  if (leader < 0) return;
  uint32_t active = 0;
  for (uint32_t i = first; i < last; ++i) {
    if (group.threads[i].state == State::at_collective) active |= 1u << (i - first);
  }
  // Gather once (lanes not live read as 0xFF bytes), then one copy per lane.
  const size_t bytes = group.threads[leader].bytes;
  group.gathered.assign(kSimdWidth * bytes, kPoison);
  for (uint32_t j = first; j < last; ++j) {
    const Thread& source = group.threads[j];
    if (source.state == State::at_collective) std::memcpy(&group.gathered[(j - first) * bytes], source.value, bytes);
  }
  for (uint32_t i = first; i < last; ++i) {
    Thread& t = group.threads[i];
    if (t.state != State::at_collective) continue;
    std::memcpy(t.all_lanes, group.gathered.data(), kSimdWidth * bytes);
    *t.active_mask = active;
  }
  for (uint32_t i = first; i < last; ++i) {
    if (group.threads[i].state == State::at_collective) group.threads[i].state = State::runnable;
  }
  ++group.simd_epoch[simdgroup];
}

// Nothing can run: every live thread waits at a barrier or a collective.
void resolve_blocked(Group& group) {
  const auto& threads = group.threads;
  const uint32_t count = group.count;
  for (uint32_t i = 0; i < count; ++i) {
    if (threads[i].state != State::at_collective) continue;
    // Its simdgroup could not complete: some lane waits at a barrier.
    const uint32_t first = i / kSimdWidth * kSimdWidth;
    for (uint32_t j = first; j < std::min<uint32_t>(first + kSimdWidth, count); ++j) {
      if (threads[j].state == State::at_barrier) {
        throw SimError("divergent control flow in " + group_name(threads[i]) + ": " + describe(i, threads[i]) +
                       ", but " + describe(j, threads[j]));
      }
    }
    throw SimError("simdgroup collective cannot complete in " + group_name(threads[i]) + ": " +
                   describe(i, threads[i]));
  }
  int32_t leader = -1;
  int32_t returned = -1;
  for (uint32_t i = 0; i < count; ++i) {
    if (threads[i].state == State::done) {
      if (returned < 0) returned = static_cast<int32_t>(i);
      continue;
    }
    if (leader < 0) {
      leader = static_cast<int32_t>(i);
    } else if (!same_site(threads[i].site, threads[leader].site)) {
      throw SimError("divergent barriers in " + group_name(threads[i]) + ": " +
                     describe(static_cast<uint32_t>(leader), threads[leader]) + ", but " + describe(i, threads[i]));
    }
  }
  if (returned >= 0) {
    // Metal requires every thread of the threadgroup at each barrier.
    throw SimError("barrier not reached by every thread of " + group_name(threads[leader]) + ": " +
                   describe(static_cast<uint32_t>(leader), threads[leader]) + ", but " +
                   describe(static_cast<uint32_t>(returned), threads[returned]));
  }
  for (uint32_t i = 0; i < count; ++i) group.threads[i].state = State::runnable;
  ++group.barrier_epoch;
}

Uint3 to_uint3(const Dim3& d) { return {d.x, d.y, d.z}; }

// Threads of the threadgroup at `position` in each dimension: the full size,
// except on the far edges of a non-uniform grid.
Dim3 threadgroup_extent(const LaunchConfig& config, const Dim3& position) {
  Dim3 extent = config.threadgroup;
  if (config.threads.volume() == 0) return extent;
  auto edge = [](uint32_t size, uint32_t total, uint32_t pos) { return std::min(size, total - pos * size); };
  return {edge(extent.x, config.threads.x, position.x), edge(extent.y, config.threads.y, position.y),
          edge(extent.z, config.threads.z, position.z)};
}

void run_threadgroup(Group& group, const LaunchConfig& config, const Dim3& position, std::mt19937_64& rng,
                     std::vector<uint32_t>& order) {
  const Dim3 tg = threadgroup_extent(config, position);
  const Dim3& full = config.threadgroup;
  const uint32_t count = static_cast<uint32_t>(tg.volume());
  const bool uniform = config.threads.volume() == 0;
  const Dim3 grid_threads = uniform ? Dim3{config.grid.x * full.x, config.grid.y * full.y, config.grid.z * full.z}
                                    : config.threads;
  group.count = count;
  group.done = 0;
  group.stats.threads += count;
  group.variables.clear();
  group.barrier_epoch = 0;
  group.simd_epoch.assign((count + kSimdWidth - 1) / kSimdWidth, 0);
  group.shadow.clear();
  group.race.clear();
  group.stop_reason = nullptr;
  group.stop_address = 0;
  for (auto& arg : group.threadgroup_args) std::memset(arg.data, kPoison, arg.bytes);
  for (uint32_t i = 0; i < count; ++i) {
    Thread& t = group.threads[i];
    ThreadIds& ids = t.ids;
    ids.thread_position_in_threadgroup = {i % tg.x, (i / tg.x) % tg.y, i / (tg.x * tg.y)};
    ids.threadgroup_position_in_grid = to_uint3(position);
    ids.thread_position_in_grid = {position.x * full.x + ids.thread_position_in_threadgroup.x,
                                   position.y * full.y + ids.thread_position_in_threadgroup.y,
                                   position.z * full.z + ids.thread_position_in_threadgroup.z};
    ids.threads_per_threadgroup = to_uint3(tg);
    ids.threadgroups_per_grid = to_uint3(config.grid);
    ids.threads_per_grid = to_uint3(grid_threads);
    ids.thread_index_in_threadgroup = i;
    ids.thread_index_in_simdgroup = i % kSimdWidth;
    ids.simdgroup_index_in_threadgroup = i / kSimdWidth;
    ids.threads_per_simdgroup = kSimdWidth;
    ids.simdgroups_per_threadgroup = (count + kSimdWidth - 1) / kSimdWidth;
    t.state = State::runnable;
    t.fiber->reset(&thread_entry, &t);
  }

  while (group.done < count) {
    if (config.schedule == Schedule::random) std::shuffle(order.begin(), order.end(), rng);
    bool progressed = false;
    for (uint32_t i : order) {
      if (i >= count) continue;
      Thread& t = group.threads[i];
      if (t.state != State::runnable) continue;
      progressed = true;
      group.current = i;
      if (const char* reason = group.cancel->load()) throw SimError(std::string(reason) + " in " + group_name(t));
      Fiber::switch_to(*group.scheduler, *t.fiber);
      ++group.stats.switches;
      if (group.stop_reason != nullptr) {
        const char* cancelled = group.cancel->load();
        std::string where = thread_label(i);
        if (cancelled) throw SimError(std::string(cancelled) + ": " + group_name(t) + ", " + where + " was running");
        std::string message = group_name(t) + ", " + where + ": " + group.stop_reason;
        if (group.stop_address != 0) {
          char address[32];
          std::snprintf(address, sizeof address, "0x%zx", static_cast<size_t>(group.stop_address));
          message += std::string(" at address ") + address + " (far past a buffer, or through a bad pointer)";
        }
        throw SimError(message);
      }
      if (group.thread_error) std::rethrow_exception(group.thread_error);
      if (!group.race.empty()) throw SimError(group.race);
      try_complete_collective(group, i / kSimdWidth);
    }
    if (!progressed) resolve_blocked(group);
  }
}

}  // namespace

RunStats run(const ThreadBody& body, const LaunchConfig& launch) {
  LaunchConfig config = launch;
  if (config.threads.volume() != 0) {
    // dispatchThreads: as many threadgroups as cover the threads.
    auto cover = [](uint32_t total, uint32_t size) { return size ? (total + size - 1) / size : 0; };
    config.grid = {cover(config.threads.x, config.threadgroup.x), cover(config.threads.y, config.threadgroup.y),
                   cover(config.threads.z, config.threadgroup.z)};
  }
  const uint64_t threads = config.threadgroup.volume();
  if (threads == 0 || config.grid.volume() == 0) return {};
  const uint64_t groups = config.grid.volume();
  unsigned workers = config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  workers = static_cast<unsigned>(std::min<uint64_t>(workers, groups));

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  std::atomic<uint64_t> total_threads{0}, total_switches{0};
  std::atomic<const char*> cancel{nullptr};
  faults::install();

  auto work = [&](unsigned worker) {
    faults::prepare_thread();
    Group group;
    group.body = &body;
    group.config = &config;
    group.cancel = &cancel;
    group.scheduler = Fiber::for_current_thread();
    group.threads.resize(threads);
    for (auto& t : group.threads) t.fiber = std::make_unique<Fiber>(config.stack_bytes);
    for (uint32_t bytes : config.threadgroup_memory) {
      Group::ThreadgroupArg arg;
      arg.bytes = bytes;
      arg.block = faults::map_guarded(bytes);
      // Ends at the guard page (16-byte aligned, as Metal's lengths are).
      arg.data = arg.block.end - (bytes + 15) / 16 * 16;
      arg.watch = faults::watch(arg.block);
      group.threadgroup_args.push_back(arg);
    }
    for (auto& arg : group.threadgroup_args) group.threadgroup_arg_ptrs.push_back(arg.data);
    std::vector<uint32_t> order(threads);
    std::iota(order.begin(), order.end(), 0u);
    if (config.schedule == Schedule::reverse) std::reverse(order.begin(), order.end());
    std::mt19937_64 rng(config.seed * 0x9E3779B97F4A7C15ull + worker);
    tls_group = &group;
    try {
      for (uint64_t g; !failed && (g = next.fetch_add(1)) < groups;) {
        const Dim3 position{static_cast<uint32_t>(g % config.grid.x),
                            static_cast<uint32_t>((g / config.grid.x) % config.grid.y),
                            static_cast<uint32_t>(g / (uint64_t(config.grid.x) * config.grid.y))};
        run_threadgroup(group, config, position, rng, order);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
      failed = true;
    }
    tls_group = nullptr;
    for (size_t i = 0; i < group.threadgroup_args.size(); ++i) {
      auto& arg = group.threadgroup_args[i];
      const uintptr_t fault = faults::unwatch(arg.watch);
      faults::unmap(arg.block);
      if (fault != 0) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) {
          first_error = std::make_exception_ptr(SimError(
              "access past the end of [[threadgroup(" + std::to_string(i) + ")]]: threadgroup_memory[" +
              std::to_string(i) + "] gives it " + std::to_string(arg.bytes) + " bytes, and a thread touched byte " +
              std::to_string(fault - reinterpret_cast<uintptr_t>(arg.data))));
        }
      }
    }
    total_threads += group.stats.threads;
    total_switches += group.stats.switches;
  };

  const InterruptPoll poll = interrupt_poll_hook.load();
  if (workers == 1 && config.timeout_seconds <= 0 && poll == nullptr) {
    work(0);
  } else {
    // Workers on their own threads; this one waits, watching the clock and
    // Ctrl-C, and stops the workers' fibers when the run must end.
    std::mutex done_mutex;
    std::condition_variable done_signal;
    unsigned running = workers;
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        work(w);
        std::lock_guard<std::mutex> lock(done_mutex);
        --running;
        done_signal.notify_all();
      });
    }
    const auto start = std::chrono::steady_clock::now();
    std::string timeout_reason;
    bool interrupted = false;
    std::unique_lock<std::mutex> lock(done_mutex);
    while (running > 0) {
      done_signal.wait_for(lock, std::chrono::milliseconds(50));
      if (running == 0) continue;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (cancel.load() != nullptr) {
        // already cancelled: signal again below, in case a worker was between fibers
      } else if (config.timeout_seconds > 0 && elapsed > config.timeout_seconds) {
        timeout_reason = "timed out after " + std::to_string(config.timeout_seconds) + " s (timeout=)";
        cancel.store(timeout_reason.c_str());
      } else if (poll != nullptr) {
        lock.unlock();
        interrupted = poll();
        lock.lock();
        if (interrupted) cancel.store("interrupted");
      }
      if (cancel.load() != nullptr) {
        for (auto& t : pool) faults::interrupt_thread(static_cast<unsigned long>(t.native_handle()));
      }
    }
    lock.unlock();
    for (auto& t : pool) t.join();
    if (interrupted) throw Error(ErrorKind::interrupted, "interrupted");
  }
  if (first_error) std::rethrow_exception(first_error);
  return {total_threads.load(), total_switches.load()};
}

void barrier(Site site) {
  Thread& thread = running_thread("threadgroup_barrier");
  thread.state = State::at_barrier;
  thread.site = site;
  yield_to_scheduler(thread);
}

uint32_t simd_exchange(const void* value, size_t bytes, void* all_lanes, Site site) {
  Thread& thread = running_thread("a simdgroup collective");
  uint32_t active = 0;
  thread.state = State::at_collective;
  thread.site = site;
  thread.value = value;
  thread.bytes = bytes;
  thread.all_lanes = all_lanes;
  thread.active_mask = &active;
  yield_to_scheduler(thread);
  return active;
}

void* threadgroup_variable(const void* declaration, size_t bytes, size_t alignment) {
  running_thread("a threadgroup variable");
  Group& group = *tls_group;
  for (const Allocation& a : group.variables) {
    if (a.declaration == declaration) return a.memory.get() + a.offset;
  }
  Allocation a{declaration, std::make_unique<unsigned char[]>(bytes + alignment), 0, bytes + alignment};
  a.offset = (alignment - reinterpret_cast<uintptr_t>(a.memory.get()) % alignment) % alignment;
  std::memset(a.memory.get(), kPoison, bytes + alignment);
  void* start = a.memory.get() + a.offset;
  group.variables.push_back(std::move(a));
  return start;
}

const ThreadIds& current_thread() { return running_thread("current_thread").ids; }

void set_interrupt_poll(InterruptPoll poll) { interrupt_poll_hook.store(poll); }

size_t default_stack_bytes() {
  static const size_t bytes = [] {
    const char* kb = std::getenv("QMETAL_SIM_STACK_KB");
    const long value = kb ? std::strtol(kb, nullptr, 10) : 0;
    return value > 0 ? size_t(value) * 1024 : size_t(128) * 1024;
  }();
  return bytes;
}

// From signal handlers (faults.cpp): async-signal-safe reads of this
// thread's state, and the switch back to the scheduler.
bool running_a_fiber() { return tls_group != nullptr && tls_group->in_fiber; }

bool fault_in_fiber_guard(uintptr_t address) {
  if (!running_a_fiber()) return false;
  const auto stack = reinterpret_cast<uintptr_t>(tls_group->threads[tls_group->current].fiber->stack_base());
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  return address >= stack - page && address < stack;
}

void stop_running_fiber(const char* reason, uintptr_t address) {
  if (!running_a_fiber()) return;  // the scheduler sees the cancellation itself
  Group& group = *tls_group;
  group.stop_reason = reason;
  group.stop_address = address;
  group.in_fiber = false;
  Thread& thread = group.threads[group.current];
  Fiber::switch_to(*thread.fiber, *group.scheduler);  // never resumed: the fiber is reset or dropped
}

namespace {

// The .metal line of a kernel instruction: the library is built with -g and
// line markers, so addr2line maps the address to the shader's source.
std::string code_location(const void* pc) {
  Dl_info info{};
  if (pc == nullptr || dladdr(pc, &info) == 0 || info.dli_fname == nullptr) return "an unknown location";
  const uintptr_t offset = reinterpret_cast<uintptr_t>(pc) - 1 - reinterpret_cast<uintptr_t>(info.dli_fbase);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%zx", static_cast<size_t>(offset));
  const std::string fallback = std::string(info.dli_fname) + "+" + hex;
  // -i: the inlined calls too, innermost first; the report names the
  // innermost line outside the simulator's own headers (the kernel's line).
  const std::string command = "addr2line -i -e '" + std::string(info.dli_fname) + "' " + hex + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return fallback;
  std::vector<std::string> frames;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::string where(line);
    while (!where.empty() && (where.back() == '\n' || where.back() == ' ')) where.pop_back();
    const size_t discriminator = where.find(" (discriminator");
    if (discriminator != std::string::npos) where.erase(discriminator);
    // Source text compiled without a path is "<source>": no directory to prefix.
    const size_t pseudo = where.find("/<");
    if (pseudo != std::string::npos) where.erase(0, pseudo + 1);
    if (!where.empty() && where.rfind("??", 0) != 0) frames.push_back(where);
  }
  pclose(pipe);
  if (frames.empty()) return fallback;
  auto in_shim = [](const std::string& frame) { return frame.find("/qmetal_sim/") != std::string::npos; };
  for (const std::string& frame : frames) {
    if (!in_shim(frame)) return in_shim(frames.front()) ? frame + " (in " + frames.front() + ")" : frame;
  }
  return frames.front();
}

std::string address_space_of(const Group& group, uintptr_t address) {
  auto inside = [address](const void* begin, size_t bytes) {
    const auto b = reinterpret_cast<uintptr_t>(begin);
    return address >= b && address < b + bytes;
  };
  for (const Allocation& a : group.variables) {
    if (inside(a.memory.get(), a.bytes)) return "threadgroup memory (a threadgroup variable)";
  }
  for (size_t i = 0; i < group.threadgroup_args.size(); ++i) {
    if (inside(group.threadgroup_args[i].data, group.threadgroup_args[i].bytes)) {
      return "threadgroup memory ([[threadgroup(" + std::to_string(i) + ")]])";
    }
  }
  return "device memory";
}

}  // namespace

void memory_access(const void* address, size_t bytes, bool is_write, const void* pc) {
  Group* group = tls_group;
  if (group == nullptr || !group->config->race_check || !group->race.empty()) return;
  const uint32_t me = group->current;
  if (group->threads[me].fiber->owns(address)) return;  // the thread's own stack
  const uint32_t simdgroup = me / kSimdWidth;
  const Access now{me, group->barrier_epoch, group->simd_epoch[simdgroup], pc};
  // Whether `before` happened before `now`: the same thread, a barrier since,
  // or, in one simdgroup, a collective since.
  auto ordered = [&](const Access& before) {
    return before.thread == Access::kNone || before.thread == me || before.barrier_epoch < now.barrier_epoch ||
           (before.thread / kSimdWidth == simdgroup && before.simd_epoch < now.simd_epoch);
  };
  const auto base = reinterpret_cast<uintptr_t>(address);
  for (size_t b = 0; b < bytes; ++b) {
    Shadow& cell = group->shadow[base + b];
    const Access* other = nullptr;
    const char* other_op = "writes";
    if (!ordered(cell.write)) {
      other = &cell.write;
    } else if (is_write && !ordered(cell.read)) {
      other = &cell.read;
      other_op = "reads";
    } else if (is_write && !ordered(cell.other_read)) {
      other = &cell.other_read;
      other_op = "reads";
    }
    if (other != nullptr) {
      const ThreadIds& ids = group->threads[me].ids;
      const Uint3& g = ids.threadgroup_position_in_grid;
      group->race = "data race on " + address_space_of(*group, base + b) + " in threadgroup (" + std::to_string(g.x) +
                    ", " + std::to_string(g.y) + ", " + std::to_string(g.z) + "): " + thread_label(other->thread) + " " +
                    other_op + " it at " + code_location(other->pc) + ", and " + thread_label(me) + " " +
                    (is_write ? "writes" : "reads") + " it at " + code_location(pc) +
                    ", with no threadgroup_barrier between them";
      return;
    }
    if (is_write) {
      cell.write = now;
      cell.read = cell.other_read = Access{};
    } else if (ordered(cell.read)) {
      if (ordered(cell.other_read)) cell.other_read = Access{};
      cell.read = now;
    } else if (ordered(cell.other_read)) {
      cell.other_read = now;
    }
  }
}

const void* launch_context() {
  running_thread("launch_context");
  return tls_group->config->context;
}

}  // namespace qmetal::sim
