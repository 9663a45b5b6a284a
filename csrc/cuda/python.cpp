// Python bindings of the CUDA backend's own functions (qmetal._core.cuda_*):
// copy counts, timing and run-time compiled modules, for tests and
// `python -m qmetal bench --backend cuda`. Compiled into every build; the
// functions exist only where the backend does (QMETAL_HAVE_CUDA).
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "qmetal/qmetal.h"
#ifdef QMETAL_HAVE_CUDA
#include "cuda/cuda.h"
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

void bind_cuda(nb::module_& m) {
#ifdef QMETAL_HAVE_CUDA
  m.attr("cuda_built") = true;
  nb::class_<cuda::Module>(m, "CudaModule",
                           "Kernels compiled at run time to a cubin (qmetal.sim._cuda.compile_cubin), found by host "
                           "name.")
      .def(nb::init<const std::string&>(), "path"_a)
      .def("has", [](const cuda::Module& mod, const std::string& name) { return mod.find(name) != nullptr; },
           "name"_a)
      .def_prop_ro("path", &cuda::Module::path);
  m.def(
      "cuda_execute",
      [](const Device& device, const std::vector<DispatchPlan>& plans, const cuda::Module* module) {
        nb::gil_scoped_release release;
        cuda::execute(device, plans, module);
      },
      "device"_a, "plans"_a, "module"_a.none() = nb::none(),
      "Run plans on the CUDA device (kernels from `module` first, then the built-in ones) and wait.");
  m.def(
      "cuda_time",
      [](const Device& device, const std::vector<DispatchPlan>& plans, const cuda::Module* module, int warmup,
         int repeat, size_t flush_bytes) {
        nb::gil_scoped_release release;
        return cuda::time_plans(device, plans, module, warmup, repeat, flush_bytes);
      },
      "device"_a, "plans"_a, "module"_a.none() = nb::none(), "warmup"_a = 3, "repeat"_a = 20, "flush_bytes"_a = 0,
      "Milliseconds of each of `repeat` timed runs of the plans (CUDA events), after `warmup` runs, with "
      "`flush_bytes` of device memory overwritten before each (an L2 flush).");
  m.def(
      "cuda_copy_bandwidth",
      [](const Device& device, size_t bytes, int repeat) {
        nb::gil_scoped_release release;
        return cuda::copy_bandwidth(device, bytes, repeat);
      },
      "device"_a, "bytes"_a, "repeat"_a = 20,
      "Median GB/s of device-to-device copies of `bytes` (bytes read plus bytes written).");
  m.def(
      "cuda_transfers",
      [] {
        const cuda::Transfers t = cuda::transfers();
        nb::dict out;
        out["to_device"] = t.to_device;
        out["to_device_bytes"] = t.to_device_bytes;
        out["to_host"] = t.to_host;
        out["to_host_bytes"] = t.to_host_bytes;
        out["launches"] = t.launches;
        return out;
      },
      "Copies between host and device memory, and kernel launches, since the start or the last reset.");
  m.def("cuda_reset_transfers", &cuda::reset_transfers);
  m.def("cuda_capture", &cuda::set_capture, "on"_a,
        "Start (True) or stop and forget (False) recording the plans the CUDA backend runs.");
  m.def("cuda_captured", &cuda::captured, "The plans run since cuda_capture(True).");
  m.def(
      "cuda_properties",
      [](const Device& device) {
        const cuda::Properties p = cuda::properties(device);
        nb::dict out;
        out["name"] = p.name;
        out["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
        out["arch"] = "sm_" + std::to_string(p.major * 10 + p.minor);
        out["multiprocessors"] = p.multiprocessors;
        out["l2_bytes"] = p.l2_bytes;
        out["memory_bytes"] = p.memory_bytes;
        return out;
      },
      "device"_a);
#else
  m.attr("cuda_built") = false;
#endif
}

}  // namespace qmetal
