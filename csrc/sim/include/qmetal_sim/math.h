// metal:: math for scalars and vectors. half and bfloat are computed in float
// and rounded back; precise:: and fast:: name the same functions (the
// simulator is always precise).
#pragma once

#include <cfloat>
#include <cmath>

#include "qmetal_sim/types.h"

namespace metal {

namespace detail {

template <class T, class F>
T map(const T& x, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
    for (int i = 0; i < T::size; ++i) r[i] = f(x[i]);
    return r;
  } else {
    return f(x);
  }
}

template <class T, class F>
T map2(const T& x, const T& y, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
    for (int i = 0; i < T::size; ++i) r[i] = f(x[i], y[i]);
    return r;
  } else {
    return f(x, y);
  }
}

template <class T, class F>
T map3(const T& x, const T& y, const T& z, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
    for (int i = 0; i < T::size; ++i) r[i] = f(x[i], y[i], z[i]);
    return r;
  } else {
    return f(x, y, z);
  }
}

template <class T>
struct element {
  using type = T;
};
template <class T, int N>
struct element<vec<T, N>> {
  using type = T;
};
template <class T>
using element_t = typename element<T>::type;

template <class T>
inline constexpr bool is_float_or_vec_v = qmetal_sim::is_float_v<element_t<T>>;
template <class T>
inline constexpr bool is_int_or_vec_v = std::is_integral_v<element_t<T>>;
template <class T>
inline constexpr bool is_arith_or_vec_v = qmetal_sim::is_scalar_v<element_t<T>>;

// sin(pi x) and cos(pi x) after reducing x modulo 2 exactly (remainder is
// exact), so that integers and half-integers give exact zeros, ones and
// tanpi poles, and large x stays accurate; sin(x * M_PI) does neither.
inline double sin_pi(double x) {
  const double r = std::remainder(x, 2.0);                        // in [-1, 1]
  return std::sin(M_PI * (r > 0.5 ? 1.0 - r : r < -0.5 ? -1.0 - r : r));  // sin(pi r), argument in [-1/2, 1/2]
}
inline double cos_pi(double x) { return sin_pi(0.5 - std::fabs(std::remainder(x, 2.0))); }

}  // namespace detail

#define QMETAL_SIM_FLOAT1(name, expr)                                            \
  template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>    \
  T name(const T& value) {                                                       \
    using E = detail::element_t<T>;                                              \
    return detail::map(value, [](E e) {                                          \
      using C = qmetal_sim::compute_t<E>;                                        \
      const C x = C(e);                                                          \
      return E(expr);                                                            \
    });                                                                          \
  }

QMETAL_SIM_FLOAT1(sqrt, std::sqrt(x))
QMETAL_SIM_FLOAT1(rsqrt, C(1) / std::sqrt(x))
QMETAL_SIM_FLOAT1(exp, std::exp(x))
QMETAL_SIM_FLOAT1(exp2, std::exp2(x))
QMETAL_SIM_FLOAT1(exp10, std::pow(C(10), x))
QMETAL_SIM_FLOAT1(log, std::log(x))
QMETAL_SIM_FLOAT1(log2, std::log2(x))
QMETAL_SIM_FLOAT1(log10, std::log10(x))
QMETAL_SIM_FLOAT1(sin, std::sin(x))
QMETAL_SIM_FLOAT1(cos, std::cos(x))
QMETAL_SIM_FLOAT1(tan, std::tan(x))
QMETAL_SIM_FLOAT1(asin, std::asin(x))
QMETAL_SIM_FLOAT1(acos, std::acos(x))
QMETAL_SIM_FLOAT1(atan, std::atan(x))
QMETAL_SIM_FLOAT1(sinh, std::sinh(x))
QMETAL_SIM_FLOAT1(cosh, std::cosh(x))
QMETAL_SIM_FLOAT1(tanh, std::tanh(x))
QMETAL_SIM_FLOAT1(asinh, std::asinh(x))
QMETAL_SIM_FLOAT1(acosh, std::acosh(x))
QMETAL_SIM_FLOAT1(atanh, std::atanh(x))
QMETAL_SIM_FLOAT1(sinpi, detail::sin_pi(double(x)))
QMETAL_SIM_FLOAT1(cospi, detail::cos_pi(double(x)))
QMETAL_SIM_FLOAT1(tanpi, detail::sin_pi(double(x)) / detail::cos_pi(double(x)))
QMETAL_SIM_FLOAT1(erf, std::erf(x))
QMETAL_SIM_FLOAT1(floor, std::floor(x))
QMETAL_SIM_FLOAT1(ceil, std::ceil(x))
QMETAL_SIM_FLOAT1(round, std::round(x))
QMETAL_SIM_FLOAT1(rint, std::nearbyint(x))
QMETAL_SIM_FLOAT1(trunc, std::trunc(x))
QMETAL_SIM_FLOAT1(fabs, std::fabs(x))
QMETAL_SIM_FLOAT1(fract, std::fmin(x - std::floor(x), C(0x1.fffffep-1)))
QMETAL_SIM_FLOAT1(saturate, std::fmin(std::fmax(x, C(0)), C(1)))
QMETAL_SIM_FLOAT1(sign, x > 0 ? C(1) : x < 0 ? C(-1) : x == 0 ? C(0) : x)
#undef QMETAL_SIM_FLOAT1

