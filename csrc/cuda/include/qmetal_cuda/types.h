// MSL scalar and vector types on the CUDA target. The same meaning as the
// simulator's (csrc/sim/include/qmetal_sim/types.h), which these follow
// member for member; where the two must differ:
//   * half: the simulator uses the compiler's _Float16, which nvcc cannot
//     generate device code for ("unsupported float variant"). Here it is a
//     class over the 16-bit pattern with _Float16's conversions spelled out
//     (half op half and half op integer give half, half op float gives
//     float; float and integers convert to half implicitly, bfloat only
//     explicitly), converting with the hardware's cvt instructions and
//     computing in float, which rounds + - * / exactly as native half
//     arithmetic does (float has 2 * 11 + 2 significand bits).
//   * every function carries an execution space (__device__, or
//     __host__ __device__ where constant expressions use it).
#pragma once

#include "qmetal_cuda/config.h"

using uchar = unsigned char;
using ushort = unsigned short;
using uint = unsigned int;
using ulong = unsigned long;
static_assert(sizeof(ulong) == 8, "MSL's ulong is 64 bits");

struct bfloat;

namespace qmetal_cuda {

// Round-to-nearest-even float -> half in software, for constant expressions.
QMETAL_CUDA_HD constexpr uint16_t float_to_half_soft(float f) {
  const uint32_t u = __builtin_bit_cast(uint32_t, f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u);        // NaN
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);       // rounds to infinity
  if (a < 0x38800000u) {                                       // subnormal or zero
    if (a < 0x33000000u) return uint16_t(sign);                // below half the smallest subnormal
    const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - int(a >> 23) + 14 - 1;             // to the 10-bit subnormal significand
    const uint32_t q = mant >> (shift + 1), rest = mant & ((2u << shift) - 1u), half_ulp = 1u << shift;
    return uint16_t(sign | (q + (rest > half_ulp || (rest == half_ulp && (q & 1u)))));
  }
  const uint32_t q = ((a - 0x38000000u) >> 13), rest = a & 0x1FFFu;
  return uint16_t(sign | (q + (rest > 0x1000u || (rest == 0x1000u && (q & 1u)))));
}

QMETAL_CUDA_HD constexpr float half_to_float_soft(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0x1F) return __builtin_bit_cast(float, sign | 0x7F800000u | (m << 13));
  if (e != 0) return __builtin_bit_cast(float, sign | ((e + 112u) << 23) | (m << 13));
  // subnormal: m * 2^-24, exact in float
  const float v = float(m) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

}  // namespace qmetal_cuda

struct half {
  uint16_t bits;

  half() = default;
  QMETAL_CUDA_HD constexpr half(float f) : bits(convert(f)) {}
  template <class U, std::enable_if_t<std::is_integral_v<U> || std::is_same_v<U, double>, int> = 0>
  QMETAL_CUDA_HD constexpr half(U u) : half(static_cast<float>(u)) {}
  QMETAL_CUDA_HD explicit constexpr half(bfloat b);
  QMETAL_CUDA_HD constexpr operator float() const {
#ifdef __CUDA_ARCH__
    if (!__builtin_is_constant_evaluated()) return qmetal_cuda::hw::half_bits_to_float(bits);
#endif
    return qmetal_cuda::half_to_float_soft(bits);
  }

  static QMETAL_CUDA_HD constexpr half from_bits(uint16_t b) {
    half h{};
    h.bits = b;
    return h;
  }
  QMETAL_CUDA_HD constexpr half operator-() const { return from_bits(uint16_t(bits ^ 0x8000u)); }
  QMETAL_CUDA_HD constexpr half operator+() const { return *this; }
  QMETAL_CUDA_HD half& operator++() { return *this = half(float(*this) + 1.0f); }
  QMETAL_CUDA_HD half& operator--() { return *this = half(float(*this) - 1.0f); }
  QMETAL_CUDA_HD half operator++(int) { half old = *this; ++*this; return old; }
  QMETAL_CUDA_HD half operator--(int) { half old = *this; --*this; return old; }

 private:
  static QMETAL_CUDA_HD constexpr uint16_t convert(float f) {
#ifdef __CUDA_ARCH__
    if (!__builtin_is_constant_evaluated()) return qmetal_cuda::hw::float_to_half_bits(f);
#endif
    return qmetal_cuda::float_to_half_soft(f);
  }
};

