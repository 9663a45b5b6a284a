#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "qmetal/qmetal.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {

namespace {

nb::tuple shape_tuple(const Shape& shape) {
  nb::list out;
  for (int64_t extent : shape) out.append(extent);
  return nb::tuple(out);
}

// DLPack type codes for each dtype; bfloat16 has its own code.
nb::dlpack::dtype dlpack_dtype(DType dtype) {
  using Code = nb::dlpack::dtype_code;
  Code code = Code::UInt;
  if (dtype == DType::bf16) {
    code = Code::Bfloat;
  } else if (dtype_is_float(dtype)) {
    code = Code::Float;
  } else if (dtype_name(dtype)[0] == 'i') {
    code = Code::Int;
  }
  return {static_cast<uint8_t>(code), static_cast<uint8_t>(dtype_size(dtype) * 8), 1};
}

// A view of the buffer's memory whose owner is the Python Buffer object, so
// the memory lives as long as any view of it does.
template <class Framework>
nb::object memory_view(nb::handle self, DType as_dtype) {
  const Buffer& buffer = nb::cast<const Buffer&>(self);
  std::vector<size_t> shape(buffer.shape().begin(), buffer.shape().end());
  auto make = [&](auto readonly_tag) {
    using Tag = decltype(readonly_tag);
    using Array = std::conditional_t<std::is_same_v<Tag, std::true_type>, nb::ndarray<Framework, nb::ro>,
                                     nb::ndarray<Framework>>;
    return nb::cast(Array(buffer.data(), shape.size(), shape.data(), self, nullptr, dlpack_dtype(as_dtype)),
                    nb::rv_policy::reference);
  };
  return buffer.readonly() ? make(std::true_type{}) : make(std::false_type{});
}

nb::object to_numpy(nb::handle self) {
  const Buffer& buffer = nb::cast<const Buffer&>(self);
  if (buffer.dtype() != DType::bf16) return memory_view<nb::numpy>(self, buffer.dtype());
  // NumPy has no bfloat16 of its own; ml_dtypes provides the one JAX and
  // others use. The view is made on uint16 and reinterpreted.
  nb::object raw = memory_view<nb::numpy>(self, DType::u16);
  return raw.attr("view")(nb::module_::import_("ml_dtypes").attr("bfloat16"));
}

// Python objects held by C++ must be released with the GIL held.
std::shared_ptr<void> hold_python_object(nb::handle object) {
  object.inc_ref();
  return std::shared_ptr<void>(object.ptr(), [](void* ptr) {
    nb::gil_scoped_acquire gil;
    Py_DECREF(static_cast<PyObject*>(ptr));
  });
}

}  // namespace

void bind_buffer(nb::module_& m) {
  nb::class_<Buffer>(m, "Buffer",
                     "Host-visible memory shared with the device. NumPy sees it without a copy "
                     "(numpy.asarray(buffer) or numpy.from_dlpack(buffer)); the memory lives as long "
                     "as the buffer or any view of it.")
      .def_static(
          "empty",
          [](const Shape& shape, const std::string& dtype) { return Buffer::allocate(dtype_from_name(dtype), shape); },
          "shape"_a, "dtype"_a, "A fresh page-aligned buffer, uninitialised.")
      .def_static(
          "_wrap_bytes",
          [](nb::object array, const std::string& dtype,
             const Shape& shape, size_t required_alignment, bool readonly, bool source_is_copy) {
            using Bytes = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
            Bytes bytes;
            if (!nb::try_cast<Bytes>(array, bytes, /*convert=*/false)) {
              type_error("array: expected a 1-d C-contiguous uint8 array on the CPU");
            }
            const DType type = dtype_from_name(dtype);
            const size_t expected = static_cast<size_t>(shape_size(shape)) * dtype_size(type);
            if (bytes.size() != expected) {
              value_error("array: ", bytes.size(), " bytes do not hold ", shape_str(shape), " ", dtype,
                          " (", expected, " bytes)");
            }
            BufferPtr buffer = Buffer::wrap(const_cast<uint8_t*>(bytes.data()), type, shape,
                                            hold_python_object(array), required_alignment, readonly);
            if (source_is_copy) buffer->mark_copied();
            return buffer;
          },
          "array"_a, "dtype"_a, "shape"_a, "required_alignment"_a, "readonly"_a, "source_is_copy"_a,
          "Wrap the contiguous bytes of an array (used by qmetal.asbuffer).")
      .def_prop_ro("dtype", [](const Buffer& b) { return std::string(dtype_name(b.dtype())); })
      .def_prop_ro("shape", [](const Buffer& b) { return shape_tuple(b.shape()); })
      .def_prop_ro("ndim", [](const Buffer& b) { return b.shape().size(); })
      .def_prop_ro("size", &Buffer::size)
      .def_prop_ro("nbytes", &Buffer::nbytes)
      .def_prop_ro("address", [](const Buffer& b) { return reinterpret_cast<uintptr_t>(b.data()); },
                   "The address of the first byte (for checking zero-copy).")
      .def_prop_ro("copied", &Buffer::copied,
                   "True when wrapping an array had to copy it (it was not aligned enough).")
      .def_prop_ro("owns_memory", &Buffer::owns_memory)
      .def_prop_ro("readonly", &Buffer::readonly)
      .def("numpy", &to_numpy, "A NumPy view of the buffer (no copy).")
      .def(
          "__array__",
          [](nb::handle self, nb::object dtype, nb::object copy) {
            nb::object view = to_numpy(self);
            if (!copy.is_none() && nb::cast<bool>(copy)) view = view.attr("copy")();
            if (!dtype.is_none()) view = view.attr("astype")(dtype, "copy"_a = false);
            return view;
          },
          "dtype"_a = nb::none(), "copy"_a = nb::none())
      .def(
          "__dlpack__",
          [](nb::handle self, nb::kwargs kwargs) {
            // nanobind's array-API object makes the capsule (versioned when
            // the consumer asks, carrying the read-only flag); its owner is
            // this Buffer. Host memory on every backend, so `stream` is moot.
            const Buffer& buffer = nb::cast<const Buffer&>(self);
            return memory_view<nb::array_api>(self, buffer.dtype()).attr("__dlpack__")(**kwargs);
          },
          "kwargs"_a)
      .def("__dlpack_device__", [](nb::handle) { return nb::make_tuple(int(nb::device::cpu::value), 0); })
      .def("__len__",
           [](const Buffer& b) {
             if (b.shape().empty()) type_error("len() of a 0-d buffer");
             return b.shape()[0];
           })
      .def("__repr__", [](const Buffer& b) {
        return "qmetal.Buffer(shape=" + shape_str(b.shape()) + ", dtype=" + std::string(dtype_name(b.dtype())) +
               (b.copied() ? ", copied" : "") + ")";
      });
}

}  // namespace qmetal
