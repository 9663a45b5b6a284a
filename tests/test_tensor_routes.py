"""The Metal 4 tensor-op prefill routes (shaders/metal4/) in the simulator:
affine qmm_t and GGML mul_mm, dense and MoE, against the float64 references
and against the simdgroup-matrix routes on shapes that are not tile
multiples; the planners take them only where the device runs tensor
operations, and fall back otherwise."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import qmetal
import qmetal.sim
from qmetal import reference as ref

from conftest import random_weights

BF16 = np.dtype(ml_dtypes.bfloat16)
FP32_ROUNDOFF = 2.0**-24
# One rounding of a value to the activation type (the staged weights, the
# output), and float operands under relaxed precision (truncated to 10
# mantissa bits: up to 2^-10 relative each).
ROUNDOFF = {np.dtype(np.float16): 2.0**-11, BF16: 2.0**-8, np.dtype(np.float32): 2.0**-10}
TENSOR = qmetal.sim.device(tensor_ops=True)
PLAIN = qmetal.sim.device(tensor_ops=False)


def bound(x, w_dense, K, dtype):
    """|y - x W^T| elementwise: the staged weight rounds once to the
    activation type (float: truncation under relaxed precision), fp32
    accumulation over K (gamma_K), and the output rounds once."""
    u = ROUNDOFF[np.dtype(dtype)]
    scale = np.abs(x.astype(np.float64)) @ np.abs(w_dense.astype(np.float64)).T
    input_u = 2 * u if np.dtype(dtype) == np.float32 else u
    return (input_u + 2 * K * FP32_ROUNDOFF) * scale + u * np.abs(x.astype(np.float64) @ w_dense.T.astype(np.float64))


# --- affine -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float32])
@pytest.mark.parametrize("bits,group_size", [(4, 64), (3, 32), (8, 128)])
def test_affine_qmm_tensor_against_float64_and_the_simdgroup_route(rng, dtype, bits, group_size):
    M, N, K = 70, 45, 2 * 128  # M, N ragged against the 64 x 32 tile; K a multiple of every group size
    w = random_weights(rng, (N, K), dtype)
    q = qmetal.quantize(w, bits, group_size)
    w_dense = qmetal.dequantize(q).astype(np.float64)
    x = rng.standard_normal((M, K)).astype(dtype)
    y = qmetal.matmul(x, q, route="qmm_tensor")
    assert y.dtype == np.dtype(dtype)
    expected = x.astype(np.float64) @ w_dense.T
    assert np.all(np.abs(y.astype(np.float64) - expected) <= bound(x, w_dense, K, dtype))
    plain = qmetal.matmul(x, q, route="qmm").astype(np.float64)
    both = bound(x, w_dense, K, dtype) + np.abs(plain - expected)
    assert np.all(np.abs(y.astype(np.float64) - plain) <= both)


def test_affine_batched_weights_broadcast(rng):
    dtype = np.float16
    w = random_weights(rng, (3, 40, 128), dtype)
    q = qmetal.quantize(w, 4, 64)
    x = rng.standard_normal((2, 1, 67, 128)).astype(dtype)
    y = qmetal.matmul(x, q, route="qmm_tensor")
    w_dense = qmetal.dequantize(q).astype(np.float64)
    expected = x.astype(np.float64) @ np.swapaxes(w_dense, -1, -2)
    for b in range(2):
        for e in range(3):
            assert np.all(np.abs(y[b, e] - expected[b, e]) <= bound(x[b, 0], w_dense[e], 128, dtype))


def test_affine_gather_qmm_tensor(rng):
    dtype = BF16
    experts, N, K, M = 4, 33, 128, 20
    w = random_weights(rng, (experts, N, K), dtype)
    q = qmetal.quantize(w, 4, 64)
    x = rng.standard_normal((3, M, K)).astype(dtype)
    lhs = rng.integers(0, 3, 5).astype(np.uint32)
    rhs = rng.integers(0, experts, 5).astype(np.uint32)
    y = qmetal.gather_matmul(x, q, lhs, rhs, route="qmm_tensor")
    w_dense = qmetal.dequantize(q).astype(np.float64)
    for z in range(5):
        expected = x[lhs[z]].astype(np.float64) @ w_dense[rhs[z]].T
        got = y[z].astype(np.float64)
        assert np.all(np.abs(got - expected) <= bound(x[lhs[z]], w_dense[rhs[z]], K, dtype))
    plain = qmetal.gather_matmul(x, q, lhs, rhs, route="qmm").astype(np.float64)
    assert np.allclose(y.astype(np.float64), plain, rtol=0.05, atol=0.05 * np.abs(plain).max())


def test_affine_planner_routes_prefill_to_tensor_ops_only_where_the_device_runs_them(rng):
    q = qmetal.quantize(random_weights(rng, (64, 256), np.float16), 4, 64)
    threshold = qmetal._core.affine_matmat_threshold(TENSOR)
    for device, dtype, m, kernel in [(TENSOR, "float16", threshold, "qmm_t_tensor"),
                                     (TENSOR, "bfloat16", 300, "qmm_t_tensor"),
                                     (TENSOR, "float16", 1, "qmv_fast"),
                                     (TENSOR, "float32", 300, "qmm_t"),
                                     (PLAIN, "float16", 300, "qmm_t"),
                                     (qmetal.get_device("sim"), "float16", 300, "qmm_t")]:
        w = q if dtype == "float16" else qmetal.quantize(random_weights(rng, (64, 256), np.float16).astype(
            BF16 if dtype == "bfloat16" else np.float32), 4, 64)
        plan = qmetal._core.plan_affine_matmul(device, qmetal.empty((m, 256), dtype), w._native, True,
                                               qmetal.empty((m, 64), dtype), "automatic")
        assert plan[0].kernel == qmetal._core.affine_kernel_name(kernel, dtype, 64, 4), (device, dtype, m)
    with pytest.raises(ValueError, match="qmm_tensor.*transpose=True"):
        qmetal.matmul(np.zeros((64, 64), np.float16), q, transpose=False, route="qmm_tensor")


def test_automatic_route_on_a_tensor_device_matches_the_reference(rng):
    q = qmetal.quantize(random_weights(rng, (50, 192), np.float16), 6, 64)
    x = rng.standard_normal((77, 192)).astype(np.float16)
    y = qmetal.matmul(x, q, device=TENSOR)
    w_dense = qmetal.dequantize(q).astype(np.float64)
    assert np.all(np.abs(y - x.astype(np.float64) @ w_dense.T) <= bound(x, w_dense, 192, np.float16))


# --- GGML ---------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["Q4_0", "Q8_0", "Q4_K", "Q6_K", "F16"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_ggml_mul_mm_tensor_against_gguf_reference_and_mul_mm(rng, type_name, dtype):
    N, K = 45, 256
    M = 70
    w = random_weights(rng, (N, K), np.float32)
    blocks = ref.ggml_quantize(w, type_name)
    weight = qmetal.GGMLWeight(blocks, type_name, (N, K))
    w_dense = ref.ggml_dequantize(blocks, type_name, (N, K)).astype(np.float64)
    x = rng.standard_normal((M, K)).astype(dtype)
    y = qmetal.matmul(x, weight, route="mm_tensor")
    assert y.dtype == np.float32
    expected = x.astype(np.float64) @ w_dense.T
    limit = bound(x, w_dense, K, dtype) - ROUNDOFF[np.dtype(dtype)] * np.abs(expected)  # float32 output
    assert np.all(np.abs(y - expected) <= limit + FP32_ROUNDOFF * np.abs(expected))
    plain = qmetal.matmul(x, weight, route="mm")
    assert np.all(np.abs(y - plain) <= limit + np.abs(plain - expected) + FP32_ROUNDOFF * np.abs(expected))


# head_dim 14: a thread's 16 staged x values cross from one head into the next.
@pytest.mark.parametrize("type_name, heads, head_dim", [("Q4_K", 4, 64), ("Q8_0", 16, 14)])
def test_ggml_head_major_input(rng, type_name, heads, head_dim):
    M, N = 40, 37
    K = heads * head_dim
    w = random_weights(rng, (N, K), np.float32)
    blocks = ref.ggml_quantize(w, type_name)
    weight = qmetal.GGMLWeight(blocks, type_name, (N, K))
    w_dense = ref.ggml_dequantize(blocks, type_name, (N, K)).astype(np.float64)
    attn = rng.standard_normal((heads, M, head_dim)).astype(np.float16)
    y = qmetal.matmul(attn, weight, heads_first=True, route="mm_tensor")
    x = np.ascontiguousarray(attn.transpose(1, 0, 2)).reshape(M, K)
    expected = x.astype(np.float64) @ w_dense.T
    assert np.all(np.abs(y - expected) <= bound(x, w_dense, K, np.float16))


def test_ggml_moe_mm_id_tensor(rng):
    experts, N, K, tokens, top_k = 5, 40, 128, 50, 2
    w = random_weights(rng, (experts, N, K), np.float32)
    blocks = np.stack([ref.ggml_quantize(w[e], "Q8_0") for e in range(experts)])
    weight = qmetal.GGMLWeight(blocks, "Q8_0", (experts, N, K))
    w_dense = np.stack([ref.ggml_dequantize(blocks[e], "Q8_0", (N, K)) for e in range(experts)]).astype(np.float64)
    x = rng.standard_normal((tokens, 1, 1, K)).astype(np.float16)
    ids = np.stack([rng.permutation(experts)[:top_k] for _ in range(tokens)]).astype(np.uint32)
    y = qmetal.gather_matmul(x, weight, rhs_indices=ids, route="mm_id_tensor")
    plain = qmetal.gather_matmul(x, weight, rhs_indices=ids, route="mm_id")
    for t in range(tokens):
        for s in range(top_k):
            xt = x[t, 0].astype(np.float64)
            expected = xt @ w_dense[ids[t, s]].T
            assert np.all(np.abs(y[t, s, 0] - expected) <= bound(x[t, 0], w_dense[ids[t, s]], K, np.float16)[0])
            assert np.all(np.abs(y[t, s, 0] - plain[t, s, 0]) <=
                          2 * bound(x[t, 0], w_dense[ids[t, s]], K, np.float16)[0])


def test_ggml_planner_falls_back_without_the_capability(rng):
    N, K, M = 64, 256, 100
    weight = qmetal.GGMLWeight(ref.ggml_quantize(random_weights(rng, (N, K), np.float32), "Q4_0"), "Q4_0", (N, K))
    for device, dtype, kernel in [(TENSOR, "float16", "mul_mm_tensor"), (TENSOR, "bfloat16", "mul_mm_tensor"),
                                  (TENSOR, "float32", "mul_mm"), (PLAIN, "float16", "mul_mm")]:
        plan = qmetal._core.plan_ggml_matmul(device, qmetal.empty((M, K), dtype), weight._native,
                                             qmetal.empty((M, N), "float32"), M, "automatic")
        assert plan[0].kernel.startswith(f"ggml_{kernel}_q4_0_"), (device, dtype, plan[0].kernel)
    with pytest.raises(ValueError, match="mm_tensor"):
        qmetal.matmul(np.zeros((8, K), np.float16), weight, route="mm_tensor_nope")