// _Float16's usual arithmetic conversions. The half operand is a deduced
// template parameter (H = half exactly), so that no other type reaches
// these through a conversion (bfloat's deleted conversion to half would
// otherwise make bfloat * float ambiguous).
template <class H>
using if_half = std::enable_if_t<std::is_same_v<H, half>, int>;
template <class H, class U>
using if_half_int = std::enable_if_t<std::is_same_v<H, half> && std::is_integral_v<U>, int>;
template <class H, class U>
using if_half_arith = std::enable_if_t<std::is_same_v<H, half> && std::is_arithmetic_v<U>, int>;
#define QMETAL_CUDA_HALF_ARITH(op)                                                                          \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD constexpr half operator op(H a, H b) { return half(float(a) op float(b)); }                \
  template <class H, class U, if_half_int<H, U> = 0>                                                        \
  QMETAL_CUDA_HD constexpr half operator op(H a, U b) { return half(float(a) op float(half(b))); }          \
  template <class H, class U, if_half_int<H, U> = 0>                                                        \
  QMETAL_CUDA_HD constexpr half operator op(U a, H b) { return half(float(half(a)) op float(b)); }          \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD constexpr float operator op(H a, float b) { return float(a) op b; }                        \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD constexpr float operator op(float a, H b) { return a op float(b); }                        \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD constexpr double operator op(H a, double b) { return double(float(a)) op b; }              \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD constexpr double operator op(double a, H b) { return a op double(float(b)); }              \
  template <class H, if_half<H> = 0>                                                                        \
  QMETAL_CUDA_HD H& operator op##=(H& a, H b) { return a = a op b; }                                        \
  template <class H, class U, if_half_arith<H, U> = 0>                                                      \
  QMETAL_CUDA_HD H& operator op##=(H& a, U b) { return a = half(a op b); }
QMETAL_CUDA_HALF_ARITH(+)
QMETAL_CUDA_HALF_ARITH(-)
QMETAL_CUDA_HALF_ARITH(*)
QMETAL_CUDA_HALF_ARITH(/)
#undef QMETAL_CUDA_HALF_ARITH

#define QMETAL_CUDA_HALF_COMPARE(op)                                                                         \
  template <class H, if_half<H> = 0>                                                                         \
  QMETAL_CUDA_HD constexpr bool operator op(H a, H b) { return float(a) op float(b); }                       \
  template <class H, class U, if_half_arith<H, U> = 0>                                                       \
  QMETAL_CUDA_HD constexpr bool operator op(H a, U b) { return float(a) op b; }                              \
  template <class H, class U, if_half_arith<H, U> = 0>                                                       \
  QMETAL_CUDA_HD constexpr bool operator op(U a, H b) { return a op float(b); }
QMETAL_CUDA_HALF_COMPARE(==)
QMETAL_CUDA_HALF_COMPARE(!=)
QMETAL_CUDA_HALF_COMPARE(<)
QMETAL_CUDA_HALF_COMPARE(<=)
QMETAL_CUDA_HALF_COMPARE(>)
QMETAL_CUDA_HALF_COMPARE(>=)
#undef QMETAL_CUDA_HALF_COMPARE

// bfloat: as the simulator's (rounds to nearest even; built from float only
// explicitly; converts implicitly only to float, MSL spec 2.22).
struct bfloat {
  uint16_t bits;

  bfloat() = default;
  QMETAL_CUDA_HD explicit constexpr bfloat(float f) : bits(round(f)) {}
  template <class U, std::enable_if_t<std::is_arithmetic_v<U> || std::is_same_v<U, half>, int> = 0>
  QMETAL_CUDA_HD explicit constexpr bfloat(U u) : bfloat(static_cast<float>(u)) {}
  QMETAL_CUDA_HD constexpr operator float() const { return __builtin_bit_cast(float, uint32_t(bits) << 16); }
  template <class U, std::enable_if_t<std::is_same_v<U, half>, int> = 0>
  operator U() const = delete;

  friend QMETAL_CUDA_HD constexpr bfloat operator+(bfloat a, bfloat b) { return bfloat(float(a) + float(b)); }
  friend QMETAL_CUDA_HD constexpr bfloat operator-(bfloat a, bfloat b) { return bfloat(float(a) - float(b)); }
  friend QMETAL_CUDA_HD constexpr bfloat operator*(bfloat a, bfloat b) { return bfloat(float(a) * float(b)); }
  friend QMETAL_CUDA_HD constexpr bfloat operator/(bfloat a, bfloat b) { return bfloat(float(a) / float(b)); }
  QMETAL_CUDA_HD constexpr bfloat operator-() const { return from_bits(uint16_t(bits ^ 0x8000)); }
  QMETAL_CUDA_HD constexpr bfloat& operator+=(bfloat b) { return *this = *this + b; }
  QMETAL_CUDA_HD constexpr bfloat& operator-=(bfloat b) { return *this = *this - b; }
  QMETAL_CUDA_HD constexpr bfloat& operator*=(bfloat b) { return *this = *this * b; }
  QMETAL_CUDA_HD constexpr bfloat& operator/=(bfloat b) { return *this = *this / b; }

