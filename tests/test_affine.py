"""MLX affine kernels through the simulator: quantize / dequantize bit-exact
with the NumPy reference (itself bit-exact with mlx), every matmul route
forced for every bits x group size x dtype, shapes on and off the tiles,
batched and broadcast weights, transpose=False, agreement with
mlx.core.quantized_matmul, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

import qmetal
import qmetal.sim
from qmetal import reference as ref
from conftest import FLOAT_DTYPES, from_mx, matmul_tolerance, mlx_matmul_tolerance, relative_error, to_mx, unit_roundoff, random_weights

BITS = ref.AFFINE_BITS
GROUP_SIZES = ref.AFFINE_GROUP_SIZES


def exact_dense(w):
    """scale * q + bias in float64: the weight the codes stand for, before
    any rounding to the scales' dtype."""
    q = ref.unpack_bits(w.packed, w.bits).astype(np.float64)
    groups = q.reshape(*q.shape[:-1], -1, w.group_size)
    scales = w.scales.astype(np.float64)[..., None]
    biases = w.biases.astype(np.float64)[..., None]
    return (groups * scales + biases).reshape(q.shape)


def reference_matmul(x, w, transpose=True):
    """float64 x @ exact_dense(w).T (or x @ exact_dense(w))."""
    dense = exact_dense(w)
    return np.matmul(x.astype(np.float64), np.swapaxes(dense, -1, -2) if transpose else dense)


def assert_matmul_close(y, x, w, transpose=True, what=""):
    """Checks y element by element against reference_matmul with a bound
    that holds for any summation order: the kernels sum K products of
    dequantized weights (s * q + b, split as s * (q . x) + b * sum(x)) in
    float32, so each output is off by at most K u_f32 times the sum of the
    magnitudes of the terms (Higham's gamma_K), and then by one rounding to
    the output dtype."""
    q = ref.unpack_bits(w.packed, w.bits).astype(np.float64)
    groups = q.reshape(*q.shape[:-1], -1, w.group_size)
    magnitudes = (np.abs(groups * w.scales.astype(np.float64)[..., None])
                  + np.abs(w.biases.astype(np.float64))[..., None]).reshape(q.shape)
    magnitudes = np.swapaxes(magnitudes, -1, -2) if transpose else magnitudes
    expected = reference_matmul(x, w, transpose)
    k = x.shape[-1]
    bound = k * unit_roundoff(np.float32) * np.matmul(np.abs(x.astype(np.float64)), magnitudes)
    bound = bound + unit_roundoff(y.dtype) * np.abs(expected) + 1e-30
    excess = np.abs(y.astype(np.float64) - expected) / bound
    assert y.shape == expected.shape, what
    assert excess.max() <= 1, f"{what}: error {excess.max():.2f} times the bound"


