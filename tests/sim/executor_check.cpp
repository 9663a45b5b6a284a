// Scenarios for the simulator's executor, written directly against its C++
// API (kernels compiled from .metal come with the generator). Each scenario
// prints what tests/test_sim_executor.py checks; usage: executor_check NAME SCHEDULE.
#include <qmetal/sim/executor.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace qmetal;
using namespace qmetal::sim;

#define BARRIER Site{__FILE__, __LINE__, 0, "barrier"}
#define COLLECTIVE Site{__FILE__, __LINE__, 0, "simdgroup collective"}

static float lane_sum(float value, uint32_t* mask, Site site) {
  float lanes[kSimdWidth] = {};
  *mask = simd_exchange(&value, sizeof value, lanes, site);
  float total = 0;
  for (uint32_t i = 0; i < kSimdWidth; ++i) total += (*mask >> i & 1) ? lanes[i] : 0.0f;
  return total;
}

static LaunchConfig config(Dim3 grid, Dim3 tg, Schedule schedule) {
  LaunchConfig c;
  c.grid = grid;
  c.threadgroup = tg;
  c.schedule = schedule;
  c.seed = 7;
  return c;
}

int main(int argc, char** argv) {
  if (argc != 3) return 64;
  const std::string name = argv[1];
  const std::string s = argv[2];
  const Schedule schedule = s == "reverse" ? Schedule::reverse : s == "random" ? Schedule::random : Schedule::forward;
  try {
    if (name == "ids") {
      // Every thread writes its ids; partial last simdgroup (40 = 32 + 8).
      const Dim3 grid{3, 2, 2}, tg{10, 4, 1};
      std::vector<uint32_t> seen(grid.volume() * tg.volume() * 4, ~0u);
      run([&](const ThreadIds& id, void* const*) {
        const uint32_t g = id.thread_position_in_grid.x +
                           id.threads_per_grid.x * (id.thread_position_in_grid.y + id.threads_per_grid.y * id.thread_position_in_grid.z);
        seen[4 * g + 0] = id.thread_index_in_threadgroup;
        seen[4 * g + 1] = id.simdgroup_index_in_threadgroup * 100 + id.thread_index_in_simdgroup;
        seen[4 * g + 2] = id.threadgroup_position_in_grid.x + 10 * id.threadgroup_position_in_grid.y + 100 * id.threadgroup_position_in_grid.z;
        seen[4 * g + 3] = id.simdgroups_per_threadgroup;
      }, config(grid, tg, schedule));
      for (size_t i = 0; i < seen.size(); ++i) std::printf("%u%c", seen[i], i % 4 == 3 ? '\n' : ' ');
    } else if (name == "reduce") {
      // Tree reduction in threadgroup memory with barriers; sizes that are
      // not powers of two and not multiples of 32.
      for (uint32_t n : {1u, 33u, 100u, 1024u}) {
        std::vector<float> sums(3);
        run([&](const ThreadIds& id, void* const*) {
          static const char declaration = 0;
          auto* shared = static_cast<float*>(threadgroup_variable(&declaration, 1024 * sizeof(float), alignof(float)));
          const uint32_t t = id.thread_index_in_threadgroup;
          shared[t] = float(t + 1 + id.threadgroup_position_in_grid.x * 1000);
          barrier(BARRIER);
          for (uint32_t stride = 512; stride > 0; stride /= 2) {
            if (t < stride && t + stride < n) shared[t] += shared[t + stride];
            barrier(BARRIER);
          }
          if (t == 0) sums[id.threadgroup_position_in_grid.x] = shared[0];
        }, config({3, 1, 1}, {n, 1, 1}, schedule));
        std::printf("%u %.1f %.1f %.1f\n", n, sums[0], sums[1], sums[2]);
      }
    } else if (name == "simd_sum") {
      // 50 threads: simdgroup 0 has 32 lanes, simdgroup 1 has 18; the odd
      // lanes of simdgroup 1 return before a second collective.
      std::vector<float> sums(50 * 2, -1.0f);
      std::vector<uint32_t> masks(50 * 2, 0);
      run([&](const ThreadIds& id, void* const*) {
        const uint32_t t = id.thread_index_in_threadgroup;
        sums[2 * t] = lane_sum(float(t), &masks[2 * t], COLLECTIVE);
        if (id.simdgroup_index_in_threadgroup == 1 && (t & 1)) return;
        sums[2 * t + 1] = lane_sum(1.0f, &masks[2 * t + 1], COLLECTIVE);
      }, config({1, 1, 1}, {50, 1, 1}, schedule));
      for (uint32_t t = 0; t < 50; ++t) {
        std::printf("%g %u %g %u\n", sums[2 * t], masks[2 * t], sums[2 * t + 1], masks[2 * t + 1]);
      }
    } else if (name == "threadgroup_args") {
      LaunchConfig c = config({4, 1, 1}, {64, 1, 1}, schedule);
      c.threadgroup_memory = {64 * sizeof(int32_t), 16};
      std::vector<int32_t> out(4 * 64);
      run([&](const ThreadIds& id, void* const* args) {
        auto* shared = static_cast<int32_t*>(args[0]);
        const uint32_t t = id.thread_index_in_threadgroup;
        if (t == 0) out[id.threadgroup_position_in_grid.x * 64] = shared[5];  // poisoned: -1
        barrier(BARRIER);
        shared[t] = int32_t(t * 3 + id.threadgroup_position_in_grid.x);
        barrier(BARRIER);
        if (t != 0) out[id.threadgroup_position_in_grid.x * 64 + t] = shared[63 - t];
      }, c);
      for (int32_t v : out) std::printf("%d\n", v);
    } else if (name == "missing_barrier") {
      // Reads a neighbour's slot with no barrier between write and read.
      std::vector<int32_t> out(64);
      run([&](const ThreadIds& id, void* const*) {
        static const char declaration = 0;
        auto* shared = static_cast<int32_t*>(threadgroup_variable(&declaration, 64 * sizeof(int32_t), 4));
        const uint32_t t = id.thread_index_in_threadgroup;
        shared[t] = int32_t(t);
        out[t] = shared[(t + 32) % 64];
      }, config({1, 1, 1}, {64, 1, 1}, schedule));
      long long total = 0;
      for (int32_t v : out) total += v;
      std::printf("%lld\n", total);
    } else if (name == "barrier_after_return") {
      run([&](const ThreadIds& id, void* const*) {
        if (id.thread_index_in_threadgroup == 5) return;
        barrier(BARRIER);
      }, config({2, 1, 1}, {64, 1, 1}, schedule));
    } else if (name == "divergent_barriers") {
      run([&](const ThreadIds& id, void* const*) {
        if (id.thread_index_in_threadgroup < 40) {
          barrier(BARRIER);
        } else {
          barrier(BARRIER);
        }
      }, config({1, 1, 1}, {64, 1, 1}, schedule));
    } else if (name == "divergent_collectives") {
      run([&](const ThreadIds& id, void* const*) {
        uint32_t mask;
        if (id.thread_index_in_simdgroup < 16) {
          lane_sum(1.0f, &mask, COLLECTIVE);
        } else {
          lane_sum(2.0f, &mask, COLLECTIVE);
        }
      }, config({1, 1, 1}, {32, 1, 1}, schedule));
    } else if (name == "collective_and_barrier") {
      run([&](const ThreadIds& id, void* const*) {
        uint32_t mask;
        if (id.thread_index_in_simdgroup == 3) {
          barrier(BARRIER);
        } else {
          lane_sum(1.0f, &mask, COLLECTIVE);
        }
      }, config({1, 1, 1}, {32, 1, 1}, schedule));
    } else if (name == "kernel_throws") {
      run([&](const ThreadIds& id, void* const*) {
        barrier(BARRIER);
        if (id.thread_index_in_threadgroup == 7) throw Error(ErrorKind::value, "thrown by thread 7");
        barrier(BARRIER);
      }, config({8, 1, 1}, {32, 1, 1}, schedule));
    } else {
      return 64;
    }
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 3;
  }
  return 0;
}
