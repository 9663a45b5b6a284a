// The compiler builtins behind Apple's <metal_math> and <metal_simdgroup>
// that kernels may call directly (MLX's bf16_math.h builds its bfloat
// overloads from them), each forwarding to the metal:: function of the same
// name, as in the simulator (csrc/sim/include/qmetal_sim/builtins.h), less
// the call-site argument the simulator's divergence reports take.
#pragma once

#include "qmetal_cuda/simd.h"

#define QMETAL_CUDA_MATH_BUILTIN1(name)                 \
  template <class T>                                    \
  QMETAL_CUDA_FN T __metal_##name(T x, bool = false) {  \
    return metal::name(x);                              \
  }
#define QMETAL_CUDA_MATH_BUILTIN2(name)                      \
  template <class T>                                         \
  QMETAL_CUDA_FN T __metal_##name(T x, T y, bool = false) {  \
    return metal::name(x, y);                                \
  }
#define QMETAL_CUDA_MATH_BUILTIN3(name)                           \
  template <class T>                                              \
  QMETAL_CUDA_FN T __metal_##name(T x, T y, T z, bool = false) {  \
    return metal::name(x, y, z);                                  \
  }

QMETAL_CUDA_MATH_BUILTIN1(acos)
QMETAL_CUDA_MATH_BUILTIN1(acosh)
QMETAL_CUDA_MATH_BUILTIN1(asin)
QMETAL_CUDA_MATH_BUILTIN1(asinh)
QMETAL_CUDA_MATH_BUILTIN1(atan)
QMETAL_CUDA_MATH_BUILTIN1(atanh)
QMETAL_CUDA_MATH_BUILTIN1(ceil)
QMETAL_CUDA_MATH_BUILTIN1(cos)
QMETAL_CUDA_MATH_BUILTIN1(cosh)
QMETAL_CUDA_MATH_BUILTIN1(cospi)
QMETAL_CUDA_MATH_BUILTIN1(exp)
QMETAL_CUDA_MATH_BUILTIN1(exp10)
QMETAL_CUDA_MATH_BUILTIN1(exp2)
QMETAL_CUDA_MATH_BUILTIN1(fabs)
QMETAL_CUDA_MATH_BUILTIN1(floor)
QMETAL_CUDA_MATH_BUILTIN1(fract)
QMETAL_CUDA_MATH_BUILTIN1(log)
QMETAL_CUDA_MATH_BUILTIN1(log10)
QMETAL_CUDA_MATH_BUILTIN1(log2)
QMETAL_CUDA_MATH_BUILTIN1(rint)
QMETAL_CUDA_MATH_BUILTIN1(round)
QMETAL_CUDA_MATH_BUILTIN1(rsqrt)
QMETAL_CUDA_MATH_BUILTIN1(sin)
QMETAL_CUDA_MATH_BUILTIN1(sinh)
QMETAL_CUDA_MATH_BUILTIN1(sinpi)
QMETAL_CUDA_MATH_BUILTIN1(sqrt)
QMETAL_CUDA_MATH_BUILTIN1(tan)
QMETAL_CUDA_MATH_BUILTIN1(tanh)
QMETAL_CUDA_MATH_BUILTIN1(tanpi)
QMETAL_CUDA_MATH_BUILTIN1(trunc)
QMETAL_CUDA_MATH_BUILTIN2(atan2)
QMETAL_CUDA_MATH_BUILTIN2(divide)
QMETAL_CUDA_MATH_BUILTIN2(fdim)
QMETAL_CUDA_MATH_BUILTIN2(fmax)
QMETAL_CUDA_MATH_BUILTIN2(fmin)
QMETAL_CUDA_MATH_BUILTIN2(fmod)
QMETAL_CUDA_MATH_BUILTIN2(nextafter)
QMETAL_CUDA_MATH_BUILTIN2(pow)
QMETAL_CUDA_MATH_BUILTIN2(powr)
QMETAL_CUDA_MATH_BUILTIN3(fma)
QMETAL_CUDA_MATH_BUILTIN3(fmax3)
QMETAL_CUDA_MATH_BUILTIN3(fmedian3)
QMETAL_CUDA_MATH_BUILTIN3(fmin3)
#undef QMETAL_CUDA_MATH_BUILTIN1
#undef QMETAL_CUDA_MATH_BUILTIN2
#undef QMETAL_CUDA_MATH_BUILTIN3

