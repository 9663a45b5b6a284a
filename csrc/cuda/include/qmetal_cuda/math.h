// metal:: math on the CUDA target: the simulator's functions
// (csrc/sim/include/qmetal_sim/math.h) over libdevice instead of <cmath>,
// which has no device code. half and bfloat are computed in float and
// rounded back, as in the simulator; precise:: and fast:: name the same
// functions. Arguments are taken by value here (the simulator takes const
// references): a reference to a class's static constexpr member is a host
// address in device code, which nvcc refuses.
#pragma once

#include "qmetal_cuda/types.h"

extern "C" __device__ int __nv_ffsll(long long);

namespace metal {

namespace detail {

template <class T, class F>
QMETAL_CUDA_FN T map(T x, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
#pragma unroll
    for (int i = 0; i < T::size; ++i) r[i] = f(x[i]);
    return r;
  } else {
    return f(x);
  }
}

template <class T, class F>
QMETAL_CUDA_FN T map2(T x, T y, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
#pragma unroll
    for (int i = 0; i < T::size; ++i) r[i] = f(x[i], y[i]);
    return r;
  } else {
    return f(x, y);
  }
}

template <class T, class F>
QMETAL_CUDA_FN T map3(T x, T y, T z, F f) {
  if constexpr (is_vector_v<T>) {
    T r;
#pragma unroll
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
inline constexpr bool is_float_or_vec_v = qmetal_cuda::is_float_v<element_t<T>>;
template <class T>
inline constexpr bool is_int_or_vec_v = std::is_integral_v<element_t<T>>;
template <class T>
inline constexpr bool is_arith_or_vec_v = qmetal_cuda::is_scalar_v<element_t<T>>;

QMETAL_CUDA_FN bool is_nan(float x) { return x != x; }

}  // namespace detail

#define QMETAL_CUDA_FLOAT1(name, expr)                                            \
  template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>     \
  QMETAL_CUDA_FN T name(T value) {                                                \
    using E = detail::element_t<T>;                                               \
    return detail::map(value, [](E e) {                                           \
      const float x = float(e);                                                   \
      return E(expr);                                                             \
    });                                                                           \
  }

QMETAL_CUDA_FLOAT1(sqrt, __nv_sqrtf(x))
QMETAL_CUDA_FLOAT1(rsqrt, 1.0f / __nv_sqrtf(x))
QMETAL_CUDA_FLOAT1(exp, __nv_expf(x))
QMETAL_CUDA_FLOAT1(exp2, __nv_exp2f(x))
QMETAL_CUDA_FLOAT1(exp10, __nv_exp10f(x))
QMETAL_CUDA_FLOAT1(log, __nv_logf(x))
QMETAL_CUDA_FLOAT1(log2, __nv_log2f(x))
QMETAL_CUDA_FLOAT1(log10, __nv_log10f(x))
QMETAL_CUDA_FLOAT1(sin, __nv_sinf(x))
QMETAL_CUDA_FLOAT1(cos, __nv_cosf(x))
QMETAL_CUDA_FLOAT1(tan, __nv_tanf(x))
QMETAL_CUDA_FLOAT1(asin, __nv_asinf(x))
QMETAL_CUDA_FLOAT1(acos, __nv_acosf(x))
QMETAL_CUDA_FLOAT1(atan, __nv_atanf(x))
QMETAL_CUDA_FLOAT1(sinh, __nv_sinhf(x))
QMETAL_CUDA_FLOAT1(cosh, __nv_coshf(x))
QMETAL_CUDA_FLOAT1(tanh, __nv_tanhf(x))
QMETAL_CUDA_FLOAT1(asinh, __nv_asinhf(x))
QMETAL_CUDA_FLOAT1(acosh, __nv_acoshf(x))
QMETAL_CUDA_FLOAT1(atanh, __nv_atanhf(x))
QMETAL_CUDA_FLOAT1(sinpi, __nv_sinpif(x))
QMETAL_CUDA_FLOAT1(cospi, __nv_cospif(x))
QMETAL_CUDA_FLOAT1(tanpi, __nv_sinpif(x) / __nv_cospif(x))
QMETAL_CUDA_FLOAT1(erf, __nv_erff(x))
QMETAL_CUDA_FLOAT1(floor, __nv_floorf(x))
QMETAL_CUDA_FLOAT1(ceil, __nv_ceilf(x))
QMETAL_CUDA_FLOAT1(round, __nv_roundf(x))
QMETAL_CUDA_FLOAT1(rint, __nv_rintf(x))
QMETAL_CUDA_FLOAT1(trunc, __nv_truncf(x))
QMETAL_CUDA_FLOAT1(fabs, __nv_fabsf(x))
QMETAL_CUDA_FLOAT1(fract, __nv_fminf(x - __nv_floorf(x), 0x1.fffffep-1f))
QMETAL_CUDA_FLOAT1(saturate, __nv_fminf(__nv_fmaxf(x, 0.0f), 1.0f))
QMETAL_CUDA_FLOAT1(sign, x > 0 ? 1.0f : x < 0 ? -1.0f : x == 0 ? 0.0f : x)
#undef QMETAL_CUDA_FLOAT1

#define QMETAL_CUDA_FLOAT2(name, expr)                                            \
  template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>     \
  QMETAL_CUDA_FN T name(T a, T b) {                                               \
    using E = detail::element_t<T>;                                               \
    return detail::map2(a, b, [](E ea, E eb) {                                    \
      const float x = float(ea), y = float(eb);                                   \
      return E(expr);                                                             \
    });                                                                           \
  }

QMETAL_CUDA_FLOAT2(pow, __nv_powf(x, y))
QMETAL_CUDA_FLOAT2(powr, __nv_powf(x, y))
QMETAL_CUDA_FLOAT2(fmin, __nv_fminf(x, y))
QMETAL_CUDA_FLOAT2(fmax, __nv_fmaxf(x, y))
QMETAL_CUDA_FLOAT2(fmod, __nv_fmodf(x, y))
QMETAL_CUDA_FLOAT2(copysign, __nv_copysignf(x, y))
QMETAL_CUDA_FLOAT2(atan2, __nv_atan2f(x, y))
QMETAL_CUDA_FLOAT2(step, y < x ? 0.0f : 1.0f)
QMETAL_CUDA_FLOAT2(divide, x / y)
QMETAL_CUDA_FLOAT2(fdim, x > y ? x - y : detail::is_nan(x) || detail::is_nan(y) ? x + y : 0.0f)
#undef QMETAL_CUDA_FLOAT2

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T fma(T a, T b, T c) {
  using E = detail::element_t<T>;
  return detail::map3(a, b, c, [](E x, E y, E z) { return E(__nv_fmaf(float(x), float(y), float(z))); });
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T nextafter(T a, T b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    using Bits = qmetal_cuda::bits_t<E>;
    const float cx = float(x), cy = float(y);
    if (detail::is_nan(cx) || detail::is_nan(cy)) return E(cx + cy);
    if (cx == cy) return y;
    if (cx == 0.0f) return as_type<E>(Bits(cy < 0.0f ? (Bits(1) << (8 * sizeof(E) - 1)) | 1u : 1u));
    const Bits bits = as_type<Bits>(x);
    return as_type<E>(Bits((cx < cy) == (cx > 0.0f) ? bits + 1u : bits - 1u));
  });
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T fmax3(T x, T y, T z) {
  return fmax(fmax(x, y), z);
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T fmin3(T x, T y, T z) {
  return fmin(fmin(x, y), z);
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T fmedian3(T x, T y, T z) {
  return fmax(fmin(x, y), fmin(fmax(x, y), z));
}

template <class T, std::enable_if_t<qmetal_cuda::is_float_v<T>, int> = 0>
QMETAL_CUDA_FN T ldexp(T x, int k) {
  return T(__nv_ldexpf(float(x), k));
}
template <class T, std::enable_if_t<qmetal_cuda::is_float_v<T>, int> = 0>
QMETAL_CUDA_FN T frexp(T x, int& exponent) {
  return T(__nv_frexpf(float(x), &exponent));
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T mix(T a, T b, T t) {
  return a + (b - a) * t;
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T min(T a, T b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    if constexpr (qmetal_cuda::is_float_v<E>) {
      return E(__nv_fminf(float(x), float(y)));
    } else {
      return y < x ? y : x;
    }
  });
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T max(T a, T b) {
  using E = detail::element_t<T>;
  return detail::map2(a, b, [](E x, E y) {
    if constexpr (qmetal_cuda::is_float_v<E>) {
      return E(__nv_fmaxf(float(x), float(y)));
    } else {
      return x < y ? y : x;
    }
  });
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <class T, int N>
QMETAL_CUDA_FN vec<T, N> clamp(vec<T, N> x, T lo, T hi) {
  return clamp(x, vec<T, N>(lo), vec<T, N>(hi));
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T max3(T x, T y, T z) {
  return max(max(x, y), z);
}
template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T min3(T x, T y, T z) {
  return min(min(x, y), z);
}
template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T median3(T x, T y, T z) {
  return max(min(x, y), min(max(x, y), z));
}

template <class T, std::enable_if_t<detail::is_arith_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T abs(T value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    if constexpr (qmetal_cuda::is_float_v<E>) {
      return E(__nv_fabsf(float(x)));
    } else {
      return x < 0 ? E(-x) : x;
    }
  });
}

template <class T, std::enable_if_t<qmetal_cuda::is_scalar_v<T>, int> = 0>
QMETAL_CUDA_FN T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T, int N>
QMETAL_CUDA_FN vec<T, N> select(vec<T, N> a, vec<T, N> b, vec<bool, N> c) {
  vec<T, N> r;
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = c[i] ? b[i] : a[i];
  return r;
}

template <class T, int N>
QMETAL_CUDA_FN T dot(vec<T, N> a, vec<T, N> b) {
  T r = T(a[0] * b[0]);
#pragma unroll
  for (int i = 1; i < N; ++i) r = T(r + T(a[i] * b[i]));
  return r;
}
template <class T, int N>
QMETAL_CUDA_FN T length(vec<T, N> a) {
  return sqrt(dot(a, a));
}

template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN auto isnan(T value) {
  if constexpr (is_vector_v<T>) {
    vec<bool, T::size> r;
    for (int i = 0; i < T::size; ++i) r[i] = detail::is_nan(float(value[i]));
    return r;
  } else {
    return detail::is_nan(float(value));
  }
}
template <class T, std::enable_if_t<detail::is_float_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN auto isinf(T value) {
  if constexpr (is_vector_v<T>) {
    vec<bool, T::size> r;
    for (int i = 0; i < T::size; ++i) r[i] = __nv_fabsf(float(value[i])) == INFINITY;
    return r;
  } else {
    return __nv_fabsf(float(value)) == INFINITY;
  }
}
template <class T, std::enable_if_t<qmetal_cuda::is_float_v<T>, int> = 0>
QMETAL_CUDA_FN bool isfinite(T value) {
  return __nv_fabsf(float(value)) < INFINITY;
}
template <class T, std::enable_if_t<qmetal_cuda::is_float_v<T>, int> = 0>
QMETAL_CUDA_FN bool signbit(T value) {
  return (as_type<uint32_t>(float(value)) >> 31) != 0;
}

template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T popcount(T value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    return E(__nv_popcll(static_cast<long long>(static_cast<unsigned long long>(std::make_unsigned_t<E>(x)))));
  });
}
template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T clz(T value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    constexpr int bits = 8 * sizeof(E);
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(x));
    return E(__nv_clzll(static_cast<long long>(u)) - (64 - bits));
  });
}
template <class T, std::enable_if_t<detail::is_int_or_vec_v<T>, int> = 0>
QMETAL_CUDA_FN T ctz(T value) {
  using E = detail::element_t<T>;
  return detail::map(value, [](E x) {
    const auto u = static_cast<unsigned long long>(std::make_unsigned_t<E>(x));
    return E(u == 0 ? int(8 * sizeof(E)) : __nv_ffsll(static_cast<long long>(u)) - 1);
  });
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
QMETAL_CUDA_FN T extract_bits(T x, uint offset, uint bits) {
  using U = std::make_unsigned_t<T>;
  if (bits == 0) return T(0);
  U u = U(U(x) >> offset);
  if (bits < 8 * sizeof(T)) u &= U((U(1) << bits) - 1);
  if constexpr (std::is_signed_v<T>) {
    const unsigned shift = 8 * sizeof(T) - bits;
    return T(T(u << shift) >> shift);
  }
  return T(u);
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
QMETAL_CUDA_FN T insert_bits(T base, T insert, uint offset, uint bits) {
  using U = std::make_unsigned_t<T>;
  if (bits == 0) return base;
  const U mask = bits < 8 * sizeof(T) ? U(((U(1) << bits) - 1) << offset) : U(~U(0));
  return T((U(base) & ~mask) | ((U(insert) << offset) & mask));
}
template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
QMETAL_CUDA_FN T mulhi(T a, T b) {
  if constexpr (sizeof(T) < 8) {
    using W = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    return T((W(a) * W(b)) >> (8 * sizeof(T)));
  } else if constexpr (std::is_signed_v<T>) {
    return T(__nv_mul64hi(a, b));
  } else {
    return T(__nv_umul64hi(a, b));
  }
}

#define QMETAL_CUDA_MATH_NAMES \
  using metal::abs;            \
  using metal::acos;           \
  using metal::acosh;          \
  using metal::asin;           \
  using metal::asinh;          \
  using metal::atan;           \
  using metal::atan2;          \
  using metal::atanh;          \
  using metal::ceil;           \
  using metal::clamp;          \
  using metal::copysign;       \
  using metal::cos;            \
  using metal::cosh;           \
  using metal::cospi;          \
  using metal::divide;         \
  using metal::dot;            \
  using metal::erf;            \
  using metal::exp;            \
  using metal::exp10;          \
  using metal::exp2;           \
  using metal::fabs;           \
  using metal::fdim;           \
  using metal::floor;          \
  using metal::fma;            \
  using metal::fmax;           \
  using metal::fmax3;          \
  using metal::fmedian3;       \
  using metal::fmin;           \
  using metal::fmin3;          \
  using metal::fmod;           \
  using metal::fract;          \
  using metal::frexp;          \
  using metal::isinf;          \
  using metal::isnan;          \
  using metal::ldexp;          \
  using metal::log;            \
  using metal::log10;          \
  using metal::log2;           \
  using metal::max;            \
  using metal::max3;           \
  using metal::median3;        \
  using metal::min;            \
  using metal::min3;           \
  using metal::mix;            \
  using metal::nextafter;      \
  using metal::pow;            \
  using metal::powr;           \
  using metal::rint;           \
  using metal::round;          \
  using metal::rsqrt;          \
  using metal::saturate;       \
  using metal::sign;           \
  using metal::sin;            \
  using metal::sinh;           \
  using metal::sinpi;          \
  using metal::sqrt;           \
  using metal::tan;            \
  using metal::tanh;           \
  using metal::tanpi;          \
  using metal::trunc;

namespace precise {
QMETAL_CUDA_MATH_NAMES
}
namespace fast {
QMETAL_CUDA_MATH_NAMES
}
#undef QMETAL_CUDA_MATH_NAMES

}  // namespace metal

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
