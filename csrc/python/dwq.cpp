// Bindings of the DWQ ops and of unpacked weights; checking happens in the core.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "qmetal/dwq.h"
#include "qmetal/ops.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

void bind_dwq(nb::module_& m) {
  // QuantizedWeight is bound in affine.cpp; its unpacked form is reached
  // through these functions.
  m.def("quantized_weight_from_codes", &QuantizedWeight::from_codes, "codes"_a, "scales"_a, "biases"_a, "bits"_a,
        "group_size"_a);
  m.def(
      "quantized_weight_with_scales",
      [](const QuantizedWeight& w, BufferPtr scales, BufferPtr biases) {
        return w.with_scales(std::move(scales), std::move(biases));
      },
      "w"_a, "scales"_a, "biases"_a);
  m.def("quantized_weight_unpacked", [](const QuantizedWeight& w) { return w.unpacked; }, "w"_a);
  m.def(
      "dwq_kernel_name",
      [](const std::string& kernel, const std::string& dtype, int bits) {
        return dwq_kernel_name(kernel, dtype_from_name(dtype), bits);
      },
      "kernel"_a, "dtype"_a, "bits"_a = 0);
  m.def(
      "dwq_init",
      [](const Device& device, const BufferPtr& w, int bits, int group_size) {
        nb::gil_scoped_release release;
        return dwq_init(device, w, bits, group_size);
      },
      "device"_a, "w"_a, "bits"_a, "group_size"_a);
  m.def(
      "dwq_grads",
      [](const Device& device, const QuantizedWeight& w, const BufferPtr& dw) {
        DwqGrads g;
        {
          nb::gil_scoped_release release;
          g = dwq_grads(device, w, dw);
        }
        return nb::make_tuple(g.d_scales, g.d_biases);
      },
      "device"_a, "w"_a, "dw"_a);
  m.def(
      "dwq_matmul_vjp",
      [](const Device& device, const BufferPtr& x, const QuantizedWeight& w, const BufferPtr& dy, bool transpose) {
        DwqVjp v;
        {
          nb::gil_scoped_release release;
          v = dwq_matmul_vjp(device, x, w, dy, transpose);
        }
        return nb::make_tuple(v.dx, v.d_scales, v.d_biases);
      },
      "device"_a, "x"_a, "w"_a, "dy"_a, "transpose"_a);
  m.def(
      "plan_dwq_vjp",
      [](const Device& device, const BufferPtr& x, const QuantizedWeight& w, const BufferPtr& dy, bool transpose,
         const BufferPtr& d_scales, const BufferPtr& d_biases) {
        return plan_dwq_vjp(device, x, w, dy, transpose, DwqGrads{d_scales, d_biases});
      },
      "device"_a, "x"_a, "w"_a, "dy"_a, "transpose"_a, "d_scales"_a, "d_biases"_a,
      "The dwq_vjp launch matmul_vjp would make for the scale and bias gradients.");
}

}  // namespace qmetal
