// Bindings of the GGML ops; checking happens in the core.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "qmetal/ggml.h"
#include "qmetal/ops.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

void bind_ggml(nb::module_& m) {
  nb::class_<GGMLWeight>(m, "GGMLWeight", "GGML blocks of a weight [..., N, K], as stored in a GGUF file.")
      .def_static(
          "from_buffer",
          [](BufferPtr data, const std::string& type, const Shape& shape, size_t offset) {
            return GGMLWeight::from_buffer(std::move(data), type, shape, offset);
          },
          "data"_a, "type"_a, "shape"_a, "offset"_a = 0)
      .def_ro("data", &GGMLWeight::data)
      .def_ro("offset", &GGMLWeight::offset)
      .def_ro("shape", &GGMLWeight::shape)
      .def_prop_ro("type", [](const GGMLWeight& w) { return std::string(w.type->name); });

  m.def("ggml_type_table", []() {
    nb::list rows;
    for (const GGMLType& t : ggml_types()) {
      rows.append(nb::make_tuple(t.name, t.gguf_id, t.block_values, t.block_bytes, t.mv_rows, t.alignment, t.mv_part));
    }
    return rows;
  });
  m.def(
      "ggml_matmul",
      [](const Device& device, const BufferPtr& x, const GGMLWeight& w, const std::string& dtype, bool heads_first,
         const BufferPtr& out, const std::string& route, Stream* stream) {
        const DType output = dtype_from_name(dtype);
        const GGMLRoute r = ggml_route_from_name(route);
        nb::gil_scoped_release release;
        return ggml_matmul(device, x, w, output, heads_first, out, r, stream);
      },
      "device"_a, "x"_a, "w"_a, "dtype"_a, "heads_first"_a, "out"_a.none(), "route"_a, "stream"_a.none());
  m.def(
      "ggml_gather_matmul",
      [](const Device& device, const BufferPtr& x, const GGMLWeight& w, const BufferPtr& lhs, const BufferPtr& rhs,
         const std::string& dtype, const BufferPtr& out, const std::string& route, Stream* stream) {
        const DType output = dtype_from_name(dtype);
        const GGMLRoute r = ggml_route_from_name(route);
        nb::gil_scoped_release release;
        return ggml_gather_matmul(device, x, w, lhs, rhs, output, out, r, stream);
      },
      "device"_a, "x"_a, "w"_a, "lhs_indices"_a.none(), "rhs_indices"_a.none(), "dtype"_a, "out"_a.none(), "route"_a,
      "stream"_a.none());
  m.def(
      "ggml_dequantize",
      [](const Device& device, const GGMLWeight& w, const std::string& dtype) {
        const DType output = dtype_from_name(dtype);
        nb::gil_scoped_release release;
        return ggml_dequantize(device, w, output);
      },
      "device"_a, "w"_a, "dtype"_a);
  m.def(
      "plan_ggml_matmul",
      [](const Device& device, const BufferPtr& x, const GGMLWeight& w, const BufferPtr& y, uint32_t M,
         const std::string& route) { return plan_ggml_matmul(device, x, w, y, M, 0, ggml_route_from_name(route)); },
      "device"_a, "x"_a, "w"_a, "y"_a, "M"_a, "route"_a);
}

}  // namespace qmetal
