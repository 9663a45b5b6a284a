"""MLX's own quantized kernels, from the headers the installed mlx package
ships, compiled unchanged by the simulator: affine_qmv_fast, affine_qmv and
affine_qmm_t, launched with the geometry and buffer order of MLX's host code
(mlx/backend/metal/quantized.cpp: qmv() and qmm()) and checked against
mx.quantized_matmul on the CPU and a float64 product."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from conftest import BFLOAT16, from_mx, random_weights, relative_error, to_mx, unit_roundoff

mx = pytest.importorskip("mlx.core")
import mlx  # noqa: E402

import qmetal.sim as sim  # noqa: E402

MLX_INCLUDE = os.path.join(mlx.__path__[0], "include")
KERNELS_DIR = os.path.join(MLX_INCLUDE, "mlx", "backend", "metal", "kernels")

pytestmark = [
    pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KERNELS_DIR, "quantized.h")),
                       reason=f"the mlx package has no Metal kernel headers ({KERNELS_DIR})"),
]

# (dtype, group size, bits). 3 and 6 bits take the packings that straddle
# bytes (8 values in 3 bytes, 4 in 3).
CONFIGS = [
    (np.dtype(np.float32), 64, 4),
    (np.dtype(np.float16), 128, 8),
    (BFLOAT16, 32, 6),
    (BFLOAT16, 64, 3),
]
METAL_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float16): "float16_t", BFLOAT16: "bfloat16_t"}


def kernel_name(kind, dtype, group_size, bits, aligned_n=None):
    """The name MLX's host code asks for (non-batched)."""
    name = f"affine_{kind}_{METAL_TYPES[dtype]}_gs_{group_size}_b_{bits}"
    if aligned_n is not None:
        name += f"_alN_{str(aligned_n).lower()}"
    return name + "_batch_0"


def source():
    # The includes of MLX's quantized.metal, then its instantiate_kernel macro
    # (defines.h) for the kernels the host code picks when B == 1.
    lines = [
        '#include "mlx/backend/metal/kernels/utils.h"',
        '#include "mlx/backend/metal/kernels/steel/gemm/gemm.h"',
        '#include "mlx/backend/metal/kernels/quantized_utils.h"',
        '#include "mlx/backend/metal/kernels/quantized.h"',
    ]
    for dtype, group_size, bits in CONFIGS:
        t = METAL_TYPES[dtype]
        for kind in ("qmv_fast", "qmv"):
            lines.append(f'instantiate_kernel("{kernel_name(kind, dtype, group_size, bits)}", '
                         f"affine_{kind}, {t}, {group_size}, {bits}, false)")
        for aligned in (True, False):
            lines.append(f'instantiate_kernel("{kernel_name("qmm_t", dtype, group_size, bits, aligned)}", '
                         f"affine_qmm_t, {t}, {group_size}, {bits}, {str(aligned).lower()}, false)")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return sim.compile(source(), include_dirs=[MLX_INCLUDE], cache_dir=tmp_path_factory.mktemp("sim-cache"))


def pack_factor(bits):
    # get_pack_factor<bits, 32>() in quantized.h
    return 8 if bits in (3, 5) else 4 if bits == 6 else 32 // bits


def qmv_fast_k_alignment(bits):
    # quantized.cpp: qmv_fast only when N % 8 == 0 and K is a multiple of this
    return pack_factor(bits) * (1 if bits <= 2 else 2) * 32