template <class T>
QMETAL_CUDA_FN T __metal_ldexp(T x, int k, bool = false) {
  return metal::ldexp(x, k);
}
template <class T>
QMETAL_CUDA_FN T __metal_frexp(T x, int* exponent) {
  return metal::frexp(x, *exponent);
}

template <class T>
QMETAL_CUDA_FN T __metal_get_simdgroup_size(T) {
  return T(qmetal_cuda::kWarp);
}
template <class T>
QMETAL_CUDA_FN T __metal_get_thread_index_in_simdgroup(T) {
  return T(qmetal_cuda::hw::lane());
}

#define QMETAL_CUDA_SIMD_BUILTIN(name)  \
  template <class T>                    \
  QMETAL_CUDA_FN T __metal_##name(T x) { \
    return metal::name(x);              \
  }
#define QMETAL_CUDA_SIMD_BUILTIN_LANE(name)          \
  template <class T>                                 \
  QMETAL_CUDA_FN T __metal_##name(T x, ushort lane) { \
    return metal::name(x, lane);                     \
  }
#define QMETAL_CUDA_SIMD_BUILTIN_FILL(name)                                    \
  template <class T>                                                           \
  QMETAL_CUDA_FN T __metal_##name(T x, T fill, ushort delta, ushort modulo) {  \
    return metal::name(x, fill, delta, modulo);                                \
  }

QMETAL_CUDA_SIMD_BUILTIN(simd_max)
QMETAL_CUDA_SIMD_BUILTIN(simd_min)
QMETAL_CUDA_SIMD_BUILTIN(simd_prefix_exclusive_product)
QMETAL_CUDA_SIMD_BUILTIN(simd_prefix_exclusive_sum)
QMETAL_CUDA_SIMD_BUILTIN(simd_prefix_inclusive_product)
QMETAL_CUDA_SIMD_BUILTIN(simd_prefix_inclusive_sum)
QMETAL_CUDA_SIMD_BUILTIN(simd_product)
QMETAL_CUDA_SIMD_BUILTIN(simd_sum)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_broadcast)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle_down)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle_rotate_down)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle_rotate_up)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle_up)
QMETAL_CUDA_SIMD_BUILTIN_LANE(simd_shuffle_xor)
QMETAL_CUDA_SIMD_BUILTIN_FILL(simd_shuffle_and_fill_down)
QMETAL_CUDA_SIMD_BUILTIN_FILL(simd_shuffle_and_fill_up)

#define QMETAL_CUDA_SIMD_BITWISE_BUILTIN(name)                                                           \
  template <class T>                                                                                     \
  QMETAL_CUDA_FN T __metal_##name(T x) {                                                                 \
    if constexpr (qmetal_cuda::is_float_v<T>) {                                                          \
      return metal::as_type<T>(metal::name(metal::as_type<qmetal_cuda::bits_t<T>>(x)));                 \
    } else {                                                                                             \
      return metal::name(x);                                                                             \
    }                                                                                                    \
  }
QMETAL_CUDA_SIMD_BITWISE_BUILTIN(simd_and)
QMETAL_CUDA_SIMD_BITWISE_BUILTIN(simd_or)
QMETAL_CUDA_SIMD_BITWISE_BUILTIN(simd_xor)
#undef QMETAL_CUDA_SIMD_BITWISE_BUILTIN
#undef QMETAL_CUDA_SIMD_BUILTIN
#undef QMETAL_CUDA_SIMD_BUILTIN_LANE
#undef QMETAL_CUDA_SIMD_BUILTIN_FILL