ROUTE_SHAPES = {
    # route: (M, N, K, transpose); "3g" is three groups. With transpose=False
    # w is [K, N], quantized along N, so N is the multiple of the group size
    # and K is free.
    "qmv": (1, 13, "3g", True),
    "qmv_fast": (1, 16, "3g", True),
    "qmv_wide": (5, 13, "3g", True),
    "qmm": (33, 13, "3g", True),
    "qmm_split_k": (33, 13, "3g", True),
    "qvm": (2, "3g", 37, False),
    "qvm_split_k": (2, "3g", 300, False),
    "qmm_n": (33, "3g", 37, False),
    "qmm_n_split_k": (40, "3g", 100, False),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("bits", BITS)
def test_quantize_and_dequantize_are_bit_exact(rng, bits, group_size, dtype):
    w = random_weights(rng, (13, 3 * group_size), dtype)
    q = qmetal.quantize(w, bits, group_size)
    packed, scales, biases = ref.affine_quantize(w, bits, group_size)
    np.testing.assert_array_equal(q.packed, packed)
    np.testing.assert_array_equal(q.scales.view(np.uint16 if dtype != np.float32 else np.uint32),
                                  scales.view(np.uint16 if dtype != np.float32 else np.uint32))
    np.testing.assert_array_equal(q.biases.astype(np.float32), biases.astype(np.float32))
    dense = qmetal.dequantize(q)
    expected = ref.affine_dequantize(packed, scales, biases, bits, group_size)
    assert dense.dtype == expected.dtype
    np.testing.assert_array_equal(dense.astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("route", ROUTE_SHAPES)
def test_every_route_for_every_format(rng, route, bits, group_size, dtype):
    m, n, k, transpose = ROUTE_SHAPES[route]
    n, k = (3 * group_size if v == "3g" else v for v in (n, k))
    rows, cols = (n, k) if transpose else (k, n)
    w = qmetal.quantize(random_weights(rng, (rows, cols), dtype), bits, group_size)
    x = rng.standard_normal((m, k)).astype(dtype)
    y = qmetal.matmul(x, w, transpose=transpose, route=route.replace("qmm_n", "qmm"))
    assert y.shape == (m, n) and y.dtype == dtype
    assert_matmul_close(y, x, w, transpose)


# M x N x K, without the largest products (minutes in the simulator).
SHAPES = [(m, n, k) for m in (1, 2, 5, 8, 33, 100) for n, k in ((1, 64), (7, 192), (8, 64), (13, 4096), (4096, 192))
          if m * n * k <= 40_000_000]


@pytest.mark.parametrize("m, n, k", SHAPES)
def test_shapes_on_and_off_the_tiles(rng, m, n, k):
    dtype = np.float16
    w = qmetal.quantize(random_weights(rng, (n, k), dtype), 4, 64)
    x = rng.standard_normal((m, k)).astype(dtype)
    routes = ["automatic", "qmm"] + (["qmv"] if m == 1 else ["qmv_wide"])
    results = {route: qmetal.matmul(x, w, route=route) for route in routes}
    for route, y in results.items():
        assert_matmul_close(y, x, w, what=route)


def test_decode_at_llm_size_takes_the_fast_route(rng):
    w = qmetal.quantize(random_weights(rng, (4096, 4096), np.float16), 4, 64)
    x = rng.standard_normal((1, 4096)).astype(np.float16)
    plan = qmetal._core.plan_affine_matmul(qmetal.default_device(), qmetal.asbuffer(x), w._native, True,
                                           qmetal.empty((1, 4096), "float16"), "automatic")
    assert [p.kernel for p in plan] == ["affine_qmv_fast_float16_gs64_b4"]
    assert_matmul_close(qmetal.matmul(x, w), x, w)


def test_routing_by_rows(rng):
    device = qmetal.default_device()
    threshold = qmetal._core.affine_matmat_threshold(device)
    w = qmetal.quantize(random_weights(rng, (16, 256), np.float32), 4, 64)
    # Small batches: M mat-vecs in one grid, as MLX, whatever the grid's size
    # (qmv_wide is a route to force).
    wide_n = 64 * qmetal._core.affine_target_threadgroups(device)
    w_wide = qmetal.quantize(np.ones((wide_n, 256), np.float32), 4, 64)
    for m, transpose, kernel, weight in [(1, True, "qmv_fast", w), (2, True, "qmv_fast", w), (4, True, "qmv_fast", w_wide),
                                         (threshold - 1, True, "qmv_fast", w), (5, True, "qmv_fast", w_wide),
                                         (threshold - 1, True, "qmv_fast", w_wide),
                                         (threshold, True, "qmm_t", w), (1, False, "qvm", w),
                                         (threshold, False, "qmm_n", w)]:
        k = 256 if transpose else 16
        n = weight.shape[0] if transpose else 256
        x = qmetal.empty((m, k), "float32")
        y = qmetal.empty((m, n), "float32")
        plan = qmetal._core.plan_affine_matmul(device, x, weight._native, transpose, y, "automatic")
        assert plan[0].kernel == qmetal._core.affine_kernel_name(kernel, "float32", 64, 4), (m, transpose, n)
    # Rows that do not fill the last threadgroup need the row checks of qmv.
    w13 = qmetal.quantize(random_weights(rng, (13, 256), np.float32), 4, 64)
    plan = qmetal._core.plan_affine_matmul(device, qmetal.empty((1, 256), "float32"), w13._native, True,
                                           qmetal.empty((1, 13), "float32"), "automatic")
    assert plan[0].kernel == qmetal._core.affine_kernel_name("qmv", "float32", 64, 4)


def test_split_k_when_tiles_are_few(rng):
    device = qmetal.default_device()
    assert qmetal._core.affine_k_partitions(1, 4096) > 1
    assert qmetal._core.affine_k_partitions(10_000, 4096) == 1
    assert qmetal._core.affine_k_partitions(1, 128) == 1  # K too short to share
    # Grids sized to the GPU: more partitions where more cores wait.
    assert qmetal._core.affine_k_partitions(64, 16384, 6 * 132) > qmetal._core.affine_k_partitions(64, 16384, 6 * 10)
    assert qmetal._core.affine_k_partitions(800, 16384, 6 * 132) == 1
    cores = {name: qmetal._core.estimated_apple_gpu_cores(name)
             for name in ("applegpu_g13g", "applegpu_g14s", "applegpu_g15c", "applegpu_g13d", "amd_x", "")}
    assert cores["applegpu_g13g"] < cores["applegpu_g14s"] < cores["applegpu_g15c"] < cores["applegpu_g13d"]
    assert cores["amd_x"] == cores[""] == 0
    sim = qmetal._core.affine_target_threadgroups(device)
    assert sim == 128 if device.capabilities["gpu_cores"] == 0 else sim == 6 * device.capabilities["gpu_cores"]
    w = qmetal.quantize(random_weights(rng, (3, 24, 1024), np.float16), 4, 64)
    x = rng.standard_normal((2, 3, 40, 1024)).astype(np.float16)  # batched: partials per matrix
    y = qmetal.matmul(x, w)
    plan = qmetal._core.plan_affine_matmul(device, qmetal.asbuffer(x), w._native, True, qmetal.asbuffer(y),
                                           "automatic")
    assert [p.kernel for p in plan] == ["affine_qmm_t_split_float16_gs64_b4", "affine_sum_partials_float16"]
    assert_matmul_close(y, x, w)
    # transpose=False at small M: qvm, split over K.
    w = qmetal.quantize(random_weights(rng, (2048, 64), np.float32), 4, 32)
    x = rng.standard_normal((1, 2048)).astype(np.float32)
    y = qmetal.matmul(x, w, transpose=False)
    plan = qmetal._core.plan_affine_matmul(device, qmetal.asbuffer(x), w._native, False, qmetal.asbuffer(y),
                                           "automatic")
    assert [p.kernel for p in plan] == ["affine_qvm_split_float32_gs32_b4", "affine_sum_partials_float32"]
    assert_matmul_close(y, x, w, transpose=False)


def test_mat_vec_k_slices_fill_the_gpu():
    """planning::mat_vec_slices: simdgroups share a row's K until the grid
    has 24 per core (4 per target threadgroup), at most 8 and at most one
    slice per step of a lane."""
    slices = qmetal._core.mat_vec_k_slices
    assert slices(1, 100, 128) == 8  # the cap (threadgroup memory is sized for it)
    assert slices(16, 3, 128) == 3  # one slice per lane step
    assert slices(10_000, 100, 128) == 1  # a grid that fills the GPU
    assert slices(1024, 8, 6 * 132) == 4  # 4096 x 4096 at M = 1 on an H200 (bench/README.md)
    assert slices(1024, 8, 6 * 10) == 1  # the same on a 10-core Apple GPU
    assert slices(256, 8, 6 * 132) == 8  # 1024 x 4096 on an H200


@pytest.mark.parametrize("bits", [4, 3])
@pytest.mark.parametrize("route, n, m, k", [("qmv_fast", 24, 1, 2112), ("qmv", 13, 3, 2112),
                                            ("qmv_wide", 13, 6, 2112), ("qmv", 13, 1, 8192)])
def test_mat_vecs_share_k_over_simdgroups_when_rows_are_few(rng, route, n, m, k, bits):
    """K slices (shaders/mat_vec.h): a grid of few rows over a long K gets
    more simdgroups per threadgroup, each summing part of every row's K.
    K = 2112 gives 4-bit lanes 132 / 32 steps (5 slices, the last step of a
    lane partly filled) and 3-bit lanes 66 / 32 (3 slices); K = 8192 reaches
    the cap of 8."""
    import mlx.core as mx

    device = qmetal.default_device()
    w = qmetal.quantize(random_weights(rng, (n, k), np.float16), bits, 64)
    x = rng.standard_normal((m, k)).astype(np.float16)
    y = qmetal.matmul(x, w, route=route)
    plan = qmetal._core.plan_affine_matmul(device, qmetal.asbuffer(x), w._native, True, qmetal.asbuffer(y), route)
    steps = k // (16 if bits % 2 == 0 else 32)
    assert plan[0].threadgroup == (64 * min(8, -(-steps // 32)), 1, 1)
    assert_matmul_close(y, x, w)
    theirs = from_mx(mx.quantized_matmul(to_mx(x), to_mx(w.packed), to_mx(w.scales), to_mx(w.biases),
                                         transpose=True, group_size=64, bits=bits))
    assert relative_error(y, theirs) < mlx_matmul_tolerance(np.float16, k)


@pytest.mark.parametrize("limit", [128, 192, 256])
@pytest.mark.parametrize("route", ["qmv", "qmv_wide"])
def test_mat_vec_slices_fit_the_kernels_thread_limit(rng, route, limit):
    """K slices stop where a kernel's threadgroups are full: registers can
    hold a kernel below the device's 1024 threads (on the H200 the 3-bit
    qmv_wide_r4 runs at most 256), and 8 slices of 64 threads asked for 512.
    A device whose kernels hold `limit` threads gets limit / 64 slices and
    the same result."""
    device = qmetal.sim.device(max_threads_per_threadgroup=limit)
    n, k = 13, 8192
    w = qmetal.quantize(random_weights(rng, (n, k), np.float16), 3, 64, device=device)
    m = 6 if route == "qmv_wide" else 1
    x = rng.standard_normal((m, k)).astype(np.float16)
    y = qmetal.matmul(x, w, route=route)
    plan = qmetal._core.plan_affine_matmul(device, qmetal.asbuffer(x, device=device), w._native, True,
                                           qmetal.asbuffer(y, device=device), route)
    assert plan[0].threadgroup == (limit // 64 * 64, 1, 1)
    assert_matmul_close(y, x, w)


@pytest.mark.parametrize("threads", [96, 64 * 9, 1024])
def test_mat_vec_threadgroups_the_host_does_not_plan_stay_correct(rng, threads):
    """Simdgroups past whole K slices (96 threads: 1 slice and a spare) or
    past 8 slices (576) are idle (mat_vec.h), so a plan edited to any
    threadgroup size still sums every step once, without races."""
    k, n = 2112, 16
    w = qmetal.quantize(random_weights(rng, (n, k), np.float32), 4, 64)
    x = rng.standard_normal((1, k)).astype(np.float32)
    y = qmetal.zeros((1, n), "float32")
    plan = qmetal._core.plan_affine_matmul(qmetal.default_device(), qmetal.asbuffer(x), w._native, True, y,
                                           "qmv_fast")[0]
    plan.threadgroup = (threads, 1, 1)
    # The one kernel, built for race checks (the built-in library is not).
    name = qmetal._core.affine_kernel_name("qmv_fast", "float32", 64, 4)
    source = (f'#include "affine.h"\ntemplate [[host_name("{name}")]] [[kernel]] decltype(affine_qmv_fast<float, 64, 4>) '
              f'affine_qmv_fast<float, 64, 4>;\n')
    shaders = os.path.join(os.path.dirname(__file__), "..", "shaders")
    qmetal.sim.compile(source, include_dirs=[shaders], race_check=True).execute(plan, race_check=True)
    assert_matmul_close(np.asarray(y), x, w)


def test_gather_mat_vecs_share_k(rng):
    """The MoE mat-vec (gather_qmv) with K slices: few rows per expert over a
    long K, against mx.gather_qmm and float64."""
    import mlx.core as mx

    k = 2112
    w = qmetal.quantize(random_weights(rng, (3, 16, k), np.float32), 4, 64)
    x = rng.standard_normal((2, 1, k)).astype(np.float32)
    rhs = rng.integers(0, 3, (2, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(x[:, None], w, rhs_indices=rhs)
    theirs = mx.gather_qmm(mx.array(x[:, None]), mx.array(w.packed), mx.array(w.scales), mx.array(w.biases),
                           rhs_indices=mx.array(rhs), transpose=True, group_size=64, bits=4)
    assert relative_error(y, np.array(theirs)) < 4 * matmul_tolerance(np.float32, k)
    assert_gather_close(y, x[:, None], w, None, rhs)


def test_batched_and_broadcast_weights(rng):
    k, n = 128, 24
    w = qmetal.quantize(random_weights(rng, (2, n, k), np.float32), 4, 32)
    for x_shape in [(3, 1, 5, k), (2, 5, k), (5, k), (k,), (3, 2, 40, k)]:
        x = rng.standard_normal(x_shape).astype(np.float32)
        assert_matmul_close(qmetal.matmul(x, w), x, w, what=str(x_shape))


def test_leading_dimensions_fold_into_rows(rng):
    w = qmetal.quantize(random_weights(rng, (40, 256), np.float32), 3, 64)
    x = rng.standard_normal((2, 3, 7, 256)).astype(np.float32)
    y = qmetal.matmul(x, w)
    assert y.shape == (2, 3, 7, 40)
    assert_matmul_close(y, x, w)


@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float32, np.float16), (np.float16, np.float32),
                                               (np.float16, FLOAT_DTYPES[2])])
def test_mixed_dtypes_promote_as_mlx(rng, x_dtype, w_dtype):
    import mlx.core as mx

    w_dense = random_weights(rng, (16, 128), w_dtype)
    w = qmetal.quantize(w_dense, 4, 64)
    x = rng.standard_normal((3, 128)).astype(x_dtype)
    y = qmetal.matmul(x, w)
    theirs = mx.quantized_matmul(to_mx(x), to_mx(w.packed), to_mx(w.scales), to_mx(w.biases), transpose=True,
                                 group_size=64, bits=4)
    assert y.dtype == from_mx(theirs).dtype == np.float32
    assert relative_error(y, from_mx(theirs)) < 4 * matmul_tolerance(np.float32, 128)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_matches_mlx_quantized_matmul(rng, bits, dtype):
    import mlx.core as mx

    k, n, m = 256, 40, 9
    w = qmetal.quantize(random_weights(rng, (n, k), dtype), bits, 64)
    x = rng.standard_normal((m, k)).astype(dtype)
    theirs = from_mx(mx.quantized_matmul(to_mx(x), to_mx(w.packed), to_mx(w.scales), to_mx(w.biases),
                                         transpose=True, group_size=64, bits=bits))
    allowed = mlx_matmul_tolerance(dtype, k)
    assert relative_error(qmetal.matmul(x, w), theirs) < allowed


def test_out_receives_the_result(rng):
    w = qmetal.quantize(random_weights(rng, (24, 128), np.float32), 4, 64)
    x = rng.standard_normal((4, 128)).astype(np.float32)
    expected = qmetal.matmul(x, w)
    out = np.zeros((4, 24), np.float32)
    assert qmetal.matmul(x, w, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # A strided out cannot be shared: the result is copied into it.
    wide = np.zeros((4, 48), np.float32)
    qmetal.matmul(x, w, out=wide[:, ::2])
    np.testing.assert_array_equal(wide[:, ::2], expected)
    assert (wide[:, 1::2] == 0).all()


def test_ops_queue_on_a_stream(rng):
    w_up = qmetal.quantize(random_weights(rng, (64, 128), np.float32), 4, 64)
    w_down = qmetal.quantize(random_weights(rng, (128, 64), np.float32), 4, 64)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    with qmetal.Stream() as stream:
        h = qmetal.matmul(x, w_up, stream=stream)
        y = qmetal.matmul(h, w_down, stream=stream)
    assert_matmul_close(y, h, w_down)
    np.testing.assert_array_equal(h, qmetal.matmul(x, w_up))
    with pytest.raises(TypeError, match="stream: expected a qmetal.Stream"):
        qmetal.matmul(x, w_up, stream="now")


def test_from_arrays_shares_memory(rng):
    packed, scales, biases = ref.affine_quantize(random_weights(rng, (16, 256), np.float16), 4, 64)
    w = qmetal.QuantizedWeight.from_arrays(packed, scales, biases, 4, 64)
    assert not w.copied and np.shares_memory(w.packed, packed)
    x = rng.standard_normal((1, 256)).astype(np.float16)
    assert_matmul_close(qmetal.matmul(x, w), x, w)


@pytest.mark.parametrize("call, error, message", [
    (lambda w, x: qmetal.quantize(np.zeros((4, 64), np.float32), 7, 64), ValueError, r"bits: expected one of 2, 3"),
    (lambda w, x: qmetal.quantize(np.zeros((4, 64), np.float32), 4, 16), ValueError, r"group_size: expected one of"),
    (lambda w, x: qmetal.quantize(np.zeros((4, 96), np.float32), 4, 64), ValueError, r"multiple of group_size \(64\)"),
    (lambda w, x: qmetal.quantize(np.zeros((4, 64), np.int32), 4, 64), TypeError, r"w: expected float32"),
    (lambda w, x: qmetal.quantize(np.zeros(64, np.float32), 4, 64), ValueError, r"w: expected \[..., rows, cols\]"),
    (lambda w, x: qmetal.matmul(x[:, :100], w), ValueError, r"x: expected last dimension 128"),
    (lambda w, x: qmetal.matmul(x.astype(np.int32), w), TypeError, r"x: expected float32, float16 or bfloat16"),
    (lambda w, x: qmetal.matmul(x, w, out=np.zeros((3, 8), np.float32)), ValueError, r"out: expected shape \(3, 16\)"),
    (lambda w, x: qmetal.matmul(x, w, out=np.zeros((3, 16), np.float16)), TypeError, r"out: expected dtype float32"),
    (lambda w, x: qmetal.matmul(x, qmetal.QuantizedWeight.from_arrays(w.packed[:13], w.scales[:13], w.biases[:13], 4, 64),
                                route="qmv_fast"), ValueError, r"'qmv_fast' needs transpose=True and N % 8 == 0, got N = 13"),
    (lambda w, x: qmetal.matmul(x, w, route="qvm"), ValueError, r"'qvm' needs transpose=False"),
    (lambda w, x: qmetal.matmul(x, w, route="sideways"), ValueError, r"route: expected one of"),
    (lambda w, x: qmetal.matmul(x, w.packed), TypeError, r"w: expected a qmetal.QuantizedWeight"),
    (lambda w, x: qmetal.QuantizedWeight.from_arrays(w.packed, w.scales[:, :1], w.biases, 4, 64), ValueError,
     r"scales: expected shape \(16, 2\)"),
    (lambda w, x: qmetal.QuantizedWeight.from_arrays(w.packed.view(np.int32), w.scales, w.biases, 4, 64), TypeError,
     r"packed: expected uint32"),
    (lambda w, x: qmetal.QuantizedWeight.from_arrays(w.packed, w.scales, w.biases.astype(np.float16), 4, 64),
     TypeError, r"biases: expected float32"),
])
def test_bad_input_is_rejected_before_any_work(rng, call, error, message):
    w = qmetal.quantize(random_weights(rng, (16, 128), np.float32), 4, 64)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    with pytest.raises(error, match=message):
        call(w, x)


def test_bad_out_is_left_untouched(rng):
    w = qmetal.quantize(random_weights(rng, (16, 128), np.float32), 4, 64)
    x = rng.standard_normal((3, 100)).astype(np.float32)
    out = np.full((3, 16), 7.0, np.float32)
    with pytest.raises(ValueError):
        qmetal.matmul(x, w, out=out)
    assert (out == 7.0).all()


def test_bench_command_checks_every_result():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "qmetal", "bench", "--shapes", "40x128,64x256", "--rows", "1,3,33",
                             "--repeat", "1", "--no-peers", "--bits", "3", "--group-size", "32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("40x128") or line.startswith("64x256")]
    assert len(lines) == 6 and not any("WRONG" in line for line in lines)
    assert {line.split()[4] for line in lines} == {"qmv_fast", "qmm_t"}  # M = 3: three mat-vecs in one grid
    assert "all results checked" in result.stdout


# --- mixture of experts ------------------------------------------------------------------------


def reference_gather(x, w, lhs, rhs, transpose=True):
    """float64 mx.gather_qmm: matrix i of the broadcast indices multiplies x's
    batch matrix lhs[i] by expert rhs[i]."""
    dense = exact_dense(w)
    experts = dense.reshape(-1, *dense.shape[-2:])
    xs = x.astype(np.float64).reshape(-1, *x.shape[-2:])
    lhs = np.arange(xs.shape[0]).reshape(x.shape[:-2]) if lhs is None else np.asarray(lhs)
    rhs = np.arange(experts.shape[0]).reshape(dense.shape[:-2]) if rhs is None else np.asarray(rhs)
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    out = np.empty(lhs.shape + (x.shape[-2], dense.shape[-2] if transpose else dense.shape[-1]))
    for index in np.ndindex(lhs.shape):
        e = experts[rhs[index]]
        out[index] = xs[lhs[index]] @ (e.T if transpose else e)
    return out


def assert_gather_close(y, x, w, lhs, rhs, transpose=True):
    expected = reference_gather(x, w, lhs, rhs, transpose)
    assert y.shape == expected.shape
    k = x.shape[-1]
    # The bound of assert_matmul_close, taken norm-wise for brevity.
    assert relative_error(y, expected) < matmul_tolerance(y.dtype, k)


@pytest.mark.parametrize("tokens, experts, top_k", [(1, 4, 1), (5, 8, 2), (16, 16, 4), (33, 64, 6), (64, 32, 8)])
@pytest.mark.parametrize("routing", ["random", "skewed"])
def test_gather_matmul_top_k_routing(rng, tokens, experts, top_k, routing):
    n, k = 24, 128
    w = qmetal.quantize(random_weights(rng, (experts, n, k), np.float16), 4, 64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float16)
    if routing == "random":
        ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.uint32)
    else:  # every token to the same experts
        ids = np.tile(np.arange(top_k, dtype=np.uint32), (tokens, 1))
    for route in ("automatic", "qmv", "qmm", "qmm_sorted"):
        y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route)
        assert y.shape == (tokens, top_k, 1, n)
        assert_gather_close(y, x, w, None, ids)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("bits", BITS)
def test_every_gather_route_for_every_format(rng, bits, group_size, dtype):
    experts, tokens, top_k, n = 4, 9, 2, 13
    k = 2 * group_size
    w = qmetal.quantize(random_weights(rng, (experts, n, k), dtype), bits, group_size)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(dtype)
    ids = rng.integers(0, experts, (tokens, top_k)).astype(np.uint32)
    for route in ("qmv", "qmm", "qmm_sorted"):
        assert_gather_close(qmetal.gather_matmul(x, w, rhs_indices=ids, route=route), x, w, None, ids)
    wn = qmetal.quantize(random_weights(rng, (experts, 37, 2 * group_size), dtype), bits, group_size)  # [E, K, N]
    xn = rng.standard_normal((tokens, 1, 3, 37)).astype(dtype)
    for route in ("qvm", "qmm"):
        y = qmetal.gather_matmul(xn, wn, rhs_indices=ids, transpose=False, route=route)
        assert_gather_close(y, xn, wn, None, ids, transpose=False)


def test_gather_matmul_matches_mlx_gather_qmm(rng):
    import mlx.core as mx

    w = qmetal.quantize(random_weights(rng, (6, 40, 256), np.float32), 3, 32)
    x = rng.standard_normal((4, 3, 256)).astype(np.float32)
    lhs = rng.integers(0, 4, (5, 2)).astype(np.uint32)
    rhs = rng.integers(0, 6, (5, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(x, w, lhs, rhs)
    theirs = mx.gather_qmm(mx.array(x), mx.array(w.packed), mx.array(w.scales), mx.array(w.biases),
                           lhs_indices=mx.array(lhs), rhs_indices=mx.array(rhs), transpose=True, group_size=32, bits=3)
    assert y.shape == (5, 2, 3, 40)
    assert relative_error(y, np.array(theirs)) < 4 * matmul_tolerance(np.float32, 256)
    assert_gather_close(y, x, w, lhs, rhs)


@pytest.mark.parametrize("route", ["automatic", "qvm", "qmm"])
def test_gather_matmul_without_transpose(rng, route):
    w = qmetal.quantize(random_weights(rng, (5, 48, 64), np.float32), 4, 32)  # experts [E, K=48, N=64]
    x = rng.standard_normal((7, 1, 48)).astype(np.float32)
    ids = rng.integers(0, 5, (7, 2)).astype(np.int64)
    y = qmetal.gather_matmul(x[:, None], w, rhs_indices=ids, transpose=False, route=route)
    assert_gather_close(y, x[:, None], w, None, ids, transpose=False)


def test_sorted_experts_path_is_chosen_and_agrees(rng):
    # Decode-style MoE with many (token, slot) rows per expert: the rows are
    # sorted by expert, and an expert's tiles serve all its rows.
    experts, tokens, top_k, n, k = 4, 40, 2, 40, 128
    w = qmetal.quantize(random_weights(rng, (experts, n, k), np.float32), 4, 64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float32)
    ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.uint32)
    device = qmetal.default_device()
    assert qmetal._core.affine_gather_prefers_sorted(device, True, 1, tokens * top_k, experts)
    assert not qmetal._core.affine_gather_prefers_sorted(device, True, 3, tokens * top_k, experts)
    automatic = qmetal.gather_matmul(x, w, rhs_indices=ids)
    assert_gather_close(automatic, x, w, None, ids)
    np.testing.assert_allclose(automatic, qmetal.gather_matmul(x, w, rhs_indices=ids, route="qmm"), rtol=1e-5,
                               atol=1e-5)
    # Already sorted, as mlx's sorted_indices=True promises.
    flat = ids.reshape(-1)
    order = np.argsort(flat, kind="stable")
    xs = np.repeat(x[:, 0], top_k, axis=0)[order]  # [rows, 1, K]: one matrix per row
    y = qmetal.gather_matmul(xs, w, rhs_indices=flat[order], sorted_indices=True)
    assert y.shape == (tokens * top_k, 1, n)
    assert_gather_close(y, xs, w, None, flat[order])
    with pytest.raises(ValueError, match="rhs_indices: sorted_indices=True, but the indices are not sorted"):
        qmetal.gather_matmul(x, w, rhs_indices=ids, sorted_indices=True)


@pytest.mark.parametrize("tokens, top_k, transpose", [(5, 2, True), (40, 4, True), (6, 3, False)])
def test_moe_indices_on_a_stream_are_read_by_the_kernels(rng, tokens, top_k, transpose):
    """With a stream, routing indices may come from an earlier op still
    queued, so the op must not read them: here they are garbage when the op
    is called and written only afterwards, before synchronize (no host
    round trip; the simulator runs a stream's work at synchronize, as a GPU
    would later). 40 tokens take the tiled gather route."""
    experts, n, k = 6, 24 if transpose else 64, 128  # w [E, K, N] is quantized along N
    shape = (experts, n, k) if transpose else (experts, k, n)
    w = qmetal.quantize(random_weights(rng, shape, np.float32), 4, 64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float32)
    ids = qmetal.empty((tokens, top_k), "uint32").numpy()
    ids[...] = experts + 7  # out of range: reading them now would fail
    stream = qmetal.Stream()
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, transpose=transpose, stream=stream)
    sorted_on_device = qmetal._core.affine_gather_prefers_sorted(qmetal.default_device(), transpose, 1,
                                                                 tokens * top_k, experts)
    assert sorted_on_device == (tokens == 40)
    assert (stream.queued_kernels[0] == "gather_sort") == sorted_on_device
    assert stream.queued_kernels[-1].startswith("gather_check")
    routing = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.uint32)
    ids[...] = routing
    stream.synchronize()
    assert_gather_close(y, x, w, None, routing, transpose=transpose)
    # The device sorts as the host does: the same bits.
    np.testing.assert_array_equal(y, qmetal.gather_matmul(x, w, rhs_indices=routing, transpose=transpose))


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_moe_index_out_of_range_on_a_stream_fails_at_synchronize(rng, dtype):
    experts, tokens, top_k, n, k = 4, 3, 2, 16, 128
    w = qmetal.quantize(random_weights(rng, (experts, n, k), np.float16), 4, 64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float16)
    ids = np.array([[0, 1], [2, experts], [3, 1]]).astype(dtype)
    if dtype == np.int32:
        ids[1, 1] = -1
    stream = qmetal.Stream()
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, stream=stream)  # no error yet: nothing was read
    with pytest.raises(ValueError, match=r"rhs_indices: an index read on the device is out of range \[0, 4\)"):
        stream.synchronize()
    assert np.isnan(y[1, 1].astype(np.float32)).all()
    good = np.ones((tokens, top_k), bool)
    good[1, 1] = False
    expected = reference_gather(x, w, None, np.where(good, ids, 0).astype(np.uint32))
    assert relative_error(y[good], expected[good]) < matmul_tolerance(y.dtype, k)
    stream.synchronize()  # reported once


def test_moe_on_a_stream_rejects_what_it_cannot_read(rng):
    w = qmetal.quantize(random_weights(rng, (4, 16, 128), np.float32), 4, 64)
    x = rng.standard_normal((3, 1, 1, 128)).astype(np.float32)
    stream = qmetal.Stream()
    with pytest.raises(TypeError, match="rhs_indices: on a stream .* expected uint32 or int32, got int64"):
        qmetal.gather_matmul(x, w, rhs_indices=np.zeros((3, 2), np.int64), stream=stream)
    with pytest.raises(ValueError, match=r"lhs_indices: on a stream .* broadcast shape \(3, 2\), got \(3, 1\)"):
        qmetal.gather_matmul(x, w, lhs_indices=np.zeros((3, 1), np.uint32), rhs_indices=np.zeros((1, 2), np.uint32),
                             stream=stream)
    with pytest.raises(ValueError, match=r"lhs_indices: every index is out of range \[0, 0\)"):
        qmetal.gather_matmul(x[:0], w, lhs_indices=np.zeros((3, 2), np.uint32), rhs_indices=np.zeros((3, 2), np.uint32),
                             stream=stream)
    assert stream.queued_kernels == []
    stream.synchronize()


def test_moe_sorted_on_a_stream_by_the_device(rng):
    """route="qmm_sorted" on a stream: the device sorts the rows by expert
    (gather_sort), ids out of range included (clamped, then NaN)."""
    experts, tokens, top_k, k = 5, 7, 3, 128
    w = qmetal.quantize(random_weights(rng, (experts, 32, k), np.float32), 4, 64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float32)
    ids = rng.integers(0, experts, (tokens, top_k)).astype(np.uint32)
    ids[2, 1] = experts
    stream = qmetal.Stream()
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route="qmm_sorted", stream=stream)
    assert stream.queued_kernels[:2] == ["gather_sort", "affine_gather_qmm_sorted_float32_gs64_b4"]
    with pytest.raises(ValueError, match=r"rhs_indices: an index read on the device is out of range \[0, 5\)"):
        stream.synchronize()
    good = ids < experts
    assert np.isnan(y[~good]).all()
    expected = qmetal.gather_matmul(x, w, rhs_indices=np.where(good, ids, 0).astype(np.uint32), route="qmm_sorted")
    np.testing.assert_array_equal(y[good], expected[good])


@pytest.mark.parametrize("call, error, message", [
    (lambda w, x: qmetal.gather_matmul(x, w, rhs_indices=np.array([[0, 9]])), ValueError,
     r"rhs_indices: index 9 at position 1 is out of range \[0, 4\)"),
    (lambda w, x: qmetal.gather_matmul(x, w, rhs_indices=np.array([[-1, 0]])), ValueError, r"rhs_indices: index -1"),
    (lambda w, x: qmetal.gather_matmul(x, w, rhs_indices=np.array([[0.0, 1.0]])), TypeError,
     r"rhs_indices: expected an integer dtype"),
    (lambda w, x: qmetal.gather_matmul(x, w, lhs_indices=np.array([5]), rhs_indices=np.array([0])), ValueError,
     r"lhs_indices: index 5 .* out of range \[0, 3\)"),
    (lambda w, x: qmetal.gather_matmul(x, w, lhs_indices=np.zeros(3, int), rhs_indices=np.zeros(2, int)),
     ValueError, r"does not broadcast"),
    (lambda w, x: qmetal.gather_matmul(x[..., :64], w, rhs_indices=np.zeros((3, 1), int)), ValueError,
     r"x: expected last dimension 128"),
    (lambda w, x: qmetal.gather_matmul(x, qmetal.quantize(np.ones((8, 128), np.float32)), rhs_indices=[0]),
     ValueError, r"w: expected experts stacked"),
])
def test_gather_matmul_rejects_bad_input(rng, call, error, message):
    w = qmetal.quantize(random_weights(rng, (4, 16, 128), np.float32), 4, 64)
    x = rng.standard_normal((3, 1, 128)).astype(np.float32)
    with pytest.raises(error, match=message):
        call(w, x)


def test_selftest_command_runs_every_route():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "qmetal", "selftest"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
    assert result.stdout.count("\nok ") >= 48 and "all kernels agree" in result.stdout