#define QMETAL_SIM_FLOAT2(name, expr)                                            \
  template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>    \
  T name(const T& a, const T& b) {                                               \
    using E = detail::element_t<T>;                                              \
    return detail::map2(a, b, [](E ea, E eb) {                                   \
      using C = qmetal_sim::compute_t<E>;                                        \
      const C x = C(ea), y = C(eb);                                              \
      return E(expr);                                                            \
    });                                                                          \
  }

QMETAL_SIM_FLOAT2(pow, std::pow(x, y))
QMETAL_SIM_FLOAT2(powr, std::pow(x, y))
QMETAL_SIM_FLOAT2(fmin, std::fmin(x, y))
QMETAL_SIM_FLOAT2(fmax, std::fmax(x, y))
QMETAL_SIM_FLOAT2(fmod, std::fmod(x, y))
QMETAL_SIM_FLOAT2(copysign, std::copysign(x, y))
QMETAL_SIM_FLOAT2(atan2, std::atan2(x, y))
QMETAL_SIM_FLOAT2(step, y < x ? C(0) : C(1))
QMETAL_SIM_FLOAT2(divide, x / y)
QMETAL_SIM_FLOAT2(fdim, x > y ? x - y : std::isnan(x) || std::isnan(y) ? x + y : C(0))
#undef QMETAL_SIM_FLOAT2

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T fma(const T& a, const T& b, const T& c) {
  using E = detail::element_t<T>;
  return detail::map3(a, b, c, [](E x, E y, E z) {
    using C = qmetal_sim::compute_t<E>;
    return E(std::fma(C(x), C(y), C(z)));
  });
}

// The next value of x's own type (half, bfloat, float) towards y.
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T nextafter(const T& a, const T& b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    using C = qmetal_sim::compute_t<E>;
    using Bits = qmetal_sim::bits_t<E>;
    const C cx = C(x), cy = C(y);
    if (std::isnan(cx) || std::isnan(cy)) return E(cx + cy);
    if (cx == cy) return y;
    if (cx == C(0)) return as_type<E>(Bits(cy < C(0) ? (Bits(1) << (8 * sizeof(E) - 1)) | 1u : 1u));
    const Bits bits = as_type<Bits>(x);
    return as_type<E>(Bits((cx < cy) == (cx > C(0)) ? bits + 1u : bits - 1u));
  });
}

