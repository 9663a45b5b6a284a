// Everything a .metal file sees on the CUDA target, included first by the
// CUDA the generator emits (python/qmetal/sim/_cuda.py): the MSL types and
// library and the glue of the __global__ entry points. Unlike the
// simulator's prelude (csrc/sim/include/qmetal_sim/prelude.h) it defines no
// address-space macros: `device` and `constant` are also words inside
// CUDA's own __device__ and __constant__ (__attribute__((device))), so the
// generator drops those keywords itself, makes threadgroup variables
// __shared__, program-scope constants __device__ and every function
// __device__.
#pragma once

#include "qmetal_cuda/abi.h"
#include "qmetal_cuda/atomic.h"
#include "qmetal_cuda/builtins.h"
#include "qmetal_cuda/math.h"
#include "qmetal_cuda/simd.h"
#include "qmetal_cuda/types.h"

namespace qmetal_cuda {

// Kernel arguments, converted to whatever the kernel's parameter declares.
struct BufferArg {
  void* pointer;
  template <class T>
  QMETAL_CUDA_FN operator T*() const {
    return static_cast<T*>(pointer);
  }
  template <class T, std::enable_if_t<!std::is_pointer_v<T>, int> = 0>
  QMETAL_CUDA_FN operator T&() const {
    return *static_cast<T*>(pointer);
  }
};

struct ThreadgroupArg {
  void* pointer;
  template <class T>
  QMETAL_CUDA_FN operator T*() const {
    return static_cast<T*>(pointer);
  }
};

struct Uint3 {
  uint32_t x, y, z;
};

struct PositionArg {
  Uint3 value;
  template <class T>
  QMETAL_CUDA_FN operator T() const {
    if constexpr (metal::is_vector_v<T>) {
      using E = typename T::value_type;
      const E all[3] = {E(value.x), E(value.y), E(value.z)};
      T r;
#pragma unroll
      for (int i = 0; i < T::size; ++i) r[i] = all[i];
      return r;
    } else {
      return T(value.x);
    }
  }
};

QMETAL_CUDA_FN PositionArg position(Uint3 v) { return {v}; }
QMETAL_CUDA_FN PositionArg position(uint32_t v) { return {{v, 0, 0}}; }

// The thread-position attributes, as the simulator's executor computes them
// (csrc/sim/executor.cpp), from CUDA's block and thread indices.
namespace ids {
QMETAL_CUDA_FN Uint3 thread_position_in_threadgroup() { return {hw::tid_x(), hw::tid_y(), hw::tid_z()}; }
QMETAL_CUDA_FN Uint3 threads_per_threadgroup() { return {hw::ntid_x(), hw::ntid_y(), hw::ntid_z()}; }
QMETAL_CUDA_FN Uint3 threadgroup_position_in_grid(const Params& p) {
  return {p.group_base[0] + hw::ctaid_x(), p.group_base[1] + hw::ctaid_y(), p.group_base[2] + hw::ctaid_z()};
}
QMETAL_CUDA_FN Uint3 threadgroups_per_grid(const Params& p) { return {p.grid[0], p.grid[1], p.grid[2]}; }
QMETAL_CUDA_FN Uint3 thread_position_in_grid(const Params& p) {
  const Uint3 g = threadgroup_position_in_grid(p), t = thread_position_in_threadgroup(), n = threads_per_threadgroup();
  return {g.x * n.x + t.x, g.y * n.y + t.y, g.z * n.z + t.z};
}
QMETAL_CUDA_FN Uint3 threads_per_grid(const Params& p) {
  const Uint3 n = threads_per_threadgroup();
  return {p.grid[0] * n.x, p.grid[1] * n.y, p.grid[2] * n.z};
}
QMETAL_CUDA_FN uint32_t thread_index_in_threadgroup() { return hw::thread_index(); }
QMETAL_CUDA_FN uint32_t thread_index_in_simdgroup() { return hw::lane(); }
QMETAL_CUDA_FN uint32_t simdgroup_index_in_threadgroup() { return hw::thread_index() / kWarp; }
QMETAL_CUDA_FN uint32_t threads_per_simdgroup() { return kWarp; }
QMETAL_CUDA_FN uint32_t simdgroups_per_threadgroup() { return (hw::threads() + kWarp - 1) / kWarp; }
QMETAL_CUDA_FN uint32_t thread_index_in_quadgroup() { return hw::lane() % 4u; }
QMETAL_CUDA_FN uint32_t quadgroup_index_in_threadgroup() { return hw::thread_index() / 4u; }
QMETAL_CUDA_FN uint32_t quadgroups_per_threadgroup() { return (hw::threads() + 3u) / 4u; }
}  // namespace ids

// [[function_constant(i)]]: a DispatchPlan carries no function constants
// (the planner specializes with template arguments), so on the CUDA target
// every one is undefined and reads as T{}; the simulator's launches may
// define them.
template <class T>
QMETAL_CUDA_FN T function_constant(uint32_t) {
  return T{};
}
template <class T>
QMETAL_CUDA_FN bool function_constant_defined(uint32_t) {
  return false;
}

// [[threadgroup(i)]] arguments live in the launch's dynamic shared memory.
extern __shared__ __attribute__((aligned(16))) unsigned char dynamic_threadgroup_memory[];

}  // namespace qmetal_cuda

template <class FunctionConstant>
__device__ bool is_function_constant_defined(const FunctionConstant& constant) {
  return constant.defined();
}
