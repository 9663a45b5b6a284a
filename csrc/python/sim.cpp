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
#include "sim/faults.h"
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
  // Ctrl-C reaches long simulator runs (a launch, or an op's kernels): the
  // waiting thread asks Python about pending signals every 50 ms.
  sim::set_interrupt_poll([]() -> bool {
    if (!Py_IsInitialized()) return false;
    nb::gil_scoped_acquire acquire;
    return PyErr_CheckSignals() != 0;
  });
  nb::class_<LibraryHandle>(m, "SimLibrary", "Kernels the simulator can run.")
      .def_prop_ro("path", [](const LibraryHandle& h) { return h.library->path(); })
      .def_prop_ro("kernels", [](const LibraryHandle& h) { return h.library->kernel_names(); })
      .def_prop_ro("race_instrumented", [](const LibraryHandle& h) { return h.library->race_instrumented(); })
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
             const std::vector<std::tuple<uintptr_t, size_t, bool>>& buffers, const std::vector<uint32_t>& grid,
             const std::vector<uint32_t>& threadgroup, const std::vector<uint32_t>& threadgroup_memory,
             const std::optional<std::vector<uint32_t>>& threads, const std::string& schedule, uint64_t seed,
             const std::vector<std::pair<uint32_t, nb::object>>& function_constants, unsigned workers,
             bool race_check, double timeout, bool guard) {
            sim::KernelLaunch launch;
            if (buffers.size() > sim::kMaxBufferBindings) {
              value_error("buffers: at most ", sim::kMaxBufferBindings, " (Metal's buffer slots), got ",
                          buffers.size());
            }
            for (size_t i = 0; i < buffers.size(); ++i) {
              launch.buffers[i] = reinterpret_cast<void*>(std::get<0>(buffers[i]));
              launch.buffer_bytes[i] = std::get<1>(buffers[i]);
              launch.readonly[i] = std::get<2>(buffers[i]);
            }
            launch.race_check = race_check;
            launch.timeout_seconds = timeout;
            launch.guard_buffers = guard;
            launch.threadgroup = dim3_from(threadgroup, "threadgroup");
            bool nothing_to_run = false;
            if (threads) {
              launch.threads = dim3_from(*threads, "threads");
              nothing_to_run = launch.threads.volume() == 0;  // dispatchThreads of no threads
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
            if (nothing_to_run) {
              h.library->kernel(name);  // still a ValueError for an unknown kernel
              return nb::make_tuple(stats.threads, stats.switches);
            }
            {
              nb::gil_scoped_release release;
              stats = h.library->launch(name, launch);
            }
            return nb::make_tuple(stats.threads, stats.switches);
          },
          "name"_a, "buffers"_a, "grid"_a, "threadgroup"_a, "threadgroup_memory"_a, "threads"_a.none(),
          "schedule"_a, "seed"_a, "function_constants"_a, "workers"_a, "race_check"_a = false, "timeout"_a = 0.0,
          "guard"_a = false,
          "Run a kernel; buffers are (address, bytes, read-only) tuples indexed by [[buffer(i)]]. Returns "
          "(threads, context switches).")
      .def(
          "execute",
          [](const LibraryHandle& h, const DispatchPlan& plan, const std::string& schedule, uint64_t seed,
             bool race_check) {
            nb::gil_scoped_release release;
            sim::execute(plan, *h.library, schedule_from(schedule), seed, race_check);
          },
          "plan"_a, "schedule"_a = "forward", "seed"_a = 0, "race_check"_a = false,
          "Run a DispatchPlan as the Metal backend would (validated first).");

  m.def("sim_divisions_by_zero", &sim::faults::divisions_by_zero,
        "Integer divisions by zero simulated kernels have made (completed with quotient 0).");
  m.def(
      "sim_use_for_ops",
      [](const LibraryHandle* h, bool race_check) {
        if (h == nullptr) return sim::set_ops_library({});
        std::shared_ptr<const sim::Library> library = h->owned;
        if (!library) library = std::shared_ptr<const sim::Library>(h->library, [](const sim::Library*) {});
        if (race_check && !library->race_instrumented()) {
          value_error("race_check: ", library->path(), " was not built for race checks (compile it with race_check=True)");
        }
        sim::set_ops_library({library, race_check});
      },
      "library"_a.none(), "race_check"_a = false,
      "Run the ops' plans with this library's kernels (None: the built-in ones).");
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
