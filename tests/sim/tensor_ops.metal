// Metal 4 tensor operations written from the documented API
// (../shared/design/METAL4_TENSOR_OPS.md), run by tests/test_sim_tensor_ops.py
// against float64 NumPy. Compiled with -std=metal4.0.
#include <metal_stdlib>
#include <metal_tensor>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>

using namespace metal;
using namespace mpp::tensor_ops;

struct Dims {
  uint M, N, K, pad;
};

constant constexpr int kTileM = 64;
constant constexpr int kTileN = 32;
constant constexpr int kStep = 32;
constant constexpr int kSimdgroups = 4;

// C [M, N] (float) = A B with every operand a device tensor and a dynamic K;
// A is stored [M, K] (or [K, M], tl), B [K, N] (or [N, K], tr). One 64 x 32
// tile of C per threadgroup of 4 simdgroups; the op clips the edges.
template <typename T, bool tl, bool tr, bool relaxed>
kernel void mm_device(constant Dims& d [[buffer(0)]], device T* A [[buffer(1)]], device T* B [[buffer(2)]],
                      device float* C [[buffer(3)]], uint2 tgid [[threadgroup_position_in_grid]]) {
  auto tA = tensor<device T, dextents<int32_t, 2>, tensor_inline>(
      A, tl ? dextents<int32_t, 2>(d.M, d.K) : dextents<int32_t, 2>(d.K, d.M));
  auto tB = tensor<device T, dextents<int32_t, 2>, tensor_inline>(
      B, tr ? dextents<int32_t, 2>(d.K, d.N) : dextents<int32_t, 2>(d.N, d.K));
  auto tC = tensor<device float, dextents<int32_t, 2>, tensor_inline>(C, dextents<int32_t, 2>(d.N, d.M));
  constexpr auto desc = matmul2d_descriptor(kTileM, kTileN, dynamic_length_v<int>, tl, tr, relaxed);
  matmul2d<desc, execution_simdgroups<kSimdgroups>> op;
  auto mA = tl ? tA.slice(tgid.y * kTileM, 0) : tA.slice(0, tgid.y * kTileM);
  auto mB = tr ? tB.slice(0, tgid.x * kTileN) : tB.slice(tgid.x * kTileN, 0);
  auto mC = tC.slice(tgid.x * kTileN, tgid.y * kTileM);
  op.run(mA, mB, mC);
}

template [[host_name("mm_device_half")]] kernel decltype(mm_device<half, false, false, false>) mm_device<half, false, false, false>;
template [[host_name("mm_device_half_tl_tr")]] kernel decltype(mm_device<half, true, true, false>) mm_device<half, true, true, false>;
template [[host_name("mm_device_half_tr")]] kernel decltype(mm_device<half, false, true, false>) mm_device<half, false, true, false>;
template [[host_name("mm_device_bfloat_tl")]] kernel decltype(mm_device<bfloat, true, false, false>) mm_device<bfloat, true, false, false>;
template [[host_name("mm_device_float")]] kernel decltype(mm_device<float, false, false, false>) mm_device<float, false, false, false>;
template [[host_name("mm_device_float_relaxed")]] kernel decltype(mm_device<float, false, false, true>) mm_device<float, false, false, true>;

// The same with an int32 destination: int8 x int8 -> int32.
kernel void mm_int8_int32(constant Dims& d [[buffer(0)]], device int8_t* A [[buffer(1)]],
                          device int8_t* B [[buffer(2)]], device int32_t* C [[buffer(3)]],
                          uint2 tgid [[threadgroup_position_in_grid]]) {
  auto tA = tensor(A, dextents<int32_t, 2>(d.K, d.M));
  auto tB = tensor(B, dextents<int32_t, 2>(d.N, d.K));
  auto tC = tensor(C, dextents<int32_t, 2>(d.N, d.M));
  matmul2d<matmul2d_descriptor(kTileM, kTileN, dynamic_extent), execution_simdgroups<kSimdgroups>> op;
  auto mA = tA.slice(0, tgid.y * kTileM);
  auto mB = tB.slice(tgid.x * kTileN, 0);
  auto mC = tC.slice(tgid.x * kTileN, tgid.y * kTileM);
  op.run(mA, mB, mC);
}

