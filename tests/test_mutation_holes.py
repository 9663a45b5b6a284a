"""Tests that would have caught the mutants the mutation run let through
(issue 17, part 4): index checks at exactly the count, writes one past the
end of the output on shapes that are not tile multiples, and the routing
thresholds, checked by the kernel each plan names."""

from __future__ import annotations

import numpy as np
import pytest

import qmetal
from qmetal import _core
from qmetal import reference as ref

SENTINEL = np.float32(-12345.0)
MATMAT_ROWS = 8      # the planner's default mat-vec / mat-mat threshold (no Apple GPU here)
GGML_EXT_ROWS = 8    # mul_mv_ext up to this many rows, as llama.cpp


def test_affine_gather_indices_at_exactly_the_count(rng):
    q = qmetal.quantize(rng.standard_normal((3, 16, 64)).astype(np.float32))
    x = rng.standard_normal((2, 1, 64)).astype(np.float32)
    with pytest.raises(ValueError, match=r"rhs_indices: index 3 at position 0 is out of range \[0, 3\)"):
        qmetal.gather_matmul(x, q, rhs_indices=np.array([3], np.uint32))
    with pytest.raises(ValueError, match=r"lhs_indices: index 2 at position 0 is out of range \[0, 2\)"):
        qmetal.gather_matmul(x, q, lhs_indices=np.array([2], np.uint32), rhs_indices=np.array([0], np.uint32))
    y = qmetal.gather_matmul(x, q, lhs_indices=np.array([1], np.uint32), rhs_indices=np.array([2], np.uint32))
    assert y.shape == (1, 1, 16)


def with_sentinel(shape, dtype=np.float32):
    """An out= array followed (in the same memory) by sentinel values."""
    size = int(np.prod(shape))
    backing = np.full(size + 64, SENTINEL, dtype=dtype)
    return backing[:size].reshape(shape), backing[size:]


AFFINE_CASES = [  # route, M, N, K, transpose
    ("qmv", 1, 37, 128, True), ("qmv_wide", 3, 37, 128, True), ("qmv_fast", 1, 40, 512, True),
    ("qvm", 2, 96, 70, False), ("qvm_split_k", 2, 96, 700, False), ("qmm", 33, 45, 128, True),
    ("qmm", 33, 96, 45, False), ("qmm_split_k", 9, 45, 1024, True),
]


@pytest.mark.parametrize("route, M, N, K, transpose", AFFINE_CASES)
def test_affine_outputs_stay_inside_out(rng, route, M, N, K, transpose):
    w = rng.standard_normal((N, K) if transpose else (K, N)).astype(np.float32)
    q = qmetal.quantize(w, 4, 32)
    x = rng.standard_normal((M, K)).astype(np.float32)
    out, tail = with_sentinel((M, N))
    qmetal.matmul(x, q, transpose=transpose, route=route, out=out)
    assert (tail == SENTINEL).all(), f"{route} wrote past the end of out"
    expected = ref.affine_matmul(x, q.packed, q.scales, q.biases, bits=4, group_size=32, transpose=transpose)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("route, M, N", [("mv", 1, 37), ("mv_ext", 5, 37), ("mm", 33, 70)])
def test_ggml_outputs_stay_inside_out(rng, route, M, N):
    K = 256
    blocks = ref.ggml_quantize(rng.standard_normal((N, K)).astype(np.float32), "Q4_K")
    g = qmetal.GGMLWeight(blocks, "Q4_K", (N, K))
    x = rng.standard_normal((M, K)).astype(np.float32)
    out, tail = with_sentinel((M, N))
    qmetal.matmul(x, g, route=route, out=out)
    assert (tail == SENTINEL).all(), f"{route} wrote past the end of out"
    np.testing.assert_allclose(out, ref.ggml_matmul(x, blocks, "Q4_K", (N, K)), rtol=1e-4, atol=1e-3)


def affine_kernel(M, transpose=True, K=128, N=64):
    q = qmetal.quantize(np.ones((N, K) if transpose else (K, N), np.float32), 4, 64)
    x = qmetal.asbuffer(np.ones((M, K), np.float32))
    y = qmetal.empty((M, N), "float32")
    return _core.plan_affine_matmul(qmetal.default_device(), x, q._native, transpose, y, "automatic")[0].kernel


def test_affine_routing_at_the_threshold():
    # qmv_fast takes whole threadgroups of rows at any K; a ragged N falls back to qmv.
    assert affine_kernel(1).startswith("affine_qmv_fast_float32")
    assert affine_kernel(1, N=60).startswith("affine_qmv_float32")
    assert affine_kernel(MATMAT_ROWS - 1).startswith("affine_qmv_fast_")  # a small grid of mat-vecs
    assert affine_kernel(MATMAT_ROWS - 1, N=8192).startswith("affine_qmv_fast_")  # and a large one
    assert affine_kernel(MATMAT_ROWS).startswith("affine_qmm_t_")
    assert affine_kernel(MATMAT_ROWS - 1, transpose=False).startswith("affine_qvm_")
    assert affine_kernel(MATMAT_ROWS, transpose=False).startswith(("affine_qmm_n_", "affine_qmm_n_split"))


def ggml_kernel(M, K=256, N=64):
    blocks = np.zeros(N * (K // 32) * 34, np.uint8)
    g = qmetal.GGMLWeight(blocks, "Q8_0", (N, K))
    x = qmetal.asbuffer(np.ones((M, K), np.float32))
    y = qmetal.empty((M, N), "float32")
    return _core.plan_ggml_matmul(qmetal.default_device(), x, g._native, y, M, "automatic")[0].kernel


def test_ggml_routing_at_the_thresholds():
    assert ggml_kernel(1).startswith("ggml_mul_mv_q8_0")
    assert ggml_kernel(1, N=8192).startswith("ggml_mul_mv_q8_0")  # one row never takes the multi-row kernel
    assert ggml_kernel(2).startswith("ggml_mul_mv_q8_0")  # M mat-vecs in one grid
    assert ggml_kernel(GGML_EXT_ROWS).startswith("ggml_mul_mv_q8_0")
    assert ggml_kernel(GGML_EXT_ROWS, N=8192).startswith("ggml_mul_mv_ext_")  # a grid that fills the GPU
    assert ggml_kernel(GGML_EXT_ROWS + 1).startswith("ggml_mul_mm_")
    assert ggml_kernel(GGML_EXT_ROWS + 1, K=32).startswith("ggml_mul_mv_q8_0")  # too short for tiles
    assert ggml_kernel(GGML_EXT_ROWS + 1, K=32, N=8192).startswith("ggml_mul_mv_ext_")