def launch(library, kind, dtype, group_size, bits, x, wq, scales, biases):
    """Binds and dispatches as quantized.cpp does for B == 1: w, scales,
    biases, x, out, K, N (and M for qmm); qmv on a grid (M, ceil(N / 8)) of
    (32, 2) threads, qmm on ((N + 31) / 32, (M + 31) / 32) of (32, 2, 2).
    MLX leaves the batch buffers unset; the simulator wants every declared
    buffer bound, so they get a zero each (batched = false never reads them)."""
    m, k = x.shape
    n = scales.shape[0]
    out = np.zeros((m, n), dtype)
    scalar = lambda v: np.array([v], np.int32)  # noqa: E731
    unused = [np.zeros(1, np.int64) for _ in range(8)]
    if kind == "qmm_t":
        name = kernel_name(kind, dtype, group_size, bits, aligned_n=n % 32 == 0)
        buffers = [wq, scales, biases, x, out, scalar(k), scalar(n), scalar(m), *unused]
        grid, threadgroup = ((n + 31) // 32, (m + 31) // 32, 1), (32, 2, 2)
    else:
        fast = n % 8 == 0 and k % qmv_fast_k_alignment(bits) == 0
        assert fast == (kind == "qmv_fast"), "the host code would pick the other kernel for this shape"
        name = kernel_name(kind, dtype, group_size, bits)
        buffers = [wq, scales, biases, x, out, scalar(k), scalar(n), *unused]
        grid, threadgroup = (m, (n + 7) // 8, 1), (32, 2, 1)
    # Under two schedules, with identical bytes: no result depends on how the
    # threads interleave (barriers, threadgroup memory, collectives).
    results = []
    for schedule in ("forward", "random"):
        out[...] = 0
        library.launch(name, buffers, grid=grid, threadgroup=threadgroup, schedule=schedule, seed=3)
        results.append(out.copy())
    assert results[0].tobytes() == results[1].tobytes(), f"{name}: the random schedule changed the result"
    return results[0]


def shapes(kind, group_size, bits):
    """(M, N, K): qmv_fast on aligned shapes; qmv and qmm_t with tails in N,
    K past the last full block (K a multiple of the group size, as quantize
    requires), and M past the last qmm tile."""
    if kind == "qmv_fast":
        return [(3, 40, 2 * qmv_fast_k_alignment(bits))]
    if kind == "qmv":
        return [(3, 37, 5 * group_size), (1, 5, 3 * group_size)]
    return [(37, 64, 5 * group_size), (37, 45, 5 * group_size)]


CASES = [pytest.param(kind, dtype, group_size, bits, m, n, k,
                      id=f"{kind}-{METAL_TYPES[dtype]}-gs{group_size}-b{bits}-{m}x{n}x{k}")
         for dtype, group_size, bits in CONFIGS
         for kind in ("qmv_fast", "qmv", "qmm_t")
         for m, n, k in shapes(kind, group_size, bits)]


@pytest.mark.parametrize("kind, dtype, group_size, bits, m, n, k", CASES)
def test_mlx_quantized_kernel_matches_mlx(library, rng, kind, dtype, group_size, bits, m, n, k):
    mx.set_default_device(mx.cpu)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = random_weights(rng, (n, k), dtype)
    wq, scales, biases = mx.quantize(to_mx(w), group_size=group_size, bits=bits)
    scales_np, biases_np = from_mx(scales), from_mx(biases)

    out = launch(library, kind, dtype, group_size, bits, x, np.array(wq), scales_np, biases_np)

    # The exact product of x and the weights the quantized tensors hold,
    # w = scale * q + bias per group, in float64; q comes from MLX itself
    # (dequantize with unit scales and zero biases is exact).
    q = np.array(mx.dequantize(wq, mx.ones(scales.shape), mx.zeros(scales.shape), group_size=group_size, bits=bits))
    w64 = (np.repeat(scales_np.astype(np.float64), group_size, axis=1) * q
           + np.repeat(biases_np.astype(np.float64), group_size, axis=1))
    exact = x.astype(np.float64) @ w64.T

    # mx.quantized_matmul on the CPU is the oracle, run in float32 on the same
    # values (x, scales and biases convert exactly): its CPU path in half and
    # bfloat rounds inside the dot products (about 2e-2 off in bfloat), where
    # the GPU kernels accumulate in float, so the float32 result is the one to
    # compare with. It agrees with the float64 model to float32 accumulation
    # error, which pins down the model (packing, group layout).
    mlx_out = np.array(mx.quantized_matmul(to_mx(x.astype(np.float32)), wq, mx.array(scales_np.astype(np.float32)),
                                           mx.array(biases_np.astype(np.float32)), transpose=True,
                                           group_size=group_size, bits=bits))
    u32 = unit_roundoff(np.float32)
    assert relative_error(mlx_out, exact) <= k * u32

    # Tolerance: the kernels compute in float and round once to the output
    # type (<= u relative, u the unit roundoff of dtype); qmm_t also rounds
    # each dequantized weight to dtype in threadgroup memory, which for these
    # zero-mean random inputs adds about u more to the norm-wise error. The
    # float32 sums (per-lane partial dot products, s * sum(x q) + b * sum(x)
    # per group, simd_sum / simdgroup-matrix accumulation) stay within
    # K * u_float32 of the exact value (Higham's gamma_K, the bound for any
    # summation order, with no cancellation amplification on these inputs).
    # Measured: ~1e-3 to 2.4e-3 in bfloat (u = 3.9e-3), ~3e-7 in float32.
    # A wrong lane, group, packing or tail gives errors of order 1e-2 to 1.
    tolerance = 2 * unit_roundoff(dtype) + k * u32
    error = relative_error(out, exact)
    assert error <= tolerance, f"{kind}: relative error {error:.3g} > {tolerance:.3g}"
    assert relative_error(out, mlx_out) <= tolerance + k * u32
