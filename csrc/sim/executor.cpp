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

#include "fiber.h"

namespace qmetal::sim {

bool Site::operator==(const Site& other) const {
  return line == other.line && (file == other.file || std::strcmp(file, other.file) == 0);
}

std::string Site::str() const { return std::string(file) + ":" + std::to_string(line); }

namespace {

constexpr unsigned char kPoison = 0xFF;

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

struct Allocation {
  const void* declaration;
  std::unique_ptr<unsigned char[]> memory;
  size_t offset;  // to the aligned start
};

// One worker's state: the fibers of the threadgroup it is running.
struct Group {
  const ThreadBody* body = nullptr;
  std::vector<Thread> threads;
  std::unique_ptr<Fiber> scheduler;
  std::vector<std::vector<unsigned char>> threadgroup_args;
  std::vector<void*> threadgroup_arg_ptrs;
  std::vector<Allocation> variables;
  uint32_t current = 0;
  uint32_t done = 0;
  std::exception_ptr thread_error;
};

thread_local Group* tls_group = nullptr;

Thread& running_thread(const char* what) {
  if (tls_group == nullptr) throw SimError(std::string(what) + " called outside a simulated kernel");
  return tls_group->threads[tls_group->current];
}

void yield_to_scheduler(Thread& thread) { Fiber::switch_to(*thread.fiber, *tls_group->scheduler); }

void thread_entry(void* arg) {
  auto& thread = *static_cast<Thread*>(arg);
  Group& group = *tls_group;
  try {
    (*group.body)(thread.ids, group.threadgroup_arg_ptrs.data());
  } catch (...) {
    if (!group.thread_error) group.thread_error = std::current_exception();
  }
  thread.state = State::done;
  ++group.done;
  yield_to_scheduler(thread);  // never resumed
}

std::string describe(uint32_t index, const Thread& t) {
  std::string where = "thread " + std::to_string(index) + " (simdgroup " +
                      std::to_string(t.ids.simdgroup_index_in_threadgroup) + ", lane " +
                      std::to_string(t.ids.thread_index_in_simdgroup) + ")";
  switch (t.state) {
    case State::at_barrier: return where + " waits at the barrier at " + t.site.str();
    case State::at_collective: return where + " waits at the simdgroup collective at " + t.site.str();
    case State::done: return where + " has returned";
    default: return where + " is running";
  }
}

std::string group_name(const Thread& t) {
  const Dim3& g = t.ids.threadgroup_position_in_grid;
  return "threadgroup (" + std::to_string(g.x) + ", " + std::to_string(g.y) + ", " + std::to_string(g.z) + ")";
}

// Completes a simdgroup's collective once every live lane waits at it; does
// nothing while some lane is still running.
void try_complete_collective(Group& group, uint32_t simdgroup) {
  const uint32_t first = simdgroup * kSimdWidth;
  const uint32_t last = std::min<uint32_t>(first + kSimdWidth, group.threads.size());
  int32_t leader = -1;
  for (uint32_t i = first; i < last; ++i) {
    const Thread& t = group.threads[i];
    if (t.state == State::done) continue;
    if (t.state != State::at_collective) return;  // wait for it (a barrier is judged later)
    if (leader < 0) {
      leader = static_cast<int32_t>(i);
    } else if (!(t.site == group.threads[leader].site) || t.bytes != group.threads[leader].bytes) {
      throw SimError("divergent simdgroup collectives in " + group_name(t) + ": " +
                     describe(static_cast<uint32_t>(leader), group.threads[leader]) + ", but " + describe(i, t));
    }
  }
  if (leader < 0) return;
  uint32_t active = 0;
  for (uint32_t i = first; i < last; ++i) {
    if (group.threads[i].state == State::at_collective) active |= 1u << (i - first);
  }
  for (uint32_t i = first; i < last; ++i) {
    Thread& t = group.threads[i];
    if (t.state != State::at_collective) continue;
    for (uint32_t j = first; j < last; ++j) {
      const Thread& source = group.threads[j];
      if (source.state != State::at_collective) continue;
      std::memcpy(static_cast<unsigned char*>(t.all_lanes) + (j - first) * t.bytes, source.value, t.bytes);
    }
    *t.active_mask = active;
  }
  for (uint32_t i = first; i < last; ++i) {
    if (group.threads[i].state == State::at_collective) group.threads[i].state = State::runnable;
  }
}

// Nothing can run: every live thread waits at a barrier or a collective.
void resolve_blocked(Group& group) {
  const auto& threads = group.threads;
  for (uint32_t i = 0; i < threads.size(); ++i) {
    if (threads[i].state != State::at_collective) continue;
    // Its simdgroup could not complete: some lane waits at a barrier.
    const uint32_t first = i / kSimdWidth * kSimdWidth;
    for (uint32_t j = first; j < std::min<uint32_t>(first + kSimdWidth, threads.size()); ++j) {
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
  for (uint32_t i = 0; i < threads.size(); ++i) {
    if (threads[i].state == State::done) {
      if (returned < 0) returned = static_cast<int32_t>(i);
      continue;
    }
    if (leader < 0) {
      leader = static_cast<int32_t>(i);
    } else if (!(threads[i].site == threads[leader].site)) {
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
  for (auto& t : group.threads) t.state = State::runnable;
}

void run_threadgroup(Group& group, const LaunchConfig& config, const Dim3& position, std::mt19937_64& rng,
                     std::vector<uint32_t>& order) {
  const Dim3& tg = config.threadgroup;
  const uint32_t count = static_cast<uint32_t>(tg.volume());
  group.done = 0;
  group.variables.clear();
  for (auto& memory : group.threadgroup_args) std::fill(memory.begin(), memory.end(), kPoison);
  for (uint32_t i = 0; i < count; ++i) {
    Thread& t = group.threads[i];
    ThreadIds& ids = t.ids;
    ids.thread_position_in_threadgroup = {i % tg.x, (i / tg.x) % tg.y, i / (tg.x * tg.y)};
    ids.threadgroup_position_in_grid = position;
    ids.thread_position_in_grid = {position.x * tg.x + ids.thread_position_in_threadgroup.x,
                                   position.y * tg.y + ids.thread_position_in_threadgroup.y,
                                   position.z * tg.z + ids.thread_position_in_threadgroup.z};
    ids.threads_per_threadgroup = tg;
    ids.threadgroups_per_grid = config.grid;
    ids.threads_per_grid = {config.grid.x * tg.x, config.grid.y * tg.y, config.grid.z * tg.z};
    ids.thread_index_in_threadgroup = i;
    ids.thread_index_in_simdgroup = i % kSimdWidth;
    ids.simdgroup_index_in_threadgroup = i / kSimdWidth;
    ids.simdgroups_per_threadgroup = (count + kSimdWidth - 1) / kSimdWidth;
    t.state = State::runnable;
    t.fiber->reset(&thread_entry, &t);
  }

  while (group.done < count) {
    if (config.schedule == Schedule::random) std::shuffle(order.begin(), order.end(), rng);
    bool progressed = false;
    for (uint32_t i : order) {
      Thread& t = group.threads[i];
      if (t.state != State::runnable) continue;
      progressed = true;
      group.current = i;
      Fiber::switch_to(*group.scheduler, *t.fiber);
      if (group.thread_error) std::rethrow_exception(group.thread_error);
      try_complete_collective(group, i / kSimdWidth);
    }
    if (!progressed) resolve_blocked(group);
  }
}

}  // namespace

void run(const ThreadBody& body, const LaunchConfig& config) {
  const uint64_t threads = config.threadgroup.volume();
  if (threads == 0 || config.grid.volume() == 0) return;
  const uint64_t groups = config.grid.volume();
  unsigned workers = config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  workers = static_cast<unsigned>(std::min<uint64_t>(workers, groups));

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;

  auto work = [&](unsigned worker) {
    Group group;
    group.body = &body;
    group.scheduler = Fiber::for_current_thread();
    group.threads.resize(threads);
    for (auto& t : group.threads) t.fiber = std::make_unique<Fiber>(config.stack_bytes);
    for (uint32_t bytes : config.threadgroup_memory) group.threadgroup_args.emplace_back(bytes);
    for (auto& memory : group.threadgroup_args) group.threadgroup_arg_ptrs.push_back(memory.data());
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
  };

  if (workers == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w) pool.emplace_back(work, w);
    for (auto& t : pool) t.join();
  }
  if (first_error) std::rethrow_exception(first_error);
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
  Allocation a{declaration, std::make_unique<unsigned char[]>(bytes + alignment), 0};
  a.offset = (alignment - reinterpret_cast<uintptr_t>(a.memory.get()) % alignment) % alignment;
  std::memset(a.memory.get(), kPoison, bytes + alignment);
  void* start = a.memory.get() + a.offset;
  group.variables.push_back(std::move(a));
  return start;
}

const ThreadIds& current_thread() { return running_thread("current_thread").ids; }

}  // namespace qmetal::sim
