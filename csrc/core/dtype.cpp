#include "qmetal/dtype.h"

#include <string>

#include "qmetal/error.h"

namespace qmetal {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
  bool is_float;
};

constexpr DTypeInfo kDTypes[] = {
#define QMETAL_DTYPE_INFO(e, name, size, is_float) {DType::e, name, size, is_float},
    QMETAL_DTYPES(QMETAL_DTYPE_INFO)
#undef QMETAL_DTYPE_INFO
};

const DTypeInfo& info(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
bool dtype_is_float(DType dtype) { return info(dtype).is_float; }

DType dtype_from_name(std::string_view name) {
  std::string known;
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
    known += known.empty() ? "" : ", ";
    known += entry.name;
  }
  type_error("dtype: expected one of ", known, ", got '", std::string(name), "'");
}

}  // namespace qmetal
