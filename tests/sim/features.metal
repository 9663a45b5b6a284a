// Feature kernels for the simulator's tests (tests/test_sim_kernels.py): one
// kernel per MSL construct the shim supports, each checked there against a
// NumPy model. Written as ordinary MSL; nothing here is simulator-specific.
#include <metal_stdlib>
using namespace metal;

// --- simdgroup and quadgroup collectives -------------------------------------

// Threads with live[tid] == 0 return at once, so every collective below runs
// with some lanes gone; threadgroup sizes that are not multiples of 32 leave
// the last simdgroup partial.
constant constexpr int kFloatResults = 21;

kernel void collectives_float(device const float* x [[buffer(0)]],
                              device const uint* live [[buffer(1)]],
                              device float* out [[buffer(2)]],
                              uint tid [[thread_index_in_threadgroup]],
                              ushort lane [[thread_index_in_simdgroup]]) {
  if (live[tid] == 0) return;
  const float v = x[tid];
  device float* o = out + tid * kFloatResults;
  o[0] = simd_sum(v);
  o[1] = simd_product(v);
  o[2] = simd_min(v);
  o[3] = simd_max(v);
  o[4] = simd_prefix_inclusive_sum(v);
  o[5] = simd_prefix_exclusive_sum(v);
  o[6] = simd_prefix_inclusive_product(v);
  o[7] = simd_shuffle(v, ushort((lane * 7 + 3) % 32));
  o[8] = simd_shuffle_up(v, 3);
  o[9] = simd_shuffle_down(v, 5);
  o[10] = simd_shuffle_xor(v, 6);
  o[11] = simd_broadcast(v, 2);
  o[12] = simd_broadcast_first(v);
  o[13] = simd_shuffle_rotate_down(v, 3);
  o[14] = quad_sum(v);
  o[15] = quad_shuffle_xor(v, 1);
  o[16] = quad_broadcast(v, 3);
  o[17] = quad_prefix_inclusive_sum(v);
  const float2 pair = simd_sum(float2(v, 2 * v));
  o[18] = pair.y - 2 * pair.x;  // 0 when the vector form sums component-wise
  o[19] = simd_is_first() ? 1.0f : 0.0f;
  o[20] = quad_max(v);
}

constant constexpr int kIntResults = 8;

kernel void collectives_int(device const int* x [[buffer(0)]],
                            device const uint* live [[buffer(1)]],
                            device int* out [[buffer(2)]],
                            uint tid [[thread_index_in_threadgroup]]) {
  if (live[tid] == 0) return;
  const int v = x[tid];
  device int* o = out + tid * kIntResults;
  o[0] = simd_sum(v);
  o[1] = simd_max(v);
  o[2] = int(simd_and(uint(v)));
  o[3] = int(simd_or(uint(v)));
  o[4] = int(simd_xor(uint(v)));
  const simd_vote vote = simd_ballot(v > 0);
  o[5] = int(uint(ulong(vote)));
  o[6] = simd_all(v > -100) ? 1 : 0;
  o[7] = simd_any(v > 6) ? 1 : 0;
}

// --- barriers and threadgroup memory ----------------------------------------

// Tree reduction in a threadgroup array; n threads, any n up to 1024.
constant constexpr int kSharedRows = 32;

