"""DWQ through the simulator: unpacked weights on every affine route (float64
and mlx, whose 8-bit packing is the same bytes), dwq.init against a float64
NumPy model of the rule, dwq.grads against float64, matmul_vjp against
mx.vjp of mx.quantized_matmul and against float64, that the fused gradient
plan stores no weight gradient, and bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import qmetal
import qmetal.sim
from qmetal import reference as ref
from conftest import BFLOAT16, FLOAT_DTYPES, from_mx, matmul_tolerance, relative_error, to_mx, unit_roundoff

mx = pytest.importorskip("mlx.core")

U32 = unit_roundoff(np.float32)
MLX_BITS = ref.AFFINE_BITS  # the widths mlx packs that the kernels decode
ALL_BITS = range(1, 9)


# --- helpers ---------------------------------------------------------------------------

def random_codes(rng, shape, bits, group_size, dtype):
    """Unpacked codes below 2^bits, and scales (positive, over a decade) and
    biases of the dtype: a weight as dwq training leaves it."""
    codes = rng.integers(0, 2 ** bits, size=shape, dtype=np.uint8)
    groups = (*shape[:-1], shape[-1] // group_size)
    scales = (10.0 ** rng.uniform(-2, -1, size=groups)).astype(dtype)
    biases = rng.standard_normal(groups).astype(dtype) * np.asarray(0.1, dtype)
    return codes, scales, biases


def group_sums(values, group_size):
    return values.reshape(*values.shape[:-1], -1, group_size).sum(-1)


def dense64(codes, scales, biases, group_size):
    """scale * code + bias in float64, [..., rows, cols]."""
    groups = codes.astype(np.float64).reshape(*codes.shape[:-1], -1, group_size)
    return (groups * scales.astype(np.float64)[..., None] + biases.astype(np.float64)[..., None]).reshape(codes.shape)


def sum_to(a, shape):
    """a summed over the dimensions `shape` was broadcast along (a vjp's rule)."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and a.shape[d] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def vjp64(x, codes, scales, biases, group_size, dy, transpose):
    """float64 (dx, d_scales, d_biases) of y = x @ W^T (or x @ W) by the
    definition: dW = dy^T x (x^T dy), reduced per group with the codes, and
    each summed over broadcast dimensions. Also the magnitudes (the same
    sums of absolute values) for error bounds."""
    w = dense64(codes, scales, biases, group_size)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    x_m = x64[None, :] if x.ndim == 1 else x64
    dy_m = dy64[..., None, :] if x.ndim == 1 else dy64
    c = codes.astype(np.float64)

    def parts(xm, dym, wm):
        dx = dym @ (wm if transpose else np.swapaxes(wm, -1, -2))
        dw = np.swapaxes(dym, -1, -2) @ xm if transpose else np.swapaxes(xm, -1, -2) @ dym
        dw = sum_to(dw, codes.shape)
        return sum_to(dx, x_m.shape).reshape(x.shape), group_sums(dw * c, group_size), group_sums(dw, group_size)

    exact = parts(x_m, dy_m, w)
    magnitude = parts(np.abs(x_m), np.abs(dy_m), np.abs(dense64(codes, np.abs(scales), np.abs(biases),
                                                                   group_size)))
    return exact, magnitude


def assert_within(actual, exact, magnitude, terms, what):
    """|actual - exact| <= terms u_f32 magnitude + u_out |exact|: float32 sums
    of `terms` terms in any order (Higham's gamma_n, as test_affine bounds
    the matmul), then one rounding to the output dtype."""
    actual64 = np.asarray(actual, dtype=np.float64)
    bound = terms * U32 * magnitude + unit_roundoff(actual.dtype) * np.abs(exact) + 1e-30
    assert actual.shape == exact.shape, what
    excess = np.abs(actual64 - exact) / bound
    worst = np.unravel_index(np.argmax(excess), excess.shape) if exact.size else None
    assert not exact.size or excess[worst] <= 1, (
        f"{what}: error {excess[worst]:.2f} times the bound at {worst}: {actual64[worst]!r}, exact "
        f"{exact[worst]!r}, magnitude {magnitude[worst]!r}")



def assert_agrees_with_mlx(ours, theirs, exact, tol, what):
    """||ours - mlx|| <= ||mlx - exact|| + tol ||exact||: the triangle
    inequality, with our own error within tol (checked elementwise against
    float64 first) and mlx's whatever it is; mlx computes low-precision
    vjps partly in the dtype (its bfloat16 dx is off by several ulps), so
    its own error is measured, not assumed. A different convention
    (transposition, sign, broadcast sum) is off by the size of the result."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    allowed = np.linalg.norm(theirs - exact) + tol * np.linalg.norm(exact)
    assert np.linalg.norm(ours - theirs) <= allowed, f"{what}: {np.linalg.norm(ours - theirs)} > {allowed}"


def mlx_8bit(codes):
    """Unpacked codes as mlx's own 8-bit packed weight: the same bytes."""
    return mx.array(codes.view(np.uint32))


# --- unpacked weights through the existing routes ---------------------------------------

ROUTES = {
    # route: (M, N, K, transpose); "3g" is three groups. With transpose=False
    # w is [K, N], quantized along N. qmv_fast's K is a multiple of the 256
    # values the 8-bit fast path covers per step.
    "qmv": (1, 13, "3g", True),
    "qmv_fast": (1, 16, 256, True),
    "qmv_wide": (5, 13, "3g", True),
    "qmm": (33, 13, "3g", True),
    "qmm_split_k": (33, 13, "3g", True),
    "qvm": (2, "3g", 37, False),
    "qvm_split_k": (2, "3g", 300, False),
    "qmm_n": (33, "3g", 37, False),
    "qmm_n_split_k": (40, "3g", 100, False),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("route", ROUTES)
def test_unpacked_codes_on_every_route(rng, route, dtype):
    index = list(ROUTES).index(route) + FLOAT_DTYPES.index(dtype)
    bits, group_size = ALL_BITS[index % 8], ref.AFFINE_GROUP_SIZES[index % 3]
    m, n, k, transpose = ROUTES[route]
    n, k = (3 * group_size if v == "3g" else v for v in (n, k))
    rows, cols = (n, k) if transpose else (k, n)
    codes, scales, biases = random_codes(rng, (rows, cols), bits, group_size, dtype)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits, group_size)
    assert w.unpacked and w.shape == (rows, cols)
    x = rng.standard_normal((m, k)).astype(dtype)
    y = qmetal.matmul(x, w, transpose=transpose, route=route.replace("qmm_n", "qmm"))
    assert y.dtype == dtype
    dense = dense64(codes, scales, biases, group_size)
    magnitude = dense64(codes, np.abs(scales), np.abs(biases), group_size)
    x64 = x.astype(np.float64)
    w64, mag = (dense.T, magnitude.T) if transpose else (dense, magnitude)
    # K products, each dequantized with two roundings, summed in float32.
    exact = x64 @ w64
    assert_within(y, exact, np.abs(x64) @ mag, k + 2, route)
    # mlx runs the same bytes as its 8-bit format.
    expected = mx.quantized_matmul(to_mx(x), mlx_8bit(codes), to_mx(scales), to_mx(biases), transpose=transpose,
                                   group_size=group_size, bits=8)
    assert_agrees_with_mlx(y, from_mx(expected), exact, matmul_tolerance(dtype, k), route)


def test_from_codes_wraps_without_copying(rng):
    codes = np.asarray(qmetal.empty((16, 128), "uint8"))  # page-aligned, as the device wraps memory
    codes[...] = rng.integers(0, 4, size=codes.shape)
    scales, biases = np.asarray(qmetal.zeros((16, 2), "float16")), np.asarray(qmetal.zeros((16, 2), "float16"))
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits=2, group_size=64)
    assert not w.copied and w.codes.ctypes.data == codes.ctypes.data
    assert repr(w) == "QuantizedWeight(shape=(16, 128), bits=2, group_size=64, dtype=float16, unpacked)"
    packed = qmetal.quantize(rng.standard_normal((4, 64)).astype(np.float32), 3, 32)
    assert not packed.unpacked
    np.testing.assert_array_equal(packed.codes, ref.unpack_bits(packed.packed, 3))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", ref.AFFINE_GROUP_SIZES)
