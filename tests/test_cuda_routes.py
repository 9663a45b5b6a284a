"""Every kernel route once on the `cuda` backend, on small shapes, against
the float64 reference: affine matmul routes for every width, transposed and
not, the MoE gather routes, every GGML type on every route, quantize and
dequantize. Small on purpose: this is also the program compute-sanitizer
runs (bench/README.md has the commands). Skipped where the backend is not
built or no GPU is here."""

from __future__ import annotations

import numpy as np
import pytest

import qmetal
from conftest import ggml_tolerance, matmul_tolerance, relative_error
from qmetal import reference as ref
from qmetal._selftest import AFFINE_CASES, GGML_ROUTES

_core = qmetal._core
if not getattr(_core, "cuda_built", False):
    pytestmark = pytest.mark.skip(reason="the cuda backend is not part of this build (built where CMake finds nvcc)")
elif "cuda" not in qmetal.available_backends():
    pytestmark = pytest.mark.skip(reason=f"no usable CUDA GPU: {_core.backend_status('cuda')}")

DTYPES = ["float32", "float16", "bfloat16"]


@pytest.fixture(scope="module")
def device():
    return qmetal.get_device("cuda")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("case", AFFINE_CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}x{c[3]}-{'t' if c[4] else 'n'}"
                                                    for c in AFFINE_CASES])
def test_affine_route(rng, device, case, bits, dtype):
    route, m, n, k, transpose = case
    np_dtype = qmetal._dtypes.numpy_dtype(dtype)
    rows, cols = (n, k) if transpose else (k, n)
    group_size = 32 if cols % 64 else 64
    if cols % group_size:
        pytest.skip("the weight's columns are not whole groups")
    w = qmetal.quantize((rng.standard_normal((rows, cols)) * 0.1).astype(np_dtype), bits, group_size, device=device)
    x = rng.standard_normal((m, k)).astype(np_dtype)
    y = qmetal.matmul(x, w, transpose=transpose, route=route, device=device)
    expected = ref.affine_matmul(x, w.packed, w.scales, w.biases, bits, group_size, transpose=transpose)
    # The reference rounds each dequantized weight to dtype, so its own error
    # grows with the dtype's (bfloat16, K = 192: 1% off the exact value).
    assert relative_error(y, expected) < matmul_tolerance(np_dtype, k)
    # Dequantize on the GPU is bit-exact with the reference.
    dense = qmetal.dequantize(w, device=device)
    np.testing.assert_array_equal(dense, ref.affine_dequantize(w.packed, w.scales, w.biases, bits, group_size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("route", ["qmv", "qmm", "qmm_sorted"])
def test_affine_gather_route(rng, device, route, dtype):
    np_dtype = qmetal._dtypes.numpy_dtype(dtype)
    experts = 4
    w = qmetal.quantize((rng.standard_normal((experts, 40, 256)) * 0.1).astype(np_dtype), 4, 64, device=device)
    x = rng.standard_normal((24, 1, 1, 256)).astype(np_dtype)
    ids = rng.integers(0, experts, (24, 2)).astype(np.uint32)
    expected = ref.affine_gather_matmul(x[:, 0, 0], w.packed, w.scales, w.biases, ids, 4, 64)[:, :, None]
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, device=device)
    assert relative_error(y, expected) < matmul_tolerance(np_dtype, 256)


@pytest.mark.parametrize("route", ["qvm", "qmm"])
def test_affine_gather_without_transpose(rng, device, route):
    experts, k, n = 3, 96, 128
    w = qmetal.quantize((rng.standard_normal((experts, k, n)) * 0.1).astype(np.float16), 4, 64, device=device)
    x = rng.standard_normal((10, 1, 1, k)).astype(np.float16)
    ids = rng.integers(0, experts, (10, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, transpose=False, route=route, device=device)
    dense = ref.affine_dequantize(w.packed, w.scales, w.biases, 4, 64).astype(np.float64)
    expected = np.einsum("tk,tskn->tsn", x[:, 0, 0].astype(np.float64), dense[ids])[:, :, None]
    assert relative_error(y, expected) < matmul_tolerance(np.float16, k)


@pytest.mark.parametrize("type_name", [t for t in ref.GGML_QUANTIZABLE_TYPES])
@pytest.mark.parametrize("route", list(GGML_ROUTES))
def test_ggml_route(rng, device, route, type_name):
    n, k, m = 13, 512, GGML_ROUTES[route]
    blocks = ref.ggml_quantize((rng.standard_normal((n, k)) * 0.1).astype(np.float32), type_name)
    w = qmetal.GGMLWeight(blocks, type_name, (n, k), device=device)
    dense = ref.ggml_dequantize(blocks, type_name, (n, k)).astype(np.float64)
    x = rng.standard_normal((m, k)).astype(np.float32)
    assert relative_error(qmetal.matmul(x, w, route=route, device=device), x.astype(np.float64) @ dense.T) < ggml_tolerance(k)
    if route == "mv":
        np.testing.assert_array_equal(qmetal.dequantize(w, device=device), ref.ggml_dequantize(blocks, type_name, (n, k)))


@pytest.mark.parametrize("route", ["mv_id", "mm_id"])
def test_ggml_gather_route(rng, device, route):
    experts, n, k, tokens, top_k = 4, 13, 512, 40, 2
    blocks = ref.ggml_quantize((rng.standard_normal((experts * n, k)) * 0.1).astype(np.float32), "Q4_K")
    w = qmetal.GGMLWeight(blocks, "Q4_K", (experts, n, k), device=device)
    dense = ref.ggml_dequantize(blocks, "Q4_K", (experts, n, k)).astype(np.float64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float16)
    ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.int32)
    expected = np.einsum("tk,tsnk->tsn", x[:, 0, 0].astype(np.float64), dense[ids])[:, :, None]
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, device=device)
    assert relative_error(y, expected) < ggml_tolerance(k)