kernel void threadgroup_sum(device const float* x [[buffer(0)]],
                            device float* out [[buffer(1)]],
                            uint tid [[thread_index_in_threadgroup]],
                            uint n [[threads_per_threadgroup]],
                            uint group [[threadgroup_position_in_grid]]) {
  threadgroup float shared[kSharedRows * 32];  // a bound that multiplies
  shared[tid] = x[group * n + tid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = 512; stride > 0; stride /= 2) {
    if (tid < stride && tid + stride < n) shared[tid] += shared[tid + stride];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (tid == 0) out[group] = shared[0];
}

// Two [[threadgroup(n)]] arguments sized by the host: each thread writes its
// slot, then reads its neighbour's; slot `skip` is never written.
kernel void threadgroup_arguments(device const int* x [[buffer(0)]],
                                  device int* out [[buffer(1)]],
                                  constant uint& skip [[buffer(2)]],
                                  threadgroup int* first [[threadgroup(0)]],
                                  threadgroup short* second [[threadgroup(1)]],
                                  uint tid [[thread_index_in_threadgroup]],
                                  uint n [[threads_per_threadgroup]],
                                  uint group [[threadgroup_position_in_grid]]) {
  const uint i = group * n + tid;
  if (tid != skip) {
    first[tid] = x[i];
    second[tid] = short(-x[i]);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint next = (tid + 1) % n;
  out[2 * i] = first[next];
  out[2 * i + 1] = second[next];
}

// --- grids and thread positions ---------------------------------------------

kernel void positions(device uint* out [[buffer(0)]],
                      constant uint3& grid_threads [[buffer(1)]],
                      uint3 pos [[thread_position_in_grid]],
                      uint3 local [[thread_position_in_threadgroup]],
                      uint3 group [[threadgroup_position_in_grid]],
                      uint3 size [[threads_per_threadgroup]],
                      uint3 groups [[threadgroups_per_grid]],
                      uint index [[thread_index_in_threadgroup]],
                      ushort simd_lane [[thread_index_in_simdgroup]],
                      ushort simd_group [[simdgroup_index_in_threadgroup]],
                      ushort width [[threads_per_simdgroup]]) {
  const uint linear = pos.x + grid_threads.x * (pos.y + grid_threads.y * pos.z);
  device uint* o = out + linear * 12;
  o[0] += 1;  // counts visits: exactly one thread per position
  o[1] = local.x;
  o[2] = local.y;
  o[3] = group.x;
  o[4] = group.y;
  o[5] = size.x;
  o[6] = size.y;
  o[7] = groups.x * 1000 + groups.y;
  o[8] = index;
  o[9] = simd_group * 32 + simd_lane;
  o[10] = width;
  o[11] = local.z + size.z * 100 + group.z * 10000;
}

// --- function constants -------------------------------------------------------

constant bool use_offset [[function_constant(0)]];
constant int repeat [[function_constant(1)]];
constant float scale [[function_constant(2)]];
constant half half_scale [[function_constant(3)]];
constant bool doubled = repeat > 1 && use_offset;

kernel void function_constants(device float* out [[buffer(0)]], uint tid [[thread_position_in_grid]]) {
  float v = float(tid);
  if (use_offset) v += 100.0f;
  for (int i = 0; i < repeat; ++i) v *= 2.0f;
  if (is_function_constant_defined(scale)) v *= scale;
  out[4 * tid] = v;
  out[4 * tid + 1] = doubled ? 1.0f : 0.0f;
  out[4 * tid + 2] = is_function_constant_defined(half_scale) ? float(half_scale) : -1.0f;
  out[4 * tid + 3] = is_function_constant_defined(repeat) ? 1.0f : 0.0f;
}

// --- half, bfloat and bit casts -------------------------------------------------

kernel void conversions(device const float* x [[buffer(0)]],
                        device const float* y [[buffer(1)]],
                        device half* as_half [[buffer(2)]],
                        device bfloat* as_bfloat [[buffer(3)]],
                        device half* half_ops [[buffer(4)]],
                        device bfloat* bfloat_ops [[buffer(5)]],
                        device uint* bits [[buffer(6)]],
                        uint i [[thread_position_in_grid]]) {
  as_half[i] = half(x[i]);
  as_bfloat[i] = bfloat(x[i]);
  const half a = half(x[i]), b = half(y[i]);
  half_ops[3 * i] = a + b;
  half_ops[3 * i + 1] = a * b;
  half_ops[3 * i + 2] = a / b;
  const bfloat c = bfloat(x[i]), d = bfloat(y[i]);
  bfloat_ops[2 * i] = c + d;
  bfloat_ops[2 * i + 1] = c * d;
  bits[i] = as_type<uint>(x[i]);
}

// --- math -------------------------------------------------------------------------

constant constexpr int kMathResults = 12;

kernel void math(device const float4* x [[buffer(0)]],
                 device float* out [[buffer(1)]],
                 uint i [[thread_position_in_grid]]) {
  const float4 v = x[i];
  device float* o = out + i * kMathResults;
  o[0] = exp(v.x);
  o[1] = precise::log(fabs(v.y) + 1.0f);
  o[2] = sqrt(fabs(v.z));
  o[3] = fast::rsqrt(fabs(v.w) + 0.5f);
  o[4] = fma(v.x, v.y, v.z);
  o[5] = clamp(v.x, -0.5f, 0.5f);
  o[6] = select(v.y, v.z, v.x > v.w);
  o[7] = dot(v, float4(1, 2, 3, 4));
  o[8] = max(abs(v.x), min(v.y, v.z));
  o[9] = metal::tanh(v.w);
  const float4 w = clamp(v * 2.0f, float4(-1), float4(1));
  o[10] = w.x + w.y * 10 + w.z * 100 + w[3] * 1000;
  o[11] = float(popcount(as_type<uint>(v.x))) + float(clz(uint(i + 1))) * 100;
}

// --- simdgroup matrices -----------------------------------------------------------

// C[M, N] = A[M, K] @ B[K, N] (or @ B^T with transpose_b), one simdgroup per
// 8x8 tile of C; M, N, K multiples of 8.
struct MatmulArgs {
  uint M, N, K;
  uint transpose_b;
};

template <typename T>
[[kernel]] void simd_matmul(constant MatmulArgs& args [[buffer(0)]],
                            device const T* a [[buffer(1)]],
                            device const T* b [[buffer(2)]],
                            device float* c [[buffer(3)]],
                            uint2 tile [[threadgroup_position_in_grid]]) {
  simdgroup_matrix<float, 8, 8> acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  simdgroup_matrix<T, 8, 8> ma, mb;
  for (uint k = 0; k < args.K; k += 8) {
    simdgroup_load(ma, a, args.K, ulong2(k, tile.y * 8));
    if (args.transpose_b) {
      simdgroup_load(mb, b, args.K, ulong2(k, tile.x * 8), true);
    } else {
      simdgroup_load(mb, b, args.N, ulong2(tile.x * 8, k));
    }
    simdgroup_multiply_accumulate(acc, ma, mb, acc);
  }
  simdgroup_store(acc, c, args.N, ulong2(tile.x * 8, tile.y * 8));
}

template [[host_name("simd_matmul_float")]] [[kernel]] decltype(simd_matmul<float>) simd_matmul<float>;
template [[host_name("simd_matmul_half")]] [[kernel]] decltype(simd_matmul<half>) simd_matmul<half>;

// Which element of a loaded 8x8 matrix each lane holds.
kernel void matrix_layout(device const float* m [[buffer(0)]],
                          device float* out [[buffer(1)]],
                          ushort lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 mat;
  simdgroup_load(mat, m);
  out[2 * lane] = mat.thread_elements()[0];
  out[2 * lane + 1] = mat.thread_elements()[1];
}

// --- atomics ------------------------------------------------------------------------

kernel void atomics(device atomic_uint* counter [[buffer(0)]],
                    device atomic_float* total [[buffer(1)]],
                    device uint* per_group [[buffer(2)]],
                    device const float* x [[buffer(3)]],
                    uint tid [[thread_index_in_threadgroup]],
                    uint group [[threadgroup_position_in_grid]],
                    uint pos [[thread_position_in_grid]]) {
  threadgroup atomic_uint local_count;
  if (tid == 0) atomic_store_explicit(&local_count, 0u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&local_count, 1u, memory_order_relaxed);
  atomic_fetch_add_explicit(counter, 1u, memory_order_relaxed);
  atomic_fetch_add_explicit(total, x[pos], memory_order_relaxed);
  atomic_fetch_max_explicit(counter + 1, pos, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) per_group[group] = atomic_load_explicit(&local_count, memory_order_relaxed);
}
