// The CUDA target's view of the hardware: execution-space macros and the few
// warp, barrier, atomic and conversion primitives the MSL stand-ins below are
// built from. Two ways in:
//   * nvcc (the `cuda` backend's build, and CI where the nvidia-cuda-nvcc
//     wheel is installed): CUDA's own headers are already there, the
//     primitives are CUDA's intrinsics;
//   * clang -x cuda -nocudainc -nocudalib (CI's translation check without any
//     CUDA installation): nothing is declared, so the execution-space
//     attributes are spelled out here and the primitives are clang's NVPTX
//     builtins, which compile to the same PTX instructions.
// Math goes through libdevice's __nv_* functions on both (nvcc links
// libdevice itself; clang -nocudalib leaves them as .extern in the PTX).
#pragma once

#if !defined(__CUDACC__) && !defined(__CUDA__)
#error "qmetal_cuda headers are compiled as CUDA (nvcc, or clang++ -x cuda)"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include <cmath>
#include <cfloat>
#include <cstdlib>

// C's math functions, which CUDA's headers (and libstdc++'s <math.h>, which
// they include) declare in the global namespace with float overloads. MSL
// has none there: a kernel's own `float log1p(float)` (MLX's utils.h) would
// clash, and unqualified calls would find them beside metal::'s. So these
// names, from here on (after every system header), are macros for names of
// this shim's own: metal::sqrt is metal::qmetal_msl_sqrt in the source and in
// the shim alike. (The simulator needs no such step: its <cmath> leaves the
// global namespace to C's double functions.)
#define acos qmetal_msl_acos
#define acosh qmetal_msl_acosh
#define asin qmetal_msl_asin
#define asinh qmetal_msl_asinh
#define atan qmetal_msl_atan
#define atan2 qmetal_msl_atan2
#define atanh qmetal_msl_atanh
#define cbrt qmetal_msl_cbrt
#define ceil qmetal_msl_ceil
#define copysign qmetal_msl_copysign
#define cos qmetal_msl_cos
#define cosh qmetal_msl_cosh
#define erf qmetal_msl_erf
#define erfc qmetal_msl_erfc
#define exp qmetal_msl_exp
#define exp10 qmetal_msl_exp10
#define exp2 qmetal_msl_exp2
#define expm1 qmetal_msl_expm1
#define fabs qmetal_msl_fabs
#define fdim qmetal_msl_fdim
#define floor qmetal_msl_floor
#define fma qmetal_msl_fma
#define fmax qmetal_msl_fmax
#define fmin qmetal_msl_fmin
#define fmod qmetal_msl_fmod
#define frexp qmetal_msl_frexp
#define hypot qmetal_msl_hypot
#define isfinite qmetal_msl_isfinite
#define isinf qmetal_msl_isinf
#define isnan qmetal_msl_isnan
#define ldexp qmetal_msl_ldexp
#define lgamma qmetal_msl_lgamma
#define log qmetal_msl_log
#define log10 qmetal_msl_log10
#define log1p qmetal_msl_log1p
#define log2 qmetal_msl_log2
#define logb qmetal_msl_logb
#define modf qmetal_msl_modf
#define nextafter qmetal_msl_nextafter
#define pow qmetal_msl_pow
#define remainder qmetal_msl_remainder
#define rint qmetal_msl_rint
#define round qmetal_msl_round
#define signbit qmetal_msl_signbit
#define sin qmetal_msl_sin
#define sinh qmetal_msl_sinh
#define sqrt qmetal_msl_sqrt
#define tan qmetal_msl_tan
#define tanh qmetal_msl_tanh
#define tgamma qmetal_msl_tgamma
#define trunc qmetal_msl_trunc

#if defined(__NVCC__)
#define QMETAL_CUDA_NVCC 1
#else
#define QMETAL_CUDA_NVCC 0
#endif

#ifndef __device__
#define __device__ __attribute__((device))
#endif
#ifndef __host__
#define __host__ __attribute__((host))
#endif
#ifndef __global__
#define __global__ __attribute__((global))
#endif
#ifndef __shared__
#define __shared__ __attribute__((shared))
#endif
#ifndef __constant__
#define __constant__ __attribute__((constant))
#endif
#ifndef __forceinline__
#define __forceinline__ __inline__ __attribute__((always_inline))
#endif

// Shim functions: device code, always inlined (they stand in for hardware
// operations and Apple's compiler inlines its library the same way).
#define QMETAL_CUDA_FN __device__ __forceinline__
// Type plumbing that constant expressions also use (numeric limits, bit
// patterns): usable from host and device.
#define QMETAL_CUDA_HD __host__ __device__ __forceinline__