// The prefill pattern: per K step of 32, A and B tiles staged in threadgroup
// memory (zero beyond the matrix), a static K of 32, multiply_accumulate into
// a cooperative float destination zeroed through its slots, stored at the
// ragged edge of C. B is stored [N, K] (transpose_right).
kernel void mm_staged(constant Dims& d [[buffer(0)]], device half* A [[buffer(1)]], device half* B [[buffer(2)]],
                      device float* C [[buffer(3)]], uint2 tgid [[threadgroup_position_in_grid]],
                      uint t [[thread_index_in_threadgroup]]) {
  threadgroup half sa[kTileM * kStep];
  threadgroup half sb[kTileN * kStep];
  auto tA = tensor<threadgroup half, dextents<int32_t, 2>, tensor_inline>(sa, dextents<int32_t, 2>(kStep, kTileM));
  auto tB = tensor<threadgroup half, dextents<int32_t, 2>, tensor_inline>(sb, dextents<int32_t, 2>(kStep, kTileN));
  constexpr auto desc = matmul2d_descriptor(kTileM, kTileN, kStep, false, true, false,
                                            matmul2d_descriptor::mode::multiply_accumulate);
  matmul2d<desc, execution_simdgroups<kSimdgroups>> op;
  auto cT = op.get_destination_cooperative_tensor<decltype(tA), decltype(tB), float>();
  for (uint i = 0; i < cT.get_capacity(); ++i) {
    if (cT.is_valid_element(i)) cT[i] = 0.0f;
  }
  const uint m0 = tgid.y * kTileM, n0 = tgid.x * kTileN;
  for (uint k0 = 0; k0 < d.K; k0 += kStep) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint i = t; i < kTileM * kStep; i += kSimdgroups * 32) {
      const uint m = m0 + i / kStep, k = k0 + i % kStep;
      sa[i] = m < d.M && k < d.K ? A[m * d.K + k] : half(0.0f);
    }
    for (uint i = t; i < kTileN * kStep; i += kSimdgroups * 32) {
      const uint n = n0 + i / kStep, k = k0 + i % kStep;
      sb[i] = n < d.N && k < d.K ? B[n * d.K + k] : half(0.0f);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    op.run(tA, tB, cT);
  }
  auto tC = tensor(C, dextents<int32_t, 2>(d.N, d.M), array<int, 2>({1, int(d.N)}));
  cT.store(tC.slice(n0, m0));
}

// ggml's pattern: the left operand straight from device memory, views
// clamped to the K left (dynamic K), the first step in `multiply` mode and
// the rest accumulating; the epilogue goes through
// get_multidimensional_index: C = alpha * (A B) + bias[n].
kernel void mm_clamped(constant Dims& d [[buffer(0)]], device float* A [[buffer(1)]], device half* B [[buffer(2)]],
                       device float* C [[buffer(3)]], device float* bias [[buffer(4)]],
                       uint2 tgid [[threadgroup_position_in_grid]], uint t [[thread_index_in_threadgroup]]) {
  threadgroup half sb[kTileN * kStep];
  const uint m0 = tgid.y * kTileM, n0 = tgid.x * kTileN;
  constexpr auto first = matmul2d_descriptor(kTileM, kTileN, dynamic_extent, false, true, true);
  constexpr auto rest = matmul2d_descriptor(kTileM, kTileN, dynamic_extent, false, true, true,
                                            matmul2d_descriptor::mode::multiply_accumulate);
  matmul2d<first, execution_simdgroups<kSimdgroups>> op_first;
  matmul2d<rest, execution_simdgroups<kSimdgroups>> op_rest;
  auto probe_a = tensor(A, dextents<int32_t, 2>(kStep, kTileM));
  auto probe_b = tensor(sb, dextents<int32_t, 2>(kStep, kTileN));
  auto cT = op_first.get_destination_cooperative_tensor<decltype(probe_a), decltype(probe_b), float>();
  auto cR = op_rest.get_destination_cooperative_tensor<decltype(probe_a), decltype(probe_b), float>();
  for (uint k0 = 0; k0 < d.K; k0 += kStep) {
    const int k_left = min(int(kStep), int(d.K - k0));
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint i = t; i < kTileN * kStep; i += kSimdgroups * 32) {
      const uint n = n0 + i / kStep, k = k0 + i % kStep;
      sb[i] = n < d.N && k < d.K ? B[n * d.K + k] : half(0.0f);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    auto vA = tensor(A + m0 * d.K + k0, dextents<int32_t, 2>(k_left, d.M - m0), array<int, 2>({1, int(d.K)}));
    auto vB = tensor(sb, dextents<int32_t, 2>(k_left, kTileN), array<int, 2>({1, kStep}));
    if (k0 == 0) {
      op_first.run(vA, vB, cT);
      for (uint i = 0; i < cR.get_capacity(); ++i) cR.set(i, cT.get(i));
    } else {
      op_rest.run(vA, vB, cR);
    }
  }
  const float alpha = 0.5f;
  for (uint i = 0; i < cR.get_capacity(); ++i) {
    if (!cR.is_valid_element(i)) continue;
    const auto idx = cR.get_multidimensional_index(i);
    const uint n = n0 + idx[0], m = m0 + idx[1];
    if (m < d.M && n < d.N) C[m * d.N + n] = alpha * cR[i] + bias[n];
  }
}