def test_unpacked_dequantize_is_bit_exact_with_mlx(rng, group_size, dtype):
    bits = 3
    codes, scales, biases = random_codes(rng, (2, 7, 2 * group_size), bits, group_size, dtype)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits, group_size)
    dense = qmetal.dequantize(w)
    expected = from_mx(mx.dequantize(mlx_8bit(codes), to_mx(scales), to_mx(biases), group_size=group_size, bits=8))
    assert dense.dtype == dtype
    np.testing.assert_array_equal(dense.astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize("route", ["qmv", "qvm", "qmm", "qmm_sorted"])
def test_unpacked_experts_in_gather_matmul(rng, route):
    dtype, bits, group_size, experts = np.float16, 5, 32, 4
    transpose = route != "qvm"
    m = 1 if route in ("qmv", "qmm_sorted") else 9
    rows, cols = (11, 3 * group_size) if transpose else (40, 2 * group_size)
    k = cols if transpose else rows
    codes, scales, biases = random_codes(rng, (experts, rows, cols), bits, group_size, dtype)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits, group_size)
    x = rng.standard_normal((6, m, k)).astype(dtype)
    ids = rng.integers(0, experts, size=(6, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(x[:, None], w, rhs_indices=ids, transpose=transpose, route=route)
    expected = mx.gather_qmm(to_mx(x[:, None]), mlx_8bit(codes), to_mx(scales), to_mx(biases),
                             rhs_indices=mx.array(ids), transpose=transpose, group_size=group_size, bits=8)
    assert y.shape == tuple(expected.shape) and y.dtype == dtype
    dense = dense64(codes, scales, biases, group_size)
    experts_of = (dense[ids[t, j]] for t, j in np.ndindex(*ids.shape))
    exact = np.stack([x[t].astype(np.float64) @ (e.T if transpose else e)
                      for (t, _), e in zip(np.ndindex(*ids.shape), experts_of)]).reshape(y.shape)
    assert_agrees_with_mlx(y, from_mx(expected), exact, matmul_tolerance(dtype, k), route)


@pytest.mark.parametrize("x_dtype, scale_dtype", [(np.float16, np.float32), (BFLOAT16, np.float16),
                                                  (np.float32, BFLOAT16)], ids=str)
def test_mixed_dtypes_promote_as_mlx(rng, x_dtype, scale_dtype):
    """MLX promotes x and the scales (float16 x with float32 scales gives
    float32); unpacked weights follow the same rule as packed ones."""
    group_size, bits = 64, 4
    codes, scales, biases = random_codes(rng, (24, 2 * group_size), bits, group_size, scale_dtype)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits, group_size)
    x = rng.standard_normal((3, 2 * group_size)).astype(x_dtype)
    y = qmetal.matmul(x, w)
    expected = mx.quantized_matmul(to_mx(x), mlx_8bit(codes), to_mx(scales), to_mx(biases), group_size=group_size,
                                   bits=8)
    assert y.dtype == from_mx(expected).dtype == np.float32
    assert relative_error(y, from_mx(expected)) <= matmul_tolerance(np.float32, 2 * group_size)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, d_scales, d_biases = qmetal.matmul_vjp(x, w, dy)
    _, (mdx, mds, mdb) = mx.vjp(
        lambda a, s, b: mx.quantized_matmul(a, mlx_8bit(codes), s, b, group_size=group_size, bits=8),
        [to_mx(x), to_mx(scales), to_mx(biases)], [to_mx(dy)])
    assert (dx.dtype, d_scales.dtype, d_biases.dtype) == (from_mx(mdx).dtype, from_mx(mds).dtype,
                                                          from_mx(mdb).dtype) == (x_dtype, scale_dtype, scale_dtype)


@pytest.mark.parametrize("group_size", [16, 1024])
def test_group_sizes_without_matmul_kernels_are_refused(rng, group_size):
    """Group sizes mlx does not quantize with (neither does its
    quantized_matmul) are for init and grads only; the matmul ops refuse them
    by name rather than instantiate kernels nobody loads from MLX."""
    codes, scales, biases = random_codes(rng, (4, 1024), 4, group_size, np.float32)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, 4, group_size)
    x = rng.standard_normal((2, 1024)).astype(np.float32)
    for call in (lambda: qmetal.matmul(x, w), lambda: qmetal.dequantize(w),
                 lambda: qmetal.matmul_vjp(x, w, np.ones((2, 4), np.float32)),
                 lambda: qmetal.gather_matmul(x[None], qmetal.QuantizedWeight.from_codes(
                     codes[None], scales[None], biases[None], 4, group_size))):
        with pytest.raises(ValueError, match="group_size: the matmul, dequantize and vjp kernels take 32, 64 or 128"):
            call()
    d_scales, _ = qmetal.dwq.grads(w, np.ones((4, 1024), np.float32))
    np.testing.assert_array_equal(d_scales, group_sums(codes.astype(np.float32), group_size))