namespace qmetal_cuda {

inline constexpr unsigned kWarp = 32;

namespace hw {

#if QMETAL_CUDA_NVCC
QMETAL_CUDA_FN unsigned tid_x() { return threadIdx.x; }
QMETAL_CUDA_FN unsigned tid_y() { return threadIdx.y; }
QMETAL_CUDA_FN unsigned tid_z() { return threadIdx.z; }
QMETAL_CUDA_FN unsigned ntid_x() { return blockDim.x; }
QMETAL_CUDA_FN unsigned ntid_y() { return blockDim.y; }
QMETAL_CUDA_FN unsigned ntid_z() { return blockDim.z; }
QMETAL_CUDA_FN unsigned ctaid_x() { return blockIdx.x; }
QMETAL_CUDA_FN unsigned ctaid_y() { return blockIdx.y; }
QMETAL_CUDA_FN unsigned ctaid_z() { return blockIdx.z; }
QMETAL_CUDA_FN void barrier() { __syncthreads(); }
QMETAL_CUDA_FN void warp_sync(unsigned mask) { __syncwarp(mask); }
QMETAL_CUDA_FN unsigned active_mask() { return __activemask(); }
QMETAL_CUDA_FN unsigned ballot(unsigned mask, bool p) { return __ballot_sync(mask, p); }
QMETAL_CUDA_FN uint32_t shfl_idx(unsigned mask, uint32_t v, int src, int width) {
  return __shfl_sync(mask, v, src, width);
}
QMETAL_CUDA_FN uint32_t shfl_up(unsigned mask, uint32_t v, unsigned delta, int width) {
  return __shfl_up_sync(mask, v, delta, width);
}
QMETAL_CUDA_FN uint32_t shfl_down(unsigned mask, uint32_t v, unsigned delta, int width) {
  return __shfl_down_sync(mask, v, delta, width);
}
QMETAL_CUDA_FN uint32_t shfl_xor(unsigned mask, uint32_t v, int lane_mask, int width) {
  return __shfl_xor_sync(mask, v, lane_mask, width);
}
QMETAL_CUDA_FN void fence_block() { __threadfence_block(); }
#else
QMETAL_CUDA_FN unsigned tid_x() { return __nvvm_read_ptx_sreg_tid_x(); }
QMETAL_CUDA_FN unsigned tid_y() { return __nvvm_read_ptx_sreg_tid_y(); }
QMETAL_CUDA_FN unsigned tid_z() { return __nvvm_read_ptx_sreg_tid_z(); }
QMETAL_CUDA_FN unsigned ntid_x() { return __nvvm_read_ptx_sreg_ntid_x(); }
QMETAL_CUDA_FN unsigned ntid_y() { return __nvvm_read_ptx_sreg_ntid_y(); }
QMETAL_CUDA_FN unsigned ntid_z() { return __nvvm_read_ptx_sreg_ntid_z(); }
QMETAL_CUDA_FN unsigned ctaid_x() { return __nvvm_read_ptx_sreg_ctaid_x(); }
QMETAL_CUDA_FN unsigned ctaid_y() { return __nvvm_read_ptx_sreg_ctaid_y(); }
QMETAL_CUDA_FN unsigned ctaid_z() { return __nvvm_read_ptx_sreg_ctaid_z(); }
QMETAL_CUDA_FN void barrier() { __syncthreads(); }
QMETAL_CUDA_FN void warp_sync(unsigned mask) { __nvvm_bar_warp_sync(mask); }
QMETAL_CUDA_FN unsigned active_mask() { return __nvvm_activemask(); }
QMETAL_CUDA_FN unsigned ballot(unsigned mask, bool p) { return __nvvm_vote_ballot_sync(mask, p); }
// The shfl instruction's c operand: the segment mask and, except for up, the clamp.
QMETAL_CUDA_FN int shfl_c(int width, bool clamp) { return ((kWarp - width) << 8) | (clamp ? 0x1f : 0); }
QMETAL_CUDA_FN uint32_t shfl_idx(unsigned mask, uint32_t v, int src, int width) {
  return uint32_t(__nvvm_shfl_sync_idx_i32(mask, int(v), src, shfl_c(width, true)));
}
QMETAL_CUDA_FN uint32_t shfl_up(unsigned mask, uint32_t v, unsigned delta, int width) {
  return uint32_t(__nvvm_shfl_sync_up_i32(mask, int(v), int(delta), shfl_c(width, false)));
}
QMETAL_CUDA_FN uint32_t shfl_down(unsigned mask, uint32_t v, unsigned delta, int width) {
  return uint32_t(__nvvm_shfl_sync_down_i32(mask, int(v), int(delta), shfl_c(width, true)));
}
QMETAL_CUDA_FN uint32_t shfl_xor(unsigned mask, uint32_t v, int lane_mask, int width) {
  return uint32_t(__nvvm_shfl_sync_bfly_i32(mask, int(v), lane_mask, shfl_c(width, true)));
}
QMETAL_CUDA_FN void fence_block() { __nvvm_membar_cta(); }
#endif

QMETAL_CUDA_FN unsigned thread_index() { return tid_x() + ntid_x() * (tid_y() + ntid_y() * tid_z()); }
QMETAL_CUDA_FN unsigned lane() { return thread_index() % kWarp; }
QMETAL_CUDA_FN unsigned threads() { return ntid_x() * ntid_y() * ntid_z(); }
// The lanes of the caller's warp that exist: all 32 but in a threadgroup
// whose size is not a multiple of 32, where the last warp is partial.
QMETAL_CUDA_FN unsigned warp_lanes() {
  const unsigned first = thread_index() / kWarp * kWarp, left = threads() - first;
  return left >= kWarp ? 0xFFFFFFFFu : (1u << left) - 1u;
}

// Half conversions in hardware (round to nearest even; subnormals kept).
QMETAL_CUDA_FN uint16_t float_to_half_bits(float f) {
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
QMETAL_CUDA_FN float half_bits_to_float(uint16_t h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

}  // namespace hw
}  // namespace qmetal_cuda

// libdevice (both compilers link or reference it by these names).
#define QMETAL_CUDA_LIBDEVICE1(name) extern "C" __device__ float __nv_##name##f(float);
#define QMETAL_CUDA_LIBDEVICE2(name) extern "C" __device__ float __nv_##name##f(float, float);
QMETAL_CUDA_LIBDEVICE1(sqrt)
QMETAL_CUDA_LIBDEVICE1(rsqrt)
QMETAL_CUDA_LIBDEVICE1(exp)
QMETAL_CUDA_LIBDEVICE1(exp2)
QMETAL_CUDA_LIBDEVICE1(exp10)
QMETAL_CUDA_LIBDEVICE1(log)
QMETAL_CUDA_LIBDEVICE1(log2)
QMETAL_CUDA_LIBDEVICE1(log10)
QMETAL_CUDA_LIBDEVICE1(sin)
QMETAL_CUDA_LIBDEVICE1(cos)
QMETAL_CUDA_LIBDEVICE1(tan)
QMETAL_CUDA_LIBDEVICE1(asin)
QMETAL_CUDA_LIBDEVICE1(acos)
QMETAL_CUDA_LIBDEVICE1(atan)
QMETAL_CUDA_LIBDEVICE1(sinh)
QMETAL_CUDA_LIBDEVICE1(cosh)
QMETAL_CUDA_LIBDEVICE1(tanh)
QMETAL_CUDA_LIBDEVICE1(asinh)
QMETAL_CUDA_LIBDEVICE1(acosh)
QMETAL_CUDA_LIBDEVICE1(atanh)
QMETAL_CUDA_LIBDEVICE1(sinpi)
QMETAL_CUDA_LIBDEVICE1(cospi)
QMETAL_CUDA_LIBDEVICE1(erf)
QMETAL_CUDA_LIBDEVICE1(floor)
QMETAL_CUDA_LIBDEVICE1(ceil)
QMETAL_CUDA_LIBDEVICE1(round)
QMETAL_CUDA_LIBDEVICE1(rint)
QMETAL_CUDA_LIBDEVICE1(trunc)
QMETAL_CUDA_LIBDEVICE1(fabs)
QMETAL_CUDA_LIBDEVICE2(pow)
QMETAL_CUDA_LIBDEVICE2(fmin)
QMETAL_CUDA_LIBDEVICE2(fmax)
QMETAL_CUDA_LIBDEVICE2(fmod)
QMETAL_CUDA_LIBDEVICE2(remainder)
QMETAL_CUDA_LIBDEVICE2(copysign)
QMETAL_CUDA_LIBDEVICE2(atan2)
QMETAL_CUDA_LIBDEVICE2(nextafter)
#undef QMETAL_CUDA_LIBDEVICE1
#undef QMETAL_CUDA_LIBDEVICE2
extern "C" __device__ float __nv_fmaf(float, float, float);
extern "C" __device__ float __nv_ldexpf(float, int);
extern "C" __device__ float __nv_frexpf(float, int*);
extern "C" __device__ int __nv_isnanf(float);
extern "C" __device__ int __nv_isinff(float);
extern "C" __device__ int __nv_finitef(float);
extern "C" __device__ int __nv_popc(unsigned);
extern "C" __device__ int __nv_popcll(unsigned long long);
extern "C" __device__ int __nv_clz(int);
extern "C" __device__ int __nv_clzll(long long);
extern "C" __device__ int __nv_ffs(int);
extern "C" __device__ long long __nv_mul64hi(long long, long long);
extern "C" __device__ unsigned long long __nv_umul64hi(unsigned long long, unsigned long long);