// MLX's pattern: one simdgroup per 16 x 32 tile, every operand a
// cooperative tensor filled slot by slot through
// get_multidimensional_index; the destination loaded from C and stored back
// (C += A B). Each simdgroup of the threadgroup owns one tile of rows.
kernel void mm_cooperative_inputs(constant Dims& d [[buffer(0)]], device half* A [[buffer(1)]],
                                  device half* B [[buffer(2)]], device float* C [[buffer(3)]],
                                  uint2 tgid [[threadgroup_position_in_grid]],
                                  uint sg [[simdgroup_index_in_threadgroup]]) {
  constexpr auto desc = matmul2d_descriptor(16, 32, 16, false, false, true,
                                            matmul2d_descriptor::mode::multiply_accumulate);
  matmul2d<desc, execution_simdgroup> op;
  auto ca = op.get_left_input_cooperative_tensor<half, half, float>();
  auto cb = op.get_right_input_cooperative_tensor<half, half, float>();
  auto cc = op.get_destination_cooperative_tensor<decltype(ca), decltype(cb), float>();
  const uint m0 = (tgid.y * 2 + sg) * 16, n0 = tgid.x * 32;
  auto tC = tensor(C, dextents<int32_t, 2>(d.N, d.M));
  auto mC = tC.slice(n0, m0);
  cc.load(mC);
  for (uint k0 = 0; k0 < d.K; k0 += 16) {
    for (uint i = 0; i < ca.get_capacity(); ++i) {
      const auto idx = ca.get_multidimensional_index(i);  // (k, m)
      const uint m = m0 + idx[1], k = k0 + idx[0];
      ca[i] = ca.is_valid_element(i) && m < d.M && k < d.K ? A[m * d.K + k] : half(0.0f);
    }
    for (uint i = 0; i < cb.get_capacity(); ++i) {
      const auto idx = cb.get_multidimensional_index(i);  // (n, k)
      const uint k = k0 + idx[1], n = n0 + idx[0];
      cb[i] = cb.is_valid_element(i) && k < d.K && n < d.N ? B[k * d.N + n] : half(0.0f);
    }
    op.run(ca, cb, cc);
  }
  cc.store(mC);
}

// Records the destination layout: each valid slot writes its thread's
// index at its coordinates (a 64 x 32 tile, 4 simdgroups).
kernel void layout_probe(device float* owner [[buffer(0)]], uint t [[thread_index_in_threadgroup]]) {
  matmul2d<matmul2d_descriptor(kTileM, kTileN), execution_simdgroups<kSimdgroups>> op;
  auto cT = op.get_destination_cooperative_tensor<half, half, float>();
  for (uint i = 0; i < cT.get_capacity(); ++i) {
    if (!cT.is_valid_element(i)) continue;
    const auto idx = cT.get_multidimensional_index(i);
    owner[idx[1] * kTileN + idx[0]] = float(t);
  }
}

// --- bugs the simulator must report ----------------------------------------

// No barrier between staging B and the op: the op's inputs change under it.
kernel void missing_barrier(constant Dims& d [[buffer(0)]], device half* A [[buffer(1)]],
                            device half* B [[buffer(2)]], device float* C [[buffer(3)]],
                            uint t [[thread_index_in_threadgroup]]) {
  threadgroup half sb[kTileN * kStep];
  for (uint i = t; i < kTileN * kStep; i += kSimdgroups * 32) sb[i] = B[i];
  auto tA = tensor(A, dextents<int32_t, 2>(kStep, kTileM));
  auto tB = tensor(sb, dextents<int32_t, 2>(kStep, kTileN));
  auto tC = tensor(C, dextents<int32_t, 2>(kTileN, kTileM));
  matmul2d<matmul2d_descriptor(kTileM, kTileN, kStep, false, true), execution_simdgroups<kSimdgroups>> op;
  op.run(tA, tB, tC);  // <- missing barrier
}

// Threads that leave before the op: the scope no longer reaches it.
kernel void divergent_run(constant Dims& d [[buffer(0)]], device half* A [[buffer(1)]],
                          device half* B [[buffer(2)]], device float* C [[buffer(3)]],
                          uint t [[thread_index_in_threadgroup]]) {
  if (t >= d.M) return;
  auto tA = tensor(A, dextents<int32_t, 2>(kStep, kTileM));
  auto tB = tensor(B, dextents<int32_t, 2>(kTileN, kStep));
  auto tC = tensor(C, dextents<int32_t, 2>(kTileN, kTileM));
  matmul2d<matmul2d_descriptor(kTileM, kTileN), execution_simdgroups<kSimdgroups>> op;
  op.run(tA, tB, tC);  // <- divergent run
}

// A static K of 32 over a view that holds d.K < 32 along K.
kernel void static_k_too_long(constant Dims& d [[buffer(0)]], device half* A [[buffer(1)]],
                              device half* B [[buffer(2)]], device float* C [[buffer(3)]]) {
  auto tA = tensor(A, dextents<int32_t, 2>(d.K, kTileM));
  auto tB = tensor(B, dextents<int32_t, 2>(kTileN, d.K));
  auto tC = tensor(C, dextents<int32_t, 2>(kTileN, kTileM));
  matmul2d<matmul2d_descriptor(kTileM, kTileN, kStep), execution_simdgroups<kSimdgroups>> op;
  op.run(tA, tB, tC);  // <- static K
}
