// The simulator's Python surface: libraries of kernels (built in, or compiled
// from a user's .metal by qmetal.sim.compile) and launching their kernels.
// Buffers arrive as (address, bytes) pairs; python/qmetal/sim keeps the
// arrays alive and checks them.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>

#include "common.h"
#include "qmetal/qmetal.h"
#include "sim/library.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

namespace {

sim::Schedule schedule_from(const std::string& name) {
  if (name == "forward") return sim::Schedule::forward;
  if (name == "reverse") return sim::Schedule::reverse;
  if (name == "random") return sim::Schedule::random;
  value_error("schedule: expected 'forward', 'reverse' or 'random', got '", name, "'");
}

// A non-owning handle, so the built-in library and loaded ones share a type.
struct LibraryHandle {
  std::shared_ptr<sim::Library> owned;
  const sim::Library* library;
};

sim::FunctionConstant constant_from(uint32_t index, nb::handle value) {
  sim::FunctionConstant c;
  c.index = index;
  if (nb::isinstance<nb::bool_>(value) || nb::isinstance<nb::int_>(value)) {
    c.integer = nb::cast<int64_t>(value);
  } else if (nb::isinstance<nb::float_>(value)) {
    c.is_float = true;
    c.real = nb::cast<double>(value);
  } else {
    type_error("function_constants[", index, "]: expected a bool, int or float, got ",
               nb::str(nb::handle(value.type())).c_str());
  }
  return c;
}

}  // namespace

void bind_sim(nb::module_& m) {
  nb::class_<LibraryHandle>(m, "SimLibrary", "Kernels the simulator can run.")
      .def_prop_ro("path", [](const LibraryHandle& h) { return h.library->path(); })
      .def_prop_ro("kernels", [](const LibraryHandle& h) { return h.library->kernel_names(); })
      .def(
          "kernel_info",
          [](const LibraryHandle& h, const std::string& name) {
            const auto& k = h.library->kernel(name);
            return nb::make_tuple(std::vector<uint32_t>(k.buffers, k.buffers + k.buffer_count),
                                  std::vector<uint32_t>(k.threadgroup, k.threadgroup + k.threadgroup_count),
                                  std::string(k.file), k.line);
          },
          "name"_a, "([[buffer]] indices, [[threadgroup]] indices, file, line) of a kernel.")
      .def(
          "launch",
          [](const LibraryHandle& h, const std::string& name,
             const std::vector<std::pair<uintptr_t, size_t>>& buffers, const std::vector<uint32_t>& grid,
             const std::vector<uint32_t>& threadgroup, const std::vector<uint32_t>& threadgroup_memory,
             const std::optional<std::vector<uint32_t>>& threads, const std::string& schedule, uint64_t seed,
             const std::vector<std::pair<uint32_t, nb::object>>& function_constants, unsigned workers) {
            sim::KernelLaunch launch;
            if (buffers.size() > sim::kMaxBufferBindings) {
              value_error("buffers: at most ", sim::kMaxBufferBindings, " (Metal's buffer slots), got ",
                          buffers.size());
            }
            for (size_t i = 0; i < buffers.size(); ++i) launch.buffers[i] = reinterpret_cast<void*>(buffers[i].first);
            launch.threadgroup = dim3_from(threadgroup, "threadgroup");
            if (threads) {
              launch.threads = dim3_from(*threads, "threads");
            } else {
              launch.grid = dim3_from(grid, "grid");
            }
            launch.threadgroup_memory = threadgroup_memory;
            launch.schedule = schedule_from(schedule);
            launch.seed = seed;
            launch.workers = workers;
            for (const auto& [index, value] : function_constants) {
              launch.function_constants.push_back(constant_from(index, value));
            }
            sim::RunStats stats;
            {
              nb::gil_scoped_release release;
              stats = h.library->launch(name, launch);
            }
            return nb::make_tuple(stats.threads, stats.switches);
          },
          "name"_a, "buffers"_a, "grid"_a, "threadgroup"_a, "threadgroup_memory"_a, "threads"_a.none(),
          "schedule"_a, "seed"_a, "function_constants"_a, "workers"_a,
          "Run a kernel; buffers are (address, bytes) pairs indexed by [[buffer(i)]]. Returns (threads, "
          "context switches).")
      .def(
          "execute",
          [](const LibraryHandle& h, const DispatchPlan& plan, const std::string& schedule, uint64_t seed) {
            nb::gil_scoped_release release;
            sim::execute(plan, *h.library, schedule_from(schedule), seed);
          },
          "plan"_a, "schedule"_a = "forward", "seed"_a = 0, "Run a DispatchPlan as the Metal backend would.");

  m.def(
      "sim_open_library",
      [](const std::string& path) {
        auto library = sim::Library::open(path);
        return LibraryHandle{library, library.get()};
      },
      "path"_a, "Load a kernel library compiled by qmetal.sim.compile.");
  m.def(
      "sim_builtin_library", []() { return LibraryHandle{nullptr, &sim::Library::builtin()}; },
      "The kernels of qmetal's own shaders.");
}

}  // namespace qmetal
