// Kernels with bugs a GPU would hang on or silently compute wrong; the
// simulator must report each (tests/test_sim_kernels.py).
#include <metal_stdlib>
using namespace metal;

kernel void barrier_after_return(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid == 5) return;
  threadgroup_barrier(mem_flags::mem_none);
  out[tid] = 1.0f;
}

kernel void different_collectives(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  float v = float(lane);
  if (lane < 16) {
    v = simd_sum(v);
  } else {
    v = simd_max(v);
  }
  out[lane] = v;
}

kernel void different_call_sites(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  float v = float(lane);
  if (lane % 2 == 0) {
    v = simd_sum(v);
  } else {
    v = simd_sum(v);
  }
  out[lane] = v;
}

kernel void same_line_different_ops(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  out[lane] = lane < 8 ? simd_sum(float(lane)) : simd_min(float(lane));
}

// Reads its neighbour's slot without a barrier: the result depends on the
// order threads run in.
kernel void missing_barrier(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]],
                            uint n [[threads_per_threadgroup]]) {
  threadgroup float shared[256];
  shared[tid] = float(tid);
  out[tid] = shared[(tid + 1) % n];
}

// Reads one element past the end of x.
kernel void out_of_bounds(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                          constant uint& n [[buffer(2)]], uint tid [[thread_position_in_grid]]) {
  out[tid] = x[tid + n];
}
