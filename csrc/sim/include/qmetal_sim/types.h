// MSL scalar and vector types for the simulator: half is the compiler's
// _Float16; bfloat rounds to nearest even and, as in MSL, is only built from
// float explicitly; vectors have .x .y .z .w / .r .g .b .a, [] and
// component-wise operators, with 3-vectors the size of 4-vectors as in Metal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "qmetal_sim/abi.h"

namespace qmetal_sim {

namespace abi = ::qmetal::sim::abi;

// Set by the library entry point; every kernel reaches the runtime through it.
inline const abi::Runtime* runtime = nullptr;

#if defined(__has_builtin)
#if __has_builtin(__builtin_COLUMN)
#define QMETAL_SIM_COLUMN __builtin_COLUMN()
#endif
#endif
#ifndef QMETAL_SIM_COLUMN
#define QMETAL_SIM_COLUMN 0
#endif

// The call site of a barrier or collective, taken from default arguments so
// divergence reports name the .metal line.
struct Here {
  const char* file;
  unsigned line;
  unsigned column;
  constexpr Here(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE(), unsigned c = QMETAL_SIM_COLUMN)
      : file(f), line(l), column(c) {}
  abi::Site site(const char* op) const { return {file, line, column, op}; }
};

}  // namespace qmetal_sim

using half = _Float16;
using uchar = unsigned char;
using ushort = unsigned short;
using uint = unsigned int;
using ulong = unsigned long;
static_assert(sizeof(ulong) == 8, "MSL's ulong is 64 bits");

struct bfloat {
  uint16_t bits;

  bfloat() = default;
  explicit constexpr bfloat(float f) : bits(round(f)) {}
  template <class U, std::enable_if_t<std::is_arithmetic_v<U> || std::is_same_v<U, half>, int> = 0>
  explicit constexpr bfloat(U u) : bfloat(static_cast<float>(u)) {}
  constexpr operator float() const { return __builtin_bit_cast(float, uint32_t(bits) << 16); }
  // bfloat converts implicitly only to float (MSL spec 2.22). For `half h =
  // b` this exact (deleted) conversion beats float-then-half; templates are
  // not used for built-in operators, so `b == b` still compares as float.
  template <class U, std::enable_if_t<std::is_same_v<U, half>, int> = 0>
  operator U() const = delete;

  friend constexpr bfloat operator+(bfloat a, bfloat b) { return bfloat(float(a) + float(b)); }
  friend constexpr bfloat operator-(bfloat a, bfloat b) { return bfloat(float(a) - float(b)); }
  friend constexpr bfloat operator*(bfloat a, bfloat b) { return bfloat(float(a) * float(b)); }
  friend constexpr bfloat operator/(bfloat a, bfloat b) { return bfloat(float(a) / float(b)); }
  constexpr bfloat operator-() const { return from_bits(uint16_t(bits ^ 0x8000)); }
  constexpr bfloat& operator+=(bfloat b) { return *this = *this + b; }
  constexpr bfloat& operator-=(bfloat b) { return *this = *this - b; }
  constexpr bfloat& operator*=(bfloat b) { return *this = *this * b; }
  constexpr bfloat& operator/=(bfloat b) { return *this = *this / b; }

  static constexpr bfloat from_bits(uint16_t b) {
    bfloat r{};
    r.bits = b;
    return r;
  }

 private:
  static constexpr uint16_t round(float f) {
    uint32_t u = __builtin_bit_cast(uint32_t, f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN, quiet
    u += 0x7FFFu + ((u >> 16) & 1u);                                       // to nearest, ties to even
    return uint16_t(u >> 16);
  }
};

namespace qmetal_sim {

template <class T>
inline constexpr bool is_float_v =
    std::is_floating_point_v<T> || std::is_same_v<T, half> || std::is_same_v<T, bfloat>;
template <class T>
inline constexpr bool is_scalar_v = std::is_arithmetic_v<T> || is_float_v<T>;

// The unsigned integer as wide as T, for work on a float's bit pattern.
template <class T>
using bits_t = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

// Math on half and bfloat is done in float and rounded back.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<is_float_v<T>, float, T>>;

}  // namespace qmetal_sim

namespace metal {

template <class T, int N>
struct vec;

namespace detail {

template <class T, int N>
struct vec_storage;

template <class T>
struct alignas(2 * sizeof(T)) vec_storage<T, 2> {
  union {
    T data[2];
    struct { T x, y; };
    struct { T r, g; };
  };
};

template <class T>
struct alignas(4 * sizeof(T)) vec_storage<T, 3> {
  union {
    T data[3];
    struct { T x, y, z; };
    struct { T r, g, b; };
  };
};

template <class T>
struct alignas(4 * sizeof(T)) vec_storage<T, 4> {
  union {
    T data[4];
    struct { T x, y, z, w; };
    struct { T r, g, b, a; };
  };
};

template <class T>
struct components : std::integral_constant<int, 1> {};
template <class T, int N>
struct components<vec<T, N>> : std::integral_constant<int, N> {};

}  // namespace detail

template <class T>
struct is_vector : std::false_type {};
template <class T, int N>
struct is_vector<vec<T, N>> : std::true_type {};
template <class T>
inline constexpr bool is_vector_v = is_vector<T>::value;

template <class T, int N>
struct vec : detail::vec_storage<T, N> {
  static_assert(N >= 2 && N <= 4, "MSL vectors have 2, 3 or 4 components");
  using value_type = T;
  static constexpr int size = N;

