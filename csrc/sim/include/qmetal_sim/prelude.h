// Everything a .metal file sees when the simulator compiles it as C++: the
// MSL types and library, the glue the generator's entry points use, and last
// the address-space and function qualifiers, which compile to nothing (the
// generator has already turned `threadgroup` variable declarations into
// per-threadgroup storage).
#pragma once

#include "qmetal_sim/atomic.h"
#include "qmetal_sim/builtins.h"
#include "qmetal_sim/math.h"
#include "qmetal_sim/simd.h"
#include "qmetal_sim/types.h"

namespace qmetal_sim {

template <class T>
constexpr uint32_t value_kind() {
  if constexpr (std::is_same_v<T, bool>) return abi::kBool;
  else if constexpr (std::is_same_v<T, bfloat>) return abi::kBfloat;
  else if constexpr (is_float_v<T>) return abi::kFloat;
  else if constexpr (std::is_signed_v<T>) return abi::kSigned;
  else return abi::kUnsigned;
}

// [[function_constant(index)]] values of the running launch.
template <class T>
T function_constant(uint32_t index) {
  static_assert(is_scalar_v<T>, "function constants are scalars here");
  T value{};
  runtime->function_constant(index, value_kind<T>(), &value, sizeof value);
  return value;
}

template <class T>
bool function_constant_defined(uint32_t index) {
  T value{};
  return runtime->function_constant(index, value_kind<T>(), &value, sizeof value);
}

// Kernel arguments, converted to whatever the kernel's parameter declares.
struct BufferArg {
  void* pointer;
  template <class T>
  operator T*() const {
    return static_cast<T*>(pointer);
  }
  template <class T, std::enable_if_t<!std::is_pointer_v<T>, int> = 0>
  operator T&() const {
    return *static_cast<T*>(pointer);
  }
};

struct ThreadgroupArg {
  void* pointer;
  template <class T>
  operator T*() const {
    return static_cast<T*>(pointer);
  }
};

struct PositionArg {
  abi::Uint3 value;
  template <class T>
  operator T() const {
    if constexpr (metal::is_vector_v<T>) {
      using E = typename T::value_type;
      const E all[3] = {E(value.x), E(value.y), E(value.z)};
      T r;
      for (int i = 0; i < T::size; ++i) r[i] = all[i];
      return r;
    } else {
      return T(value.x);
    }
  }
};

inline PositionArg position(const abi::Uint3& v) { return {v}; }
inline PositionArg position(uint32_t v) { return {{v, 0, 0}}; }

// What the launcher checks of each kernel parameter before a run: the bytes
// a reference (a `constant` struct) needs, and whether the kernel may write
// through a pointer or reference (not const; `constant` compiles as const).
template <size_t N>
struct ParameterTable {
  uint32_t min_bytes[N > 0 ? N : 1];
  uint8_t writable[N > 0 ? N : 1];
};

template <class P>
constexpr uint32_t parameter_min_bytes() {
  if constexpr (std::is_reference_v<P>) return uint32_t(sizeof(std::remove_reference_t<P>));
  else return 0;
}

template <class P>
constexpr uint8_t parameter_writable() {
  if constexpr (std::is_reference_v<P>) return !std::is_const_v<std::remove_reference_t<P>>;
  else if constexpr (std::is_pointer_v<P>) return !std::is_const_v<std::remove_pointer_t<P>>;
  else return 0;
}

template <class R, class... P>
constexpr ParameterTable<sizeof...(P)> parameter_table(R (*)(P...)) {
  return {{parameter_min_bytes<P>()...}, {parameter_writable<P>()...}};
}

}  // namespace qmetal_sim

template <class FunctionConstant>
bool is_function_constant_defined(const FunctionConstant& constant) {
  return constant.defined();
}

#define kernel
#define device
#define constant
#define thread
#define threadgroup
#define threadgroup_imageblock