  static QMETAL_CUDA_HD constexpr bfloat from_bits(uint16_t b) {
    bfloat r{};
    r.bits = b;
    return r;
  }

 private:
  static QMETAL_CUDA_HD constexpr uint16_t round(float f) {
    uint32_t u = __builtin_bit_cast(uint32_t, f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN, quiet
    u += 0x7FFFu + ((u >> 16) & 1u);                                       // to nearest, ties to even
    return uint16_t(u >> 16);
  }
};

QMETAL_CUDA_HD constexpr half::half(bfloat b) : half(float(b)) {}

namespace qmetal_cuda {

template <class T>
inline constexpr bool is_float_v =
    std::is_floating_point_v<T> || std::is_same_v<T, half> || std::is_same_v<T, bfloat>;
template <class T>
inline constexpr bool is_scalar_v = std::is_arithmetic_v<T> || is_float_v<T>;

template <class T>
using bits_t = std::conditional_t<sizeof(T) == 1, uint8_t,
                                  std::conditional_t<sizeof(T) == 2, uint16_t,
                                                     std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;

// Math on half and bfloat is done in float and rounded back.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<is_float_v<T>, float, T>>;

}  // namespace qmetal_cuda

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

  template <class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>
  QMETAL_CUDA_HD vec(U s) {
#pragma unroll
    for (int i = 0; i < N; ++i) this->data[i] = T(s);
  }

  template <class A, class B, class... R>
  QMETAL_CUDA_HD vec(const A& a, const B& b, const R&... rest) {
    static_assert(detail::components<A>::value + detail::components<B>::value +
                          (0 + ... + detail::components<R>::value) == N,
                  "component count does not match the vector size");
    int i = 0;
    put(i, a);
    put(i, b);
    (put(i, rest), ...);
  }

  template <class U>
  QMETAL_CUDA_HD explicit vec(const vec<U, N>& other) {
    // Copied whole first: one aligned vector load from device memory, where
    // converting component by component read each with its own load.
    const vec<U, N> whole = other;
#pragma unroll
    for (int i = 0; i < N; ++i) this->data[i] = T(whole[i]);
  }

  QMETAL_CUDA_HD T& operator[](int i) { return this->data[i]; }
  QMETAL_CUDA_HD const T& operator[](int i) const { return this->data[i]; }

 private:
  template <class U>
  QMETAL_CUDA_HD void put(int& i, const U& s) {
    if constexpr (is_vector_v<U>) {
#pragma unroll
      for (int k = 0; k < U::size; ++k) this->data[i++] = T(s[k]);
    } else {
      this->data[i++] = T(s);
    }
  }
};

#define QMETAL_CUDA_VEC_BINARY(op)                                                                    \
  template <class T, int N>                                                                           \
  QMETAL_CUDA_HD vec<T, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {                      \
    vec<T, N> r;                                                                                      \
    _Pragma("unroll") for (int i = 0; i < N; ++i) r[i] = T(a[i] op b[i]);                             \
    return r;                                                                                         \
  }                                                                                                   \
  template <class T, int N, class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>          \
  QMETAL_CUDA_HD vec<T, N> operator op(const vec<T, N>& a, U b) {                                     \
    vec<T, N> r;                                                                                      \
    _Pragma("unroll") for (int i = 0; i < N; ++i) r[i] = T(a[i] op T(b));                             \
    return r;                                                                                         \
  }                                                                                                   \
  template <class T, int N, class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>          \
  QMETAL_CUDA_HD vec<T, N> operator op(U a, const vec<T, N>& b) {                                     \
    vec<T, N> r;                                                                                      \
    _Pragma("unroll") for (int i = 0; i < N; ++i) r[i] = T(T(a) op b[i]);                             \
    return r;                                                                                         \
  }                                                                                                   \
  template <class T, int N>                                                                           \
  QMETAL_CUDA_HD vec<T, N>& operator op##=(vec<T, N>& a, const vec<T, N>& b) {                        \
    return a = a op b;                                                                                \
  }                                                                                                   \
  template <class T, int N, class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>          \
  QMETAL_CUDA_HD vec<T, N>& operator op##=(vec<T, N>& a, U b) {                                       \
    return a = a op b;                                                                                \
  }