// The three-argument forms: fmax3(x, y, z) is fmax(fmax(x, y), z); the
// median ignores NaN as fmin and fmax do.
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T fmax3(const T& x, const T& y, const T& z) {
  return fmax(fmax(x, y), z);
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T fmin3(const T& x, const T& y, const T& z) {
  return fmin(fmin(x, y), z);
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T fmedian3(const T& x, const T& y, const T& z) {
  return fmax(fmin(x, y), fmin(fmax(x, y), z));
}

// ldexp(x, k) = x * 2^k and frexp(x, e): x = m * 2^e with 0.5 <= |m| < 1.
template <class T, std::enable_if_t<qmetal_sim::is_float_v<T>, int> = 0>
T ldexp(T x, int k) {
  return T(std::ldexp(qmetal_sim::compute_t<T>(x), k));
}
template <class T, std::enable_if_t<qmetal_sim::is_float_v<T>, int> = 0>
T frexp(T x, int& exponent) {
  return T(std::frexp(qmetal_sim::compute_t<T>(x), &exponent));
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
T mix(const T& a, const T& b, const T& t) {
  return a + (b - a) * t;
}

// min/max/clamp/abs for integers and floats (floats as fmin/fmax).
template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T min(const T& a, const T& b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    if constexpr (qmetal_sim::is_float_v<E>) {
      using C = qmetal_sim::compute_t<E>;
      return E(std::fmin(C(x), C(y)));
    } else {
      return y < x ? y : x;
    }
  });
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T max(const T& a, const T& b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    if constexpr (qmetal_sim::is_float_v<E>) {
      using C = qmetal_sim::compute_t<E>;
      return E(std::fmax(C(x), C(y)));
    } else {
      return x < y ? y : x;
    }
  });
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T clamp(const T& x, const T& lo, const T& hi) {
  return min(max(x, lo), hi);
}
template <class T, int N>
vec<T, N> clamp(const vec<T, N>& x, T lo, T hi) {
  return clamp(x, vec<T, N>(lo), vec<T, N>(hi));
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T max3(const T& x, const T& y, const T& z) {
  return max(max(x, y), z);
}
template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T min3(const T& x, const T& y, const T& z) {
  return min(min(x, y), z);
}
template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T median3(const T& x, const T& y, const T& z) {
  return max(min(x, y), min(max(x, y), z));
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
T abs(const T& value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    if constexpr (qmetal_sim::is_float_v<E>) {
      using C = qmetal_sim::compute_t<E>;
      return E(std::fabs(C(x)));
    } else {
      return x < 0 ? E(-x) : x;
    }
  });
}

// select(a, b, c): b where c, else a.
template <class T, std::enable_if_t<qmetal_sim::is_scalar_v<T>, int> = 0>
T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T, int N>
vec<T, N> select(const vec<T, N>& a, const vec<T, N>& b, const vec<bool, N>& c) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = c[i] ? b[i] : a[i];
  return r;
}