  vec() = default;

  // A scalar fills every component (MSL converts scalars to vectors).
  template <class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0>
  vec(U s) {
    for (int i = 0; i < N; ++i) this->data[i] = T(s);
  }

  // Components from scalars and shorter vectors, e.g. float4(v.x, v.y, 0, 1).
  template <class A, class B, class... R>
  vec(const A& a, const B& b, const R&... rest) {
    static_assert(detail::components<A>::value + detail::components<B>::value +
                          (0 + ... + detail::components<R>::value) == N,
                  "component count does not match the vector size");
    int i = 0;
    put(i, a);
    put(i, b);
    (put(i, rest), ...);
  }

  // Conversions between element types are explicit, as in MSL.
  template <class U>
  explicit vec(const vec<U, N>& other) {
    for (int i = 0; i < N; ++i) this->data[i] = T(other[i]);
  }

  T& operator[](int i) { return this->data[i]; }
  const T& operator[](int i) const { return this->data[i]; }

 private:
  template <class U>
  void put(int& i, const U& s) {
    if constexpr (is_vector_v<U>) {
      for (int k = 0; k < U::size; ++k) this->data[i++] = T(s[k]);
    } else {
      this->data[i++] = T(s);
    }
  }
};

#define QMETAL_SIM_VEC_BINARY(op)                                                      \
  template <class T, int N>                                                            \
  vec<T, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {                      \
    vec<T, N> r;                                                                       \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op b[i]);                                \
    return r;                                                                          \
  }                                                                                    \
  template <class T, int N, class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0> \
  vec<T, N> operator op(const vec<T, N>& a, U b) {                                     \
    vec<T, N> r;                                                                       \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op T(b));                                \
    return r;                                                                          \
  }                                                                                    \
  template <class T, int N, class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0> \
  vec<T, N> operator op(U a, const vec<T, N>& b) {                                     \
    vec<T, N> r;                                                                       \
    for (int i = 0; i < N; ++i) r[i] = T(T(a) op b[i]);                                \
    return r;                                                                          \
  }                                                                                    \
  template <class T, int N>                                                            \
  vec<T, N>& operator op##=(vec<T, N>& a, const vec<T, N>& b) {                        \
    return a = a op b;                                                                 \
  }                                                                                    \
  template <class T, int N, class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0> \
  vec<T, N>& operator op##=(vec<T, N>& a, U b) {                                       \
    return a = a op b;                                                                 \
  }

QMETAL_SIM_VEC_BINARY(+)
QMETAL_SIM_VEC_BINARY(-)
QMETAL_SIM_VEC_BINARY(*)
QMETAL_SIM_VEC_BINARY(/)
QMETAL_SIM_VEC_BINARY(%)
QMETAL_SIM_VEC_BINARY(&)
QMETAL_SIM_VEC_BINARY(|)
QMETAL_SIM_VEC_BINARY(^)
QMETAL_SIM_VEC_BINARY(<<)
QMETAL_SIM_VEC_BINARY(>>)
#undef QMETAL_SIM_VEC_BINARY

#define QMETAL_SIM_VEC_COMPARE(op)                                                     \
  template <class T, int N>                                                            \
  vec<bool, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {                   \
    vec<bool, N> r;                                                                    \
    for (int i = 0; i < N; ++i) r[i] = a[i] op b[i];                                   \
    return r;                                                                          \
  }                                                                                    \
  template <class T, int N, class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0> \
  vec<bool, N> operator op(const vec<T, N>& a, U b) {                                  \
    return a op vec<T, N>(b);                                                          \
  }                                                                                    \
  template <class T, int N, class U, std::enable_if_t<qmetal_sim::is_scalar_v<U>, int> = 0> \
  vec<bool, N> operator op(U a, const vec<T, N>& b) {                                  \
    return vec<T, N>(a) op b;                                                          \
  }

QMETAL_SIM_VEC_COMPARE(==)
QMETAL_SIM_VEC_COMPARE(!=)
QMETAL_SIM_VEC_COMPARE(<)
QMETAL_SIM_VEC_COMPARE(<=)
QMETAL_SIM_VEC_COMPARE(>)
QMETAL_SIM_VEC_COMPARE(>=)
QMETAL_SIM_VEC_COMPARE(&&)
QMETAL_SIM_VEC_COMPARE(||)
#undef QMETAL_SIM_VEC_COMPARE

template <class T, int N>
vec<T, N> operator-(const vec<T, N>& a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = T(-a[i]);
  return r;
}
template <class T, int N>
vec<T, N> operator+(const vec<T, N>& a) {
  return a;
}
template <class T, int N>
vec<T, N> operator~(const vec<T, N>& a) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = T(~a[i]);
  return r;
}
template <class T, int N>
vec<bool, N> operator!(const vec<T, N>& a) {
  vec<bool, N> r;
  for (int i = 0; i < N; ++i) r[i] = !a[i];
  return r;
}