QMETAL_CUDA_VEC_BINARY(+)
QMETAL_CUDA_VEC_BINARY(-)
QMETAL_CUDA_VEC_BINARY(*)
QMETAL_CUDA_VEC_BINARY(/)
QMETAL_CUDA_VEC_BINARY(%)
QMETAL_CUDA_VEC_BINARY(&)
QMETAL_CUDA_VEC_BINARY(|)
QMETAL_CUDA_VEC_BINARY(^)
QMETAL_CUDA_VEC_BINARY(<<)
QMETAL_CUDA_VEC_BINARY(>>)
#undef QMETAL_CUDA_VEC_BINARY

#define QMETAL_CUDA_VEC_COMPARE(op)                                                                   \
  template <class T, int N>                                                                           \
  QMETAL_CUDA_HD vec<bool, N> operator op(const vec<T, N>& a, const vec<T, N>& b) {                   \
    vec<bool, N> r;                                                                                   \
    _Pragma("unroll") for (int i = 0; i < N; ++i) r[i] = a[i] op b[i];                                \
    return r;                                                                                         \
  }                                                                                                   \
  template <class T, int N, class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>          \
  QMETAL_CUDA_HD vec<bool, N> operator op(const vec<T, N>& a, U b) {                                  \
    return a op vec<T, N>(b);                                                                         \
  }                                                                                                   \
  template <class T, int N, class U, std::enable_if_t<qmetal_cuda::is_scalar_v<U>, int> = 0>          \
  QMETAL_CUDA_HD vec<bool, N> operator op(U a, const vec<T, N>& b) {                                  \
    return vec<T, N>(a) op b;                                                                         \
  }

QMETAL_CUDA_VEC_COMPARE(==)
QMETAL_CUDA_VEC_COMPARE(!=)
QMETAL_CUDA_VEC_COMPARE(<)
QMETAL_CUDA_VEC_COMPARE(<=)
QMETAL_CUDA_VEC_COMPARE(>)
QMETAL_CUDA_VEC_COMPARE(>=)
QMETAL_CUDA_VEC_COMPARE(&&)
QMETAL_CUDA_VEC_COMPARE(||)
#undef QMETAL_CUDA_VEC_COMPARE

template <class T, int N>
QMETAL_CUDA_HD vec<T, N> operator-(const vec<T, N>& a) {
  vec<T, N> r;
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = T(-a[i]);
  return r;
}
template <class T, int N>
QMETAL_CUDA_HD vec<T, N> operator+(const vec<T, N>& a) {
  return a;
}
template <class T, int N>
QMETAL_CUDA_HD vec<T, N> operator~(const vec<T, N>& a) {
  vec<T, N> r;
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = T(~a[i]);
  return r;
}
template <class T, int N>
QMETAL_CUDA_HD vec<bool, N> operator!(const vec<T, N>& a) {
  vec<bool, N> r;
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = !a[i];
  return r;
}

template <int N>
QMETAL_CUDA_HD bool all(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (!v[i]) return false;
  return true;
}
template <int N>
QMETAL_CUDA_HD bool any(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (v[i]) return true;
  return false;
}
QMETAL_CUDA_HD bool all(bool b) { return b; }
QMETAL_CUDA_HD bool any(bool b) { return b; }

template <class T, class U>
QMETAL_CUDA_HD constexpr T as_type(const U& u) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of the same size");
  return __builtin_bit_cast(T, u);
}

template <class T>
struct numeric_limits : std::numeric_limits<T> {};

template <>
struct numeric_limits<half> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 11;
  static QMETAL_CUDA_HD constexpr half min() { return half::from_bits(0x0400); }
  static QMETAL_CUDA_HD constexpr half max() { return half::from_bits(0x7BFF); }
  static QMETAL_CUDA_HD constexpr half lowest() { return half::from_bits(0xFBFF); }
  static QMETAL_CUDA_HD constexpr half epsilon() { return half::from_bits(0x1400); }
  static QMETAL_CUDA_HD constexpr half infinity() { return half::from_bits(0x7C00); }
  static QMETAL_CUDA_HD constexpr half quiet_NaN() { return half::from_bits(0x7E00); }
  static QMETAL_CUDA_HD constexpr half denorm_min() { return half::from_bits(0x0001); }
};

