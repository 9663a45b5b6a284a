// Bindings of the MLX affine ops. Arrays arrive as Buffers (python/qmetal
// wraps NumPy arrays without copying); all checking happens in the core.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "qmetal/ops.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

void bind_affine(nb::module_& m) {
  nb::class_<Stream>(m, "Stream", "Queues ops on a device; results are ready after synchronize().")
      .def(nb::init<DevicePtr>(), "device"_a)
      .def(
          "synchronize",
          [](Stream& s) {
            nb::gil_scoped_release release;
            s.synchronize();
          },
          "Wait for everything queued; RuntimeError if the GPU failed.")
      .def_prop_ro("device", &Stream::device)
      .def_prop_ro("queued_kernels", &Stream::queued_kernels, "The kernels queued since the last synchronize().");

  nb::class_<QuantizedWeight>(m, "QuantizedWeight", "An MLX affine quantized weight (packed codes, scales, biases).")
      .def_static("from_buffers", &QuantizedWeight::from_buffers, "packed"_a, "scales"_a, "biases"_a, "bits"_a,
                  "group_size"_a)
      .def_ro("packed", &QuantizedWeight::packed)
      .def_ro("scales", &QuantizedWeight::scales)
      .def_ro("biases", &QuantizedWeight::biases)
      .def_ro("bits", &QuantizedWeight::bits)
      .def_ro("group_size", &QuantizedWeight::group_size)
      .def_prop_ro("shape", &QuantizedWeight::shape)
      .def_prop_ro("dtype", [](const QuantizedWeight& w) { return std::string(dtype_name(w.dtype())); });

  m.def(
      "affine_quantize",
      [](const Device& device, const BufferPtr& w, int bits, int group_size) {
        nb::gil_scoped_release release;
        return affine_quantize(device, w, bits, group_size);
      },
      "device"_a, "w"_a, "bits"_a, "group_size"_a);
  m.def(
      "affine_dequantize",
      [](const Device& device, const QuantizedWeight& w) {
        nb::gil_scoped_release release;
        return affine_dequantize(device, w);
      },
      "device"_a, "w"_a);
  m.def(
      "affine_matmul",
      [](const Device& device, const BufferPtr& x, const QuantizedWeight& w, bool transpose, const BufferPtr& out,
         const std::string& route, Stream* stream) {
        const AffineRoute r = affine_route_from_name(route);
        nb::gil_scoped_release release;
        return affine_matmul(device, x, w, transpose, out, r, stream);
      },
      "device"_a, "x"_a, "w"_a, "transpose"_a, "out"_a.none(), "route"_a, "stream"_a.none() = nb::none());
  m.def(
      "affine_gather_matmul",
      [](const Device& device, const BufferPtr& x, const QuantizedWeight& w, const BufferPtr& lhs,
         const BufferPtr& rhs, bool transpose, bool sorted_indices, const BufferPtr& out, const std::string& route,
         Stream* stream) {
        const AffineRoute r = affine_route_from_name(route);
        nb::gil_scoped_release release;
        return affine_gather_matmul(device, x, w, lhs, rhs, transpose, sorted_indices, out, r, stream);
      },
      "device"_a, "x"_a, "w"_a, "lhs_indices"_a.none(), "rhs_indices"_a.none(), "transpose"_a, "sorted_indices"_a,
      "out"_a.none(), "route"_a, "stream"_a.none() = nb::none());
  m.def("affine_matmul_shape", &affine_matmul_shape, "x_shape"_a, "w"_a, "transpose"_a);
  m.def(
      "plan_affine_matmul",
      [](const Device& device, const BufferPtr& x, const QuantizedWeight& w, bool transpose, const BufferPtr& y,
         const std::string& route) {
        return plan_affine_matmul(device, x, w, transpose, y, affine_route_from_name(route));
      },
      "device"_a, "x"_a, "w"_a, "transpose"_a, "y"_a, "route"_a, "The launches affine_matmul would make.");
  m.def(
      "affine_kernel_name",
      [](const std::string& kernel, const std::string& dtype, int group_size, int bits) {
        return affine_kernel_name(kernel, dtype_from_name(dtype), group_size, bits);
      },
      "kernel"_a, "dtype"_a, "group_size"_a, "bits"_a);
  m.def("affine_matmat_threshold", &affine_matmat_threshold, "device"_a);
  m.def("affine_k_partitions", &affine_k_partitions, "tiles"_a, "K"_a, "target_threadgroups"_a = 128);
  m.def("affine_target_threadgroups", &affine_target_threadgroups, "device"_a);
  m.def("affine_gather_prefers_sorted", &affine_gather_prefers_sorted, "device"_a, "transpose"_a, "rows_per_matrix"_a,
        "matrices"_a, "experts"_a);
}

}  // namespace qmetal