# --- init ------------------------------------------------------------------------------------

INIT_GROUP_SIZES = [2, 4, 16, 32, 64, 128, 256, 1024]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_init_follows_the_min_max_rule(rng, bits, dtype):
    group_size = INIT_GROUP_SIZES[(bits + FLOAT_DTYPES.index(dtype)) % len(INIT_GROUP_SIZES)]
    k = group_size * max(1, 192 // group_size)
    w = (rng.standard_normal((2, 5, k)) * 10.0 ** rng.uniform(-3, 1, size=(2, 5, 1))).astype(dtype)
    w[0, 1, :group_size] = w[0, 1, 0]  # a constant group
    qw = qmetal.dwq.init(w, bits=bits, group_size=group_size)
    assert (qw.bits, qw.group_size, qw.unpacked, qw.shape) == (bits, group_size, True, w.shape)
    assert qw.codes.dtype == np.uint8 and qw.scales.dtype == qw.biases.dtype == np.float32

    # The rule in float64 on the same values.
    groups = w.astype(np.float64).reshape(2, 5, -1, group_size)
    low, high = groups.min(-1), groups.max(-1)
    n_bins = 2 ** bits - 1
    scale = np.where(high > low, (high - low) / n_bins, 1.0)
    ratio = (groups - low[..., None]) / scale[..., None]
    codes = np.clip(np.round(ratio), 0, n_bins)
    np.testing.assert_array_equal(qw.biases, low)  # the minimum, exact in float32
    # float32: the range rounds once and the quotient once.
    assert np.all(np.abs(qw.scales - scale) <= 2 * U32 * scale)
    assert qw.scales[0, 1, 0] == 1.0 and np.all(qw.codes[0, 1, :group_size] == 0)
    # A code may differ only by one, where the float64 quotient lies within
    # float32's error (a few roundings of the quotient) of a rounding tie.
    got = qw.codes.reshape(codes.shape).astype(np.float64)
    near_tie = np.abs(ratio - np.floor(ratio) - 0.5) <= 8 * U32 * np.maximum(ratio, 1)
    assert np.all(np.abs(got - codes) <= 1)
    assert np.all((got == codes) | near_tie)


def test_init_round_trips_within_half_a_step(rng):
    w = rng.standard_normal((33, 320)).astype(np.float32)
    qw = qmetal.dwq.init(w, bits=3, group_size=32)
    dense = qmetal.dequantize(qw)
    step = np.repeat(qw.scales, 32, axis=-1)
    assert np.all(np.abs(dense - w) <= 0.5 * step * (1 + 1e-5) + 1e-6)


# --- grads from dw ---------------------------------------------------------------------------

GRADS_CASES = [("unpacked", b) for b in ALL_BITS] + [("packed", b) for b in MLX_BITS]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("layout, bits", GRADS_CASES)
def test_grads_from_dw_against_float64(rng, layout, bits, dtype):
    index = bits + FLOAT_DTYPES.index(dtype)
    if layout == "unpacked":
        group_size = INIT_GROUP_SIZES[index % len(INIT_GROUP_SIZES)]
        shape = (3, 4, group_size * max(1, 128 // group_size))
        w = qmetal.QuantizedWeight.from_codes(*random_codes(rng, shape, bits, group_size, dtype), bits, group_size)
    else:
        group_size = ref.AFFINE_GROUP_SIZES[index % 3]
        shape = (3, 4, 2 * group_size)
        w = qmetal.quantize(rng.standard_normal(shape).astype(dtype), bits, group_size)
    dw = rng.standard_normal(shape).astype(dtype)
    d_scales, d_biases = qmetal.dwq.grads(w, dw)
    assert d_scales.dtype == d_biases.dtype == dtype and d_scales.shape == w.scales.shape
    codes, dw64 = w.codes.astype(np.float64), dw.astype(np.float64)
    assert_within(d_scales, group_sums(codes * dw64, group_size), group_sums(codes * np.abs(dw64), group_size),
                  group_size, "d_scales")
    assert_within(d_biases, group_sums(dw64, group_size), group_sums(np.abs(dw64), group_size), group_size,
                  "d_biases")


# --- matmul_vjp --------------------------------------------------------------------------------

VJP_CASES = [("packed", b) for b in MLX_BITS] + [("unpacked", b) for b in ALL_BITS if b >= 2]
ROWS = [1, 5, 33, 64]


def make_weight(rng, layout, bits, group_size, shape, dtype):
    """(qmetal weight, mlx packed, mlx bits, codes, scales, biases)."""
    if layout == "packed":
        packed, scales, biases = mx.quantize(to_mx(rng.standard_normal(shape).astype(dtype)), group_size=group_size,
                                             bits=bits)
        w = qmetal.QuantizedWeight.from_arrays(np.array(packed), from_mx(scales), from_mx(biases), bits, group_size)
        return w, packed, bits, w.codes, from_mx(scales), from_mx(biases)
    codes, scales, biases = random_codes(rng, shape, bits, group_size, dtype)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, bits, group_size)
    return w, mlx_8bit(codes), 8, codes, scales, biases


def check_vjp(rng, w, packed, mlx_bits, codes, scales, biases, x, transpose, dtype):
    group_size = w.group_size
    y = qmetal.matmul(x, w, transpose=transpose)
    dy = rng.standard_normal(y.shape).astype(y.dtype)
    dx, d_scales, d_biases = qmetal.matmul_vjp(x, w, dy, transpose=transpose)

    def f(a, s, b):
        return mx.quantized_matmul(a, packed, s, b, transpose=transpose, group_size=group_size, bits=mlx_bits)

    _, (mdx, mds, mdb) = mx.vjp(f, [to_mx(x), to_mx(scales), to_mx(biases)], [to_mx(dy)])
    (edx, eds, edb), (mag_dx, mag_ds, mag_db) = vjp64(x, codes, scales, biases, group_size, dy, transpose)
    rows = dy.size // dy.shape[-1]  # every output row feeds the weight's gradient
    reduced = codes.shape[-2] if transpose else codes.shape[-1]  # dx sums over N
    assert_within(dx, edx, mag_dx, reduced + 2 + rows, "dx")
    assert_within(d_scales, eds, mag_ds, rows + group_size, "d_scales")
    assert_within(d_biases, edb, mag_db, rows + group_size, "d_biases")
    for name, ours, theirs, exact, terms in (("dx", dx, mdx, edx, reduced),
                                             ("d_scales", d_scales, mds, eds, rows + group_size),
                                             ("d_biases", d_biases, mdb, edb, rows + group_size)):
        theirs = from_mx(theirs)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        assert_agrees_with_mlx(ours, theirs, exact, matmul_tolerance(dtype, terms), name)


@pytest.mark.parametrize("transpose", [True, False], ids=["t", "n"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", ref.AFFINE_GROUP_SIZES)
@pytest.mark.parametrize("layout, bits", VJP_CASES)
def test_matmul_vjp_against_mlx(rng, layout, bits, group_size, dtype, transpose):
    index = bits + group_size // 32 + FLOAT_DTYPES.index(dtype) + transpose
    m = ROWS[index % len(ROWS)]
    # Rows off the 32-row tiles; transposed: N free, K groups; otherwise K
    # free (the weight's rows) and N groups.
    shape = (13, 3 * group_size) if transpose else (37, 2 * group_size)
    w, packed, mlx_bits, codes, scales, biases = make_weight(rng, layout, bits, group_size, shape, dtype)
    k = shape[1] if transpose else shape[0]
    x = rng.standard_normal((m, k)).astype(dtype)
    check_vjp(rng, w, packed, mlx_bits, codes, scales, biases, x, transpose, dtype)


BATCHES = {
    # name: (weight batch, x batch)
    "batched": ((2,), (2,)),
    "x_broadcast": ((3,), (1,)),
    "w_broadcast": ((1,), (3,)),
    "both": ((2, 1), (1, 3)),
}


@pytest.mark.parametrize("transpose", [True, False], ids=["t", "n"])
@pytest.mark.parametrize("batch", BATCHES)
def test_matmul_vjp_batched_weights(rng, batch, transpose):
    dtype, bits, group_size, m = np.float32, 4, 32, 7
    w_batch, x_batch = BATCHES[batch]
    shape = (*w_batch, 21, 2 * group_size) if transpose else (*w_batch, 45, 2 * group_size)
    layout = "unpacked" if transpose else "packed"
    w, packed, mlx_bits, codes, scales, biases = make_weight(rng, layout, bits, group_size, shape, dtype)
    k = shape[-1] if transpose else shape[-2]
    x = rng.standard_normal((*x_batch, m, k)).astype(dtype)
    check_vjp(rng, w, packed, mlx_bits, codes, scales, biases, x, transpose, dtype)


def test_matmul_vjp_of_a_vector_and_of_folded_rows(rng):
    """x [K] against a batched weight, and x [B, M, K] folded into the rows of
    a 2-D weight, against float64."""
    group_size = 64
    codes, scales, biases = random_codes(rng, (3, 10, group_size), 6, group_size, np.float32)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, 6, group_size)
    for x, weight, c, s, b in ((rng.standard_normal(group_size).astype(np.float32), w, codes, scales, biases),
                               (rng.standard_normal((2, 3, group_size)).astype(np.float32),
                                qmetal.QuantizedWeight.from_codes(codes[0], scales[0], biases[0], 6, group_size),
                                codes[0], scales[0], biases[0])):
        y = qmetal.matmul(x, weight)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        got = qmetal.matmul_vjp(x, weight, dy)
        (edx, eds, edb), mags = vjp64(x, c, s, b, group_size, dy, True)
        rows = dy.size // dy.shape[-1]
        for name, a, e, mag in zip(("dx", "d_scales", "d_biases"), got, (edx, eds, edb), mags):
            assert_within(a, e, mag, rows + group_size + 12, name)


def test_fused_gradient_stores_no_weight_gradient():
    """The plan of the scale / bias gradient of a 4096 x 4096 layer: its only
    writes are d_scales and d_biases, and what it binds besides x, dy and
    the codes (the pair list) is a few bytes, where dW would take 64 MiB."""
    n = k = 4096
    group_size, m = 64, 8
    groups = (n, k // group_size)
    w = qmetal.QuantizedWeight.from_codes(np.zeros((n, k), np.uint8), np.ones(groups, np.float32),
                                          np.zeros(groups, np.float32), 4, group_size)
    x, dy = qmetal.zeros((m, k), "float32"), qmetal.zeros((m, n), "float32")
    d_scales, d_biases = qmetal.empty(groups, "float32"), qmetal.empty(groups, "float32")
    plans = qmetal._core.plan_dwq_vjp(qmetal.default_device(), x, w._native, dy, True, d_scales, d_biases)
    assert [p.kernel for p in plans] == ["dwq_vjp_float32_b8"]
    written = [buffer for _, buffer, _, access in plans[0].buffers if access != "read"]
    assert {id(b) for b in written} == {id(d_scales), id(d_biases)}
    known = {id(x), id(dy), id(w._native.packed), id(d_scales), id(d_biases)}
    extra = sum(buffer.nbytes for _, buffer, _, _ in plans[0].buffers if id(buffer) not in known)
    assert 0 < extra <= 64
    assert d_scales.nbytes + d_biases.nbytes + extra < n * k * 4 // 16


# --- barriers: race-checked builds of dwq.h ------------------------------------------------

SHADERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shaders")
BARRIER = "threadgroup_barrier(mem_flags::mem_threadgroup);"
DWQ_KERNELS = """
#include "dwq.h"
QMETAL_DWQ_TYPED(init, float, float32)
QMETAL_DWQ_ONE(grads, float, float32, 8)
QMETAL_DWQ_ONE(vjp, float, float32, 8)
"""


def run_dwq_ops(rng):
    """init, grads and the fused gradient, each through several reduction
    steps (64-value groups), two row steps and two column tiles per group."""
    w = rng.standard_normal((5, 128)).astype(np.float32)
    qw = qmetal.dwq.init(w, bits=4, group_size=64)
    np.testing.assert_array_equal(qw.biases, w.reshape(5, 2, 64).min(-1))
    dw = rng.standard_normal((5, 128)).astype(np.float32)
    d_scales, _ = qmetal.dwq.grads(qw, dw)
    expected = group_sums(qw.codes * dw.astype(np.float64), 64)
    np.testing.assert_allclose(d_scales, expected, rtol=1e-4, atol=1e-4)
    x = rng.standard_normal((40, 128)).astype(np.float32)
    dy = rng.standard_normal((40, 5)).astype(np.float32)
    _, d_scales, _ = qmetal.matmul_vjp(x, qw, dy)
    expected = group_sums(qw.codes * (dy.T.astype(np.float64) @ x), 64)
    np.testing.assert_allclose(d_scales, expected, rtol=1e-4, atol=1e-3)


def dwq_shaders(tmp_path, barrier=None):
    """shaders/ copied, with the `barrier`-th threadgroup barrier of dwq.h removed."""
    target = tmp_path / "shaders"
    shutil.copytree(SHADERS, target)
    if barrier is not None:
        path = target / "dwq.h"
        text = path.read_text()
        start = [i for i in range(len(text)) if text.startswith(BARRIER, i)][barrier]
        path.write_text(text[:start] + "/* barrier removed */" + text[start + len(BARRIER):])
    return target


def test_dwq_kernels_have_no_races(tmp_path, rng):
    lib = qmetal.sim.compile(DWQ_KERNELS, include_dirs=[dwq_shaders(tmp_path)], race_check=True,
                             cache_dir=tmp_path / "cache")
    with lib.running_ops():
        run_dwq_ops(rng)


@pytest.mark.parametrize("barrier", range(open(os.path.join(SHADERS, "dwq.h")).read().count(BARRIER)))
def test_removing_any_dwq_barrier_is_a_race(tmp_path, rng, barrier):
    lib = qmetal.sim.compile(DWQ_KERNELS, include_dirs=[dwq_shaders(tmp_path, barrier)], race_check=True,
                             cache_dir=tmp_path / "cache")
    with lib.running_ops():
        with pytest.raises(RuntimeError, match="data race on threadgroup memory.*dwq.h:"):
            run_dwq_ops(rng)


# --- bad input ----------------------------------------------------------------------------

def _bad_inputs():
    rng = np.random.default_rng(0)
    codes, scales, biases = random_codes(rng, (8, 64), 4, 32, np.float32)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, 4, 32)
    x = np.ones((3, 64), np.float32)
    dy = np.ones((3, 8), np.float32)
    wide = codes.copy()
    wide[5, 7] = 16
    return [
        ("codes >= 2^bits", lambda: qmetal.QuantizedWeight.from_codes(wide, scales, biases, 4, 32), ValueError,
         r"codes: expected values below 2\^bits = 16, got 16 at flat index 327"),
        ("codes dtype", lambda: qmetal.QuantizedWeight.from_codes(codes.astype(np.uint32), scales, biases, 4, 32),
         TypeError, "codes: expected uint8"),
        ("scales shape", lambda: qmetal.QuantizedWeight.from_codes(codes, scales[:, :1], biases, 4, 32), ValueError,
         r"scales: expected shape \(8, 2\)"),
        ("biases dtype", lambda: qmetal.QuantizedWeight.from_codes(codes, scales, biases.astype(np.float16), 4, 32),
         TypeError, "biases: expected float32"),
        ("bits 0", lambda: qmetal.QuantizedWeight.from_codes(codes, scales, biases, 0, 32), ValueError,
         "bits: expected 1..8"),
        ("bits 9", lambda: qmetal.dwq.init(x, bits=9, group_size=32), ValueError, "bits: expected 1..8"),
        ("group_size 24", lambda: qmetal.dwq.init(x, bits=4, group_size=24), ValueError,
         "group_size: expected a power of two from 2 to 1024"),
        ("group_size 2048", lambda: qmetal.dwq.init(np.ones((2, 2048), np.float32), 4, 2048), ValueError,
         "group_size: expected a power of two from 2 to 1024"),
        ("group not dividing K", lambda: qmetal.dwq.init(np.ones((2, 96), np.float32), 4, 64), ValueError,
         r"w: the last dimension \(96\) must be a positive multiple of group_size \(64\)"),
        ("codes not dividing", lambda: qmetal.QuantizedWeight.from_codes(codes[:, :48], scales, biases, 4, 32),
         ValueError, r"codes: the last dimension \(48\)"),
        ("init int w", lambda: qmetal.dwq.init(np.ones((2, 64), np.int32)), TypeError,
         "w: expected float32, float16 or bfloat16"),
        ("init bool bits", lambda: qmetal.dwq.init(x, bits=True), TypeError, "bits: expected an int"),
        ("dw shape", lambda: qmetal.dwq.grads(w, np.ones((8, 32), np.float32)), ValueError,
         r"dw: expected the weight's shape \(8, 64\), got \(8, 32\)"),
        ("dw dtype", lambda: qmetal.dwq.grads(w, np.ones((8, 64), np.int16)), TypeError,
         "dw: expected float32, float16 or bfloat16"),
        ("grads weight", lambda: qmetal.dwq.grads(codes, np.ones((8, 64), np.float32)), TypeError,
         "qw: expected an affine qmetal.QuantizedWeight"),
        ("dy shape", lambda: qmetal.matmul_vjp(x, w, dy[:, :7]), ValueError,
         r"dy: expected the shape of matmul\(x, w\) \(3, 8\), got \(3, 7\)"),
        ("dy dtype", lambda: qmetal.matmul_vjp(x, w, dy.astype(np.int32)), TypeError,
         "dy: expected float32, float16 or bfloat16"),
        ("x K", lambda: qmetal.matmul_vjp(x[:, :32], w, dy), ValueError, "x: expected last dimension 64"),
        ("x dtype", lambda: qmetal.matmul_vjp(x.astype(np.float64), w, dy), TypeError, "x: expected one of"),
        ("vjp weight", lambda: qmetal.matmul_vjp(x, qmetal.GGMLWeight(np.zeros(8 * 2 * 34, np.uint8), "Q8_0", (8, 64)),
                                                 dy), TypeError, "w: expected an affine qmetal.QuantizedWeight"),
        ("transpose", lambda: qmetal.matmul_vjp(x, w, dy, transpose=1), TypeError, "transpose: expected a bool"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs())))
def test_bad_input_is_refused_by_name(case):
    name, call, error, message = _bad_inputs()[case]
    with pytest.raises(error, match=message):
        call()


def test_the_core_refuses_unbroadcast_x_and_other_dtypes(rng):
    """The C++ op's own checks (Python broadcasts and casts before it)."""
    codes, scales, biases = random_codes(rng, (2, 8, 32), 4, 32, np.float32)
    w = qmetal.QuantizedWeight.from_codes(codes, scales, biases, 4, 32)
    device = qmetal.default_device()
    x = qmetal.asbuffer(np.ones((1, 3, 32), np.float32))
    dy = qmetal.asbuffer(np.ones((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"x: expected its batch dimensions to be the result's \(2,\)"):
        qmetal._core.dwq_matmul_vjp(device, x, w._native, dy, True)
    x16 = qmetal.asbuffer(np.ones((2, 3, 32), np.float16))
    with pytest.raises(TypeError, match=r"x: expected float32 \(the dtype of the weight's scales\), got float16"):
        qmetal._core.dwq_matmul_vjp(device, x16, w._native, dy, True)
    x32 = qmetal.asbuffer(np.ones((2, 3, 32), np.float32))
    with pytest.raises(TypeError, match=r"dy: expected float32 \(the dtype of the matmul's result\), got float16"):
        qmetal._core.dwq_matmul_vjp(device, x32, w._native, qmetal.asbuffer(np.ones((2, 3, 8), np.float16)), True)


# --- the example --------------------------------------------------------------------------

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "dwq.py")


def test_dwq_example_distils_a_layer():
    result = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    losses = [float(line.split()[-1]) for line in result.stdout.splitlines() if line.startswith("step")]
    assert len(losses) == 21
    # SGD with steps below the curvature's inverse: every step lowers the loss.
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.85 * losses[0], losses


def test_bench_dwq_times_and_checks_the_backward():
    result = subprocess.run([sys.executable, "-m", "qmetal", "bench", "--dwq", "--shapes", "64x128", "--rows", "5,40",
                             "--repeat", "1"], capture_output=True, text=True,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("64x128")]
    assert [int(r[1]) for r in rows] == [5, 40]
    for row in rows:
        milliseconds, bandwidth, dw_mib, fused_mib = (float(v) for v in row[4:8])
        assert milliseconds > 0 and bandwidth > 0
        assert dw_mib == pytest.approx(64 * 128 * 4 / 2 ** 20, rel=1e-2) and 0 < fused_mib < dw_mib  # 3 digits
    assert "all results checked against float64" in result.stdout
