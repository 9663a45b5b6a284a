#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include "qmetal/qmetal.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

void bind_device(nb::module_& m) {
  nb::class_<Device>(m, "Device", "A backend's device: the Metal GPU or the CPU simulator.")
      .def_prop_ro("backend", [](const Device& d) { return std::string(backend_name(d.backend())); })
      .def_prop_ro("name", &Device::name)
      .def_prop_ro("architecture", &Device::architecture)
      .def_prop_ro(
          "capabilities",
          [](const Device& d) {
            const DeviceCapabilities& c = d.capabilities();
            nb::dict out;
            out["simd_width"] = c.simd_width;
            out["max_threads_per_threadgroup"] = c.max_threads_per_threadgroup;
            out["max_threadgroup_memory"] = c.max_threadgroup_memory;
            out["max_buffer_length"] = c.max_buffer_length;
            out["wrap_alignment"] = c.wrap_alignment;
            out["recommended_working_set"] = c.recommended_working_set;
            out["simdgroup_reduction"] = c.simdgroup_reduction;
            out["simdgroup_matrix"] = c.simdgroup_matrix;
            out["bfloat"] = c.bfloat;
            out["tensor_ops"] = c.tensor_ops;
            out["gpu_cores"] = c.gpu_cores;
            return out;
          },
          "Limits and features the planner routes on, as a dict.")
      .def("max_threads_per_threadgroup", &Device::max_threads_per_threadgroup, "kernel"_a,
           "The most threads a threadgroup of `kernel` can have on this device: the device's limit, or "
           "less where the kernel's registers lower it (what the mat-vec planners size their K slices by).")
      .def_prop_ro("details", &Device::details,
                   "What the backend checked about this device (Metal: GPU families, kernel library).")
      .def("__repr__", [](const Device& d) {
        return "qmetal.Device(backend='" + std::string(backend_name(d.backend())) + "', name='" + d.name() + "')";
      });

  m.def("default_device", &default_device,
        "QMETAL_BACKEND if set, else Metal where a Metal GPU exists, else the simulator.");
  m.def(
      "get_device", [](const std::string& backend) { return get_device(backend_from_name(backend)); }, "backend"_a,
      "The device of a backend by name ('sim', 'metal' or 'cuda').");
  m.def("estimated_apple_gpu_cores", &estimated_apple_gpu_cores, "architecture"_a,
        "The middle of the core counts of an Apple GPU class, from MTLDevice.architecture.name (0: unknown).");
  m.def("sim_device", &make_simulator_device, "tensor_ops"_a, "max_threads_per_threadgroup"_a = 1024,
        "A simulator device of its own; tensor_ops=True makes it report Metal 4 tensor operations, and "
        "max_threads_per_threadgroup is its limit for every kernel.");
  m.def(
      "backend_status", [](const std::string& backend) { return backend_status(backend_from_name(backend)); },
      "backend"_a, "One line: the device a backend uses, or why it is not used here.");
  m.def(
      "available_backends",
      [] {
        std::vector<std::string> out;
        for (Backend b : {Backend::metal, Backend::cuda, Backend::sim}) {
          if (backend_available(b)) out.emplace_back(backend_name(b));
        }
        return out;
      },
      "Backends compiled into this build, in order of preference.");
}

}  // namespace qmetal
