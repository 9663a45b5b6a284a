// The compiler builtins behind Apple's <metal_math> and <metal_simdgroup>,
// which some kernels call directly (MLX's bf16_math.h builds its bfloat
// overloads from them): __metal_<function>(arguments..., fast) for math, the
// flag being __METAL_FAST_MATH__ or __METAL_PRECISE_MATH__ (ignored here:
// the simulator is always precise), and __metal_simd_<collective>(...). Each
// forwards to the metal:: function of the same name.
#pragma once

#include "qmetal_sim/simd.h"

#define QMETAL_SIM_MATH_BUILTIN1(name)              \
  template <class T>                                \
  T __metal_##name(T x, bool /*fast*/ = false) {    \
    return metal::name(x);                          \
  }
#define QMETAL_SIM_MATH_BUILTIN2(name)                 \
  template <class T>                                   \
  T __metal_##name(T x, T y, bool /*fast*/ = false) {  \
    return metal::name(x, y);                          \
  }
#define QMETAL_SIM_MATH_BUILTIN3(name)                      \
  template <class T>                                        \
  T __metal_##name(T x, T y, T z, bool /*fast*/ = false) {  \
    return metal::name(x, y, z);                            \
  }

QMETAL_SIM_MATH_BUILTIN1(acos)
QMETAL_SIM_MATH_BUILTIN1(acosh)
QMETAL_SIM_MATH_BUILTIN1(asin)
QMETAL_SIM_MATH_BUILTIN1(asinh)
QMETAL_SIM_MATH_BUILTIN1(atan)
QMETAL_SIM_MATH_BUILTIN1(atanh)
QMETAL_SIM_MATH_BUILTIN1(ceil)
QMETAL_SIM_MATH_BUILTIN1(cos)
QMETAL_SIM_MATH_BUILTIN1(cosh)
QMETAL_SIM_MATH_BUILTIN1(cospi)
QMETAL_SIM_MATH_BUILTIN1(exp)
QMETAL_SIM_MATH_BUILTIN1(exp10)
QMETAL_SIM_MATH_BUILTIN1(exp2)
QMETAL_SIM_MATH_BUILTIN1(fabs)
QMETAL_SIM_MATH_BUILTIN1(floor)
QMETAL_SIM_MATH_BUILTIN1(fract)
QMETAL_SIM_MATH_BUILTIN1(log)
QMETAL_SIM_MATH_BUILTIN1(log10)
QMETAL_SIM_MATH_BUILTIN1(log2)
QMETAL_SIM_MATH_BUILTIN1(rint)
QMETAL_SIM_MATH_BUILTIN1(round)
QMETAL_SIM_MATH_BUILTIN1(rsqrt)
QMETAL_SIM_MATH_BUILTIN1(sin)
QMETAL_SIM_MATH_BUILTIN1(sinh)
QMETAL_SIM_MATH_BUILTIN1(sinpi)
QMETAL_SIM_MATH_BUILTIN1(sqrt)
QMETAL_SIM_MATH_BUILTIN1(tan)
QMETAL_SIM_MATH_BUILTIN1(tanh)
QMETAL_SIM_MATH_BUILTIN1(tanpi)
QMETAL_SIM_MATH_BUILTIN1(trunc)
QMETAL_SIM_MATH_BUILTIN2(atan2)
QMETAL_SIM_MATH_BUILTIN2(divide)
QMETAL_SIM_MATH_BUILTIN2(fdim)
QMETAL_SIM_MATH_BUILTIN2(fmax)
QMETAL_SIM_MATH_BUILTIN2(fmin)
QMETAL_SIM_MATH_BUILTIN2(fmod)
QMETAL_SIM_MATH_BUILTIN2(nextafter)
QMETAL_SIM_MATH_BUILTIN2(pow)
QMETAL_SIM_MATH_BUILTIN2(powr)
QMETAL_SIM_MATH_BUILTIN3(fma)
QMETAL_SIM_MATH_BUILTIN3(fmax3)
QMETAL_SIM_MATH_BUILTIN3(fmedian3)
QMETAL_SIM_MATH_BUILTIN3(fmin3)
#undef QMETAL_SIM_MATH_BUILTIN1
#undef QMETAL_SIM_MATH_BUILTIN2
#undef QMETAL_SIM_MATH_BUILTIN3

