"""Shared test helpers: fresh random data each run (QMETAL_TEST_SEED repeats a
run), conversions to and from mlx, and an error metric."""

from __future__ import annotations

import os
import secrets

import ml_dtypes
import numpy as np
import pytest

SEED = int(os.environ.get("QMETAL_TEST_SEED", secrets.randbelow(2**31)))
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DTYPES = [np.dtype(np.float32), np.dtype(np.float16), BFLOAT16]


def pytest_report_header(config):
    return f"qmetal test seed: QMETAL_TEST_SEED={SEED}"


def _mlx_references_on_cpu():
    # MLX references run on the CPU everywhere: on a hosted macOS runner
    # MLX's default device is the paravirtual GPU, which gives wrong results
    # (MLX's own CI tests macOS on its CPU backend only), and the CPU is the
    # reference anyway.
    try:
        import mlx.core as mx
    except ImportError:
        return
    mx.set_default_device(mx.cpu)


_mlx_references_on_cpu()


@pytest.fixture
def rng(request):
    # One stream per test, so a failure repeats with the seed alone.
    return np.random.default_rng([SEED, *request.node.nodeid.encode()])


def to_mx(a: np.ndarray):
    import mlx.core as mx

    if a.dtype == BFLOAT16:
        return mx.array(a.view(np.uint16)).view(mx.bfloat16)
    return mx.array(a)


def from_mx(a) -> np.ndarray:
    import mlx.core as mx

    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16)).view(BFLOAT16)
    return np.array(a)


def relative_error(actual, expected) -> float:
    """||actual - expected|| / ||expected|| in float64 (Frobenius)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def unit_roundoff(dtype) -> float:
    """Half an ulp at 1.0: the relative error of one rounding."""
    return float(ml_dtypes.finfo(np.dtype(dtype)).eps) / 2


def matmul_tolerance(dtype, terms) -> float:
    """Relative (Frobenius) difference allowed between two results of a
    quantized matmul, each within a few roundings of `dtype` of the exact
    value (the reference rounds each dequantized weight to `dtype`, a kernel
    rounds its result) and of float32 sums of `terms` terms (random signs:
    sqrt(terms) u_f32), with a generous factor of 8."""
    return 8 * (unit_roundoff(dtype) + np.sqrt(terms) * unit_roundoff(np.float32))


def mlx_matmul_tolerance(dtype, k) -> float:
    """matmul_tolerance against mlx, which rounds each dequantized weight to
    `dtype` twice (after s * q and after + b, where |s q| and |b| can far
    exceed |w|) and whose CPU kernel accumulates in `dtype`: a few u times
    sqrt(K) more."""
    return matmul_tolerance(dtype, k) + 8 * unit_roundoff(dtype) * np.sqrt(k)


def ggml_tolerance(k) -> float:
    """Relative difference allowed between a GGML kernel and float64 of the
    reference's dense weights: float32 sums of k terms and one rounding of a
    half result (a float32 result needs less)."""
    return 4 * (unit_roundoff(np.float32) * np.sqrt(k) + unit_roundoff(np.float16))


def random_weights(rng, shape, dtype=np.float32) -> np.ndarray:
    """Gaussian rows with per-row magnitudes spread over decades."""
    rows = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 1, size=(*shape[:-1], 1))
    return rows.astype(dtype)