template <int N>
bool all(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (!v[i]) return false;
  return true;
}
template <int N>
bool any(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (v[i]) return true;
  return false;
}
inline bool all(bool b) { return b; }
inline bool any(bool b) { return b; }

// as_type<T>(x): reinterpret the bits; sizes must match.
template <class T, class U>
constexpr T as_type(const U& u) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of the same size");
  return __builtin_bit_cast(T, u);
}

// numeric_limits, extended to half and bfloat.
template <class T>
struct numeric_limits : std::numeric_limits<T> {};

// Their members are constexpr, as in MSL (MLX's Limits<half> needs that).
template <>
struct numeric_limits<half> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 11;
  static constexpr half min() { return __builtin_bit_cast(half, uint16_t(0x0400)); }
  static constexpr half max() { return __builtin_bit_cast(half, uint16_t(0x7BFF)); }
  static constexpr half lowest() { return __builtin_bit_cast(half, uint16_t(0xFBFF)); }
  static constexpr half epsilon() { return __builtin_bit_cast(half, uint16_t(0x1400)); }
  static constexpr half infinity() { return __builtin_bit_cast(half, uint16_t(0x7C00)); }
  static constexpr half quiet_NaN() { return __builtin_bit_cast(half, uint16_t(0x7E00)); }
  static constexpr half denorm_min() { return __builtin_bit_cast(half, uint16_t(0x0001)); }
};

template <>
struct numeric_limits<bfloat> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 8;
  static constexpr bfloat min() { return bfloat::from_bits(0x0080); }
  static constexpr bfloat max() { return bfloat::from_bits(0x7F7F); }
  static constexpr bfloat lowest() { return bfloat::from_bits(0xFF7F); }
  static constexpr bfloat epsilon() { return bfloat::from_bits(0x3C00); }
  static constexpr bfloat infinity() { return bfloat::from_bits(0x7F80); }
  static constexpr bfloat quiet_NaN() { return bfloat::from_bits(0x7FC0); }
  static constexpr bfloat denorm_min() { return bfloat::from_bits(0x0001); }
};

// The <metal_type_traits> subset kernels use.
using std::bool_constant;
using std::conditional;
using std::conditional_t;
using std::decay;
using std::decay_t;
using std::enable_if;
using std::enable_if_t;
using std::false_type;
using std::integral_constant;
using std::is_const;
using std::is_const_v;
using std::is_convertible;
using std::is_convertible_v;
using std::is_integral;
using std::is_integral_v;
using std::is_pointer;
using std::is_pointer_v;
using std::is_same;
using std::is_same_v;
using std::is_signed;
using std::is_signed_v;
using std::is_unsigned;
using std::is_unsigned_v;
using std::make_signed;
using std::make_signed_t;
using std::make_unsigned;
using std::make_unsigned_t;
using std::remove_const;
using std::remove_const_t;
using std::remove_cv;
using std::remove_cv_t;
using std::remove_reference;
using std::remove_reference_t;
using std::true_type;
// The simulator has no address spaces in types: removing one is the identity.
template <class T>
struct remove_addrspace {
  using type = T;
};
template <class T>
using remove_addrspace_t = typename remove_addrspace<T>::type;
template <class T>
struct is_floating_point : std::bool_constant<qmetal_sim::is_float_v<std::remove_cv_t<T>>> {};
template <class T>
inline constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T>
struct is_arithmetic : std::bool_constant<qmetal_sim::is_scalar_v<std::remove_cv_t<T>>> {};
template <class T>
inline constexpr bool is_arithmetic_v = is_arithmetic<T>::value;
template <class T>
struct is_scalar : is_arithmetic<T> {};
template <class T>
inline constexpr bool is_scalar_v = is_scalar<T>::value;

}  // namespace metal

// Scalars and vectors are visible without `using namespace metal`, as in MSL.
using metal::vec;
#define QMETAL_SIM_VEC_NAMES(T, name) \
  using name##2 = metal::vec<T, 2>;   \
  using name##3 = metal::vec<T, 3>;   \
  using name##4 = metal::vec<T, 4>;
QMETAL_SIM_VEC_NAMES(bool, bool)
QMETAL_SIM_VEC_NAMES(char, char)
QMETAL_SIM_VEC_NAMES(uchar, uchar)
QMETAL_SIM_VEC_NAMES(short, short)
QMETAL_SIM_VEC_NAMES(ushort, ushort)
QMETAL_SIM_VEC_NAMES(int, int)
QMETAL_SIM_VEC_NAMES(uint, uint)
QMETAL_SIM_VEC_NAMES(long, long)
QMETAL_SIM_VEC_NAMES(ulong, ulong)
QMETAL_SIM_VEC_NAMES(half, half)
QMETAL_SIM_VEC_NAMES(bfloat, bfloat)
QMETAL_SIM_VEC_NAMES(float, float)
#undef QMETAL_SIM_VEC_NAMES
