// Element types of buffers. One table (QMETAL_DTYPES) drives names, sizes and
// lookups so that adding a type touches one line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qmetal {

// X(enumerator, name as NumPy/MLX spell it, size in bytes, is floating point)
#define QMETAL_DTYPES(X)          \
  X(f32, "float32", 4, true)      \
  X(f16, "float16", 2, true)      \
  X(bf16, "bfloat16", 2, true)    \
  X(i8, "int8", 1, false)         \
  X(u8, "uint8", 1, false)        \
  X(i16, "int16", 2, false)       \
  X(u16, "uint16", 2, false)      \
  X(i32, "int32", 4, false)       \
  X(u32, "uint32", 4, false)      \
  X(i64, "int64", 8, false)       \
  X(u64, "uint64", 8, false)

enum class DType : uint8_t {
#define QMETAL_DTYPE_ENUM(e, name, size, is_float) e,
  QMETAL_DTYPES(QMETAL_DTYPE_ENUM)
#undef QMETAL_DTYPE_ENUM
};

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
bool dtype_is_float(DType dtype);
// Throws a TypeError listing the known names when `name` is not one of them.
DType dtype_from_name(std::string_view name);

}  // namespace qmetal