template <>
struct numeric_limits<bfloat> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 8;
  static QMETAL_CUDA_HD constexpr bfloat min() { return bfloat::from_bits(0x0080); }
  static QMETAL_CUDA_HD constexpr bfloat max() { return bfloat::from_bits(0x7F7F); }
  static QMETAL_CUDA_HD constexpr bfloat lowest() { return bfloat::from_bits(0xFF7F); }
  static QMETAL_CUDA_HD constexpr bfloat epsilon() { return bfloat::from_bits(0x3C00); }
  static QMETAL_CUDA_HD constexpr bfloat infinity() { return bfloat::from_bits(0x7F80); }
  static QMETAL_CUDA_HD constexpr bfloat quiet_NaN() { return bfloat::from_bits(0x7FC0); }
  static QMETAL_CUDA_HD constexpr bfloat denorm_min() { return bfloat::from_bits(0x0001); }
};

// The <metal_type_traits> subset kernels use (as the simulator's).
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
template <class T>
struct remove_addrspace {
  using type = T;
};
template <class T>
using remove_addrspace_t = typename remove_addrspace<T>::type;
template <class T>
struct is_floating_point : std::bool_constant<qmetal_cuda::is_float_v<std::remove_cv_t<T>>> {};
template <class T>
inline constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T>
struct is_arithmetic : std::bool_constant<qmetal_cuda::is_scalar_v<std::remove_cv_t<T>>> {};
template <class T>
inline constexpr bool is_arithmetic_v = is_arithmetic<T>::value;
template <class T>
struct is_scalar : is_arithmetic<T> {};
template <class T>
inline constexpr bool is_scalar_v = is_scalar<T>::value;

}  // namespace metal

using metal::vec;
// MSL's vector names. CUDA's own headers (which nvcc includes before any
// source) already define char2 ... float4 as plain structs, so the MSL names
// are macros for types of this shim's own names; the simulator declares them
// directly.
#define QMETAL_CUDA_VEC_NAMES(T, name)          \
  using qmetal_##name##2 = metal::vec<T, 2>;    \
  using qmetal_##name##3 = metal::vec<T, 3>;    \
  using qmetal_##name##4 = metal::vec<T, 4>;
QMETAL_CUDA_VEC_NAMES(bool, bool)
QMETAL_CUDA_VEC_NAMES(char, char)
QMETAL_CUDA_VEC_NAMES(uchar, uchar)
QMETAL_CUDA_VEC_NAMES(short, short)
QMETAL_CUDA_VEC_NAMES(ushort, ushort)
QMETAL_CUDA_VEC_NAMES(int, int)
QMETAL_CUDA_VEC_NAMES(uint, uint)
QMETAL_CUDA_VEC_NAMES(long, long)
QMETAL_CUDA_VEC_NAMES(ulong, ulong)
QMETAL_CUDA_VEC_NAMES(half, half)
QMETAL_CUDA_VEC_NAMES(bfloat, bfloat)
QMETAL_CUDA_VEC_NAMES(float, float)
#undef QMETAL_CUDA_VEC_NAMES
#define bool2 qmetal_bool2
#define bool3 qmetal_bool3
#define bool4 qmetal_bool4
#define char2 qmetal_char2
#define char3 qmetal_char3
#define char4 qmetal_char4
#define uchar2 qmetal_uchar2
#define uchar3 qmetal_uchar3
#define uchar4 qmetal_uchar4
#define short2 qmetal_short2
#define short3 qmetal_short3
#define short4 qmetal_short4
#define ushort2 qmetal_ushort2
#define ushort3 qmetal_ushort3
#define ushort4 qmetal_ushort4
#define int2 qmetal_int2
#define int3 qmetal_int3
#define int4 qmetal_int4
#define uint2 qmetal_uint2
#define uint3 qmetal_uint3
#define uint4 qmetal_uint4
#define long2 qmetal_long2
#define long3 qmetal_long3
#define long4 qmetal_long4
#define ulong2 qmetal_ulong2
#define ulong3 qmetal_ulong3
#define ulong4 qmetal_ulong4
#define half2 qmetal_half2
#define half3 qmetal_half3
#define half4 qmetal_half4
#define bfloat2 qmetal_bfloat2
#define bfloat3 qmetal_bfloat3
#define bfloat4 qmetal_bfloat4
#define float2 qmetal_float2
#define float3 qmetal_float3
#define float4 qmetal_float4
