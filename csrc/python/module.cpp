// The qmetal._core extension: thin bindings over the C++ core. Argument
// checking lives in the core (errors translate to ValueError / TypeError);
// NumPy dtype mapping lives in python/qmetal/_dtypes.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "qmetal/ops.h"
#include "qmetal/qmetal.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace qmetal {
void bind_buffer(nb::module_& m);
void bind_device(nb::module_& m);
void bind_plan(nb::module_& m);
void bind_sim(nb::module_& m);
void bind_affine(nb::module_& m);
void bind_dwq(nb::module_& m);
void bind_ggml(nb::module_& m);
void bind_cuda(nb::module_& m);
}  // namespace qmetal

NB_MODULE(_core, m) {
  m.doc() = "qmetal core: buffers, devices and dispatch plans";
  qmetal::initialize();
  nb::register_exception_translator([](const std::exception_ptr& error, void*) {
    try {
      std::rethrow_exception(error);
    } catch (const qmetal::Error& e) {
      switch (e.kind()) {
        case qmetal::ErrorKind::value: PyErr_SetString(PyExc_ValueError, e.what()); break;
        case qmetal::ErrorKind::type: PyErr_SetString(PyExc_TypeError, e.what()); break;
        case qmetal::ErrorKind::runtime: PyErr_SetString(PyExc_RuntimeError, e.what()); break;
        case qmetal::ErrorKind::interrupted:
          // Python's SIGINT handler may have set it already (the poll ran it).
          if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
          break;
      }
    }
  });
  m.attr("__version__") = qmetal::version();
  m.def("page_size", &qmetal::page_size, "The host page size in bytes.");
  m.def("dtype_size", [](const std::string& name) { return qmetal::dtype_size(qmetal::dtype_from_name(name)); },
        "dtype"_a, "Bytes per element of a dtype given by name.");
  qmetal::bind_device(m);
  qmetal::bind_buffer(m);
  qmetal::bind_plan(m);
  qmetal::bind_sim(m);
  qmetal::bind_affine(m);
  qmetal::bind_dwq(m);
  qmetal::bind_ggml(m);
  qmetal::bind_cuda(m);
}