template <class T, int N>
T dot(const vec<T, N>& a, const vec<T, N>& b) {
  T r = T(a[0] * b[0]);
  for (int i = 1; i < N; ++i) r = T(r + T(a[i] * b[i]));
  return r;
}
template <class T, int N>
T length(const vec<T, N>& a) {
  return sqrt(dot(a, a));
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
auto isnan(const T& value) {
  if constexpr (is_vector_v<T>) {
    vec<bool, T::size> r;
    for (int i = 0; i < T::size; ++i) r[i] = std::isnan(float(value[i]));
    return r;
  } else {
    return std::isnan(qmetal_sim::compute_t<T>(value));
  }
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
auto isinf(const T& value) {
  if constexpr (is_vector_v<T>) {
    vec<bool, T::size> r;
    for (int i = 0; i < T::size; ++i) r[i] = std::isinf(float(value[i]));
    return r;
  } else {
    return std::isinf(qmetal_sim::compute_t<T>(value));
  }
}
template <class T, std::enable_if_t<qmetal_sim::is_float_v<T>, int> = 0>
bool isfinite(T value) {
  return std::isfinite(qmetal_sim::compute_t<T>(value));
}
template <class T, std::enable_if_t<qmetal_sim::is_float_v<T>, int> = 0>
bool signbit(T value) {
  return std::signbit(qmetal_sim::compute_t<T>(value));
}

// Integer functions.
template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
T popcount(const T& value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    return E(__builtin_popcountll(static_cast<unsigned long long>(std::make_unsigned_t<E>(x))));
  });
}
template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
T clz(const T& value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    constexpr int bits = 8 * sizeof(E);
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(x));
    return E(u == 0 ? bits : __builtin_clzll(u) - (64 - bits));
  });
}
template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
T ctz(const T& value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(x));
    return E(u == 0 ? int(8 * sizeof(E)) : __builtin_ctzll(u));
  });
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
T extract_bits(T x, uint offset, uint bits) {
  using U = std::make_unsigned_t<T>;
  if (bits == 0) return T(0);
  U u = U(U(x) >> offset);
  if (bits < 8 * sizeof(T)) u &= U((U(1) << bits) - 1);
  if constexpr (std::is_signed_v<T>) {  // sign-extends
    const unsigned shift = 8 * sizeof(T) - bits;
    return T(T(u << shift) >> shift);
  }
  return T(u);
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
T insert_bits(T base, T insert, uint offset, uint bits) {
  using U = std::make_unsigned_t<T>;
  if (bits == 0) return base;
  const U mask = bits < 8 * sizeof(T) ? U(((U(1) << bits) - 1) << offset) : U(~U(0));
  return T((U(base) & ~mask) | ((U(insert) << offset) & mask));
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
T mulhi(T a, T b) {
  if constexpr (sizeof(T) < 8) {
    using W = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    return T((W(a) * W(b)) >> (8 * sizeof(T)));
  } else {
    using W = std::conditional_t<std::is_signed_v<T>, __int128, unsigned __int128>;
    return T((W(a) * W(b)) >> 64);
  }
}

#define QMETAL_SIM_MATH_NAMES                                                                             \
  using metal::abs;                                                                                       \
  using metal::acos;                                                                                      \
  using metal::acosh;                                                                                     \
  using metal::asin;                                                                                      \
  using metal::asinh;                                                                                     \
  using metal::atan;                                                                                      \
  using metal::atan2;                                                                                     \
  using metal::atanh;                                                                                     \
  using metal::ceil;                                                                                      \
  using metal::clamp;                                                                                     \
  using metal::copysign;                                                                                  \
  using metal::cos;                                                                                       \
  using metal::cosh;                                                                                      \
  using metal::cospi;                                                                                     \
  using metal::divide;                                                                                    \
  using metal::dot;                                                                                       \
  using metal::erf;                                                                                       \
  using metal::exp;                                                                                       \
  using metal::exp10;                                                                                     \
  using metal::exp2;                                                                                      \
  using metal::fabs;                                                                                      \
  using metal::fdim;                                                                                      \
  using metal::floor;                                                                                     \
  using metal::fma;                                                                                       \
  using metal::fmax;                                                                                      \
  using metal::fmax3;                                                                                     \
  using metal::fmedian3;                                                                                  \
  using metal::fmin;                                                                                      \
  using metal::fmin3;                                                                                     \
  using metal::fmod;                                                                                      \
  using metal::fract;                                                                                     \
  using metal::frexp;                                                                                     \
  using metal::isinf;                                                                                     \
  using metal::isnan;                                                                                     \
  using metal::ldexp;                                                                                     \
  using metal::log;                                                                                       \
  using metal::log10;                                                                                     \
  using metal::log2;                                                                                      \
  using metal::max;                                                                                       \
  using metal::max3;                                                                                      \
  using metal::median3;                                                                                   \
  using metal::min;                                                                                       \
  using metal::min3;                                                                                      \
  using metal::mix;                                                                                       \
  using metal::nextafter;                                                                                 \
  using metal::pow;                                                                                       \
  using metal::powr;                                                                                      \
  using metal::rint;                                                                                      \
  using metal::round;                                                                                     \
  using metal::rsqrt;                                                                                     \
  using metal::saturate;                                                                                  \
  using metal::sign;                                                                                      \
  using metal::sin;                                                                                       \
  using metal::sinh;                                                                                      \
  using metal::sinpi;                                                                                     \
  using metal::sqrt;                                                                                      \
  using metal::tan;                                                                                       \
  using metal::tanh;                                                                                      \
  using metal::tanpi;                                                                                     \
  using metal::trunc;

namespace precise {
QMETAL_SIM_MATH_NAMES
}
namespace fast {
QMETAL_SIM_MATH_NAMES
}
#undef QMETAL_SIM_MATH_NAMES

}  // namespace metal

// MSL's constants (<metal_math>); INFINITY, NAN, FLT_MAX and the like come
// from <cmath> and <cfloat>.
#ifndef MAXFLOAT
#define MAXFLOAT 0x1.fffffep+127f
#endif
#define HALF_MAX (half(65504.0f))
#define HALF_MIN (half(0x1p-14f))
#define HALF_EPSILON (half(0x1p-10f))
#define M_E_F 2.71828182845904523536f
#define M_LOG2E_F 1.44269504088896340736f
#define M_LOG10E_F 0.434294481903251827651f
#define M_LN2_F 0.693147180559945309417f
#define M_LN10_F 2.30258509299404568402f
#define M_PI_F 3.14159265358979323846f
#define M_PI_2_F 1.57079632679489661923f
#define M_PI_4_F 0.785398163397448309616f
#define M_1_PI_F 0.318309886183790671538f
#define M_2_PI_F 0.636619772367581343076f
#define M_2_SQRTPI_F 1.12837916709551257390f
#define M_SQRT2_F 1.41421356237309504880f
#define M_SQRT1_2_F 0.707106781186547524401f