template <class T>
T __metal_ldexp(T x, int k, bool /*fast*/ = false) {
  return metal::ldexp(x, k);
}
template <class T>
T __metal_frexp(T x, int* exponent) {
  return metal::frexp(x, *exponent);
}

// Thread positions, asked for by type: __metal_get_simdgroup_size(ushort()).
template <class T>
T __metal_get_simdgroup_size(T) {
  return T(qmetal_sim::kSimdWidth);
}
template <class T>
T __metal_get_thread_index_in_simdgroup(T) {
  return T(qmetal_sim::ids().thread_index_in_simdgroup);
}

#define QMETAL_SIM_SIMD_BUILTIN(name)                                        \
  template <class T>                                                         \
  T __metal_##name(T x, qmetal_sim::Here here = qmetal_sim::Here()) {        \
    return metal::name(x, here);                                             \
  }
#define QMETAL_SIM_SIMD_BUILTIN_LANE(name)                                              \
  template <class T>                                                                    \
  T __metal_##name(T x, ushort lane, qmetal_sim::Here here = qmetal_sim::Here()) {      \
    return metal::name(x, lane, here);                                                  \
  }
#define QMETAL_SIM_SIMD_BUILTIN_FILL(name)                                                                \
  template <class T>                                                                                      \
  T __metal_##name(T x, T fill, ushort delta, ushort modulo, qmetal_sim::Here here = qmetal_sim::Here()) { \
    return metal::name(x, fill, delta, modulo, here);                                                     \
  }

QMETAL_SIM_SIMD_BUILTIN(simd_max)
QMETAL_SIM_SIMD_BUILTIN(simd_min)
QMETAL_SIM_SIMD_BUILTIN(simd_prefix_exclusive_product)
QMETAL_SIM_SIMD_BUILTIN(simd_prefix_exclusive_sum)
QMETAL_SIM_SIMD_BUILTIN(simd_prefix_inclusive_product)
QMETAL_SIM_SIMD_BUILTIN(simd_prefix_inclusive_sum)
QMETAL_SIM_SIMD_BUILTIN(simd_product)
QMETAL_SIM_SIMD_BUILTIN(simd_sum)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_broadcast)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle_down)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle_rotate_down)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle_rotate_up)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle_up)
QMETAL_SIM_SIMD_BUILTIN_LANE(simd_shuffle_xor)
QMETAL_SIM_SIMD_BUILTIN_FILL(simd_shuffle_and_fill_down)
QMETAL_SIM_SIMD_BUILTIN_FILL(simd_shuffle_and_fill_up)

// The bitwise reductions also take floats (MLX's bfloat simd_xor passes one),
// combining their bit patterns.
#define QMETAL_SIM_SIMD_BITWISE_BUILTIN(name)                                                         \
  template <class T>                                                                                  \
  T __metal_##name(T x, qmetal_sim::Here here = qmetal_sim::Here()) {                                 \
    if constexpr (qmetal_sim::is_float_v<T>) {                                                        \
      return metal::as_type<T>(metal::name(metal::as_type<qmetal_sim::bits_t<T>>(x), here));         \
    } else {                                                                                          \
      return metal::name(x, here);                                                                    \
    }                                                                                                 \
  }
QMETAL_SIM_SIMD_BITWISE_BUILTIN(simd_and)
QMETAL_SIM_SIMD_BITWISE_BUILTIN(simd_or)
QMETAL_SIM_SIMD_BITWISE_BUILTIN(simd_xor)
#undef QMETAL_SIM_SIMD_BITWISE_BUILTIN
#undef QMETAL_SIM_SIMD_BUILTIN
#undef QMETAL_SIM_SIMD_BUILTIN_LANE
#undef QMETAL_SIM_SIMD_BUILTIN_FILL
