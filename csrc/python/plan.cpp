#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "common.h"
#include "qmetal/qmetal.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

namespace {
Access access_from(const std::string& name) {
  if (name == "read") return Access::read;
  if (name == "write") return Access::write;
  if (name == "read_write") return Access::read_write;
  value_error("access: expected 'read', 'write' or 'read_write', got '", name, "'");
}

const char* access_name(Access a) {
  return a == Access::read ? "read" : a == Access::write ? "write" : "read_write";
}
}  // namespace

// Plans are made by the planner; Python sees them for inspection and tests.
void bind_plan(nb::module_& m) {
  nb::class_<DispatchPlan>(m, "DispatchPlan", "One kernel launch, as both backends execute it.")
      .def(nb::init<>())
      .def_rw("kernel", &DispatchPlan::kernel)
      .def_prop_rw(
          "args", [](const DispatchPlan& p) { return nb::bytes(p.args.data(), p.args.size()); },
          [](DispatchPlan& p, nb::bytes b) {
            const auto* data = static_cast<const uint8_t*>(b.data());
            p.args.assign(data, data + b.size());
          })
      .def_prop_rw(
          "grid", [](const DispatchPlan& p) { return std::make_tuple(p.grid.x, p.grid.y, p.grid.z); },
          [](DispatchPlan& p, const std::vector<uint32_t>& v) { p.grid = dim3_from(v, "grid"); })
      .def_prop_rw(
          "threadgroup",
          [](const DispatchPlan& p) { return std::make_tuple(p.threadgroup.x, p.threadgroup.y, p.threadgroup.z); },
          [](DispatchPlan& p, const std::vector<uint32_t>& v) { p.threadgroup = dim3_from(v, "threadgroup"); })
      .def_prop_ro("buffers",
                   [](const DispatchPlan& p) {
                     nb::list out;
                     for (const BufferBinding& b : p.buffers) {
                       out.append(nb::make_tuple(b.index, b.buffer, b.offset, access_name(b.access)));
                     }
                     return out;
                   })
      .def_prop_ro("threadgroup_memory",
                   [](const DispatchPlan& p) {
                     nb::list out;
                     for (const ThreadgroupMemory& t : p.threadgroup_memory) out.append(nb::make_tuple(t.index, t.bytes));
                     return out;
                   })
      .def(
          "bind",
          [](DispatchPlan& p, uint32_t index, BufferPtr buffer, const std::string& access, size_t offset,
             size_t extent) { p.bind(index, std::move(buffer), access_from(access), offset, extent); },
          "index"_a, "buffer"_a, "access"_a = "read", "offset"_a = 0, "extent"_a = 0,
          "Bind a buffer; `extent`: bytes the kernel may touch from `offset` (0: to the end).")
      .def(
          "set_threadgroup_memory",
          [](DispatchPlan& p, uint32_t index, uint32_t bytes) { p.threadgroup_memory.push_back({index, bytes}); },
          "index"_a, "bytes"_a)
      .def(
          "validate", [](const DispatchPlan& p, const Device& device) { p.validate(device.capabilities()); },
          "device"_a, "Raise ValueError if the plan breaks the device's limits or its own consistency.");
  m.def("mat_vec_k_slices", &mat_vec_k_slices, "simdgroups"_a, "lane_steps"_a, "target_threadgroups"_a,
        "K slices the planners give a mat-vec grid (shaders/mat_vec.h).");
}

}  // namespace qmetal
