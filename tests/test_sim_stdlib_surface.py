"""Standard-library functions real MSL uses (MLX's headers), through the
simulator: tests/sim/stdlib_surface.metal calls each of them and the results
are checked against independent NumPy models, under every schedule with
identical results.

- math (asinh acosh atanh sinpi cospi tanpi fdim nextafter fmax3 fmin3
  fmedian3 max3 min3 median3 ldexp frexp; also through metal::precise:: and
  metal::fast::) in float, half and bfloat: the exact value in float64,
  rounded once to the type; nextafter steps in the value's own type
  (np.nextafter in float32 / float16, ml_dtypes' bfloat16 bit patterns);
- simd_ / quad_ shuffle_and_fill_down / _up, with every modulo the MSL spec
  allows (2, 4, 8, 16, 32; quad: 2, 4) and every delta below it, and without
  modulo, for float and int; the model follows the spec's definition
  (MSL spec 6.9.2): lane j of each modulo-wide vector reads data from lane
  j + delta (down) / j - delta (up) of its vector, and past the vector's end
  (before its start) reads filling_data from lane j + delta - modulo
  (j - delta + modulo);
- the __metal_* builtins (math, simd collectives, bitwise reductions of
  floats, simdgroup size and lane) and the predefined macros (METAL_FUNC,
  __HAVE_BFLOAT__, __METAL_*_MATH__)."""

from __future__ import annotations

import os
import shutil

import ml_dtypes
import numpy as np
import pytest

import qmetal.sim as sim

from conftest import BFLOAT16

HERE = os.path.dirname(__file__)
SOURCE = os.path.join(HERE, "sim", "stdlib_surface.metal")
DTYPES = {"float": np.dtype(np.float32), "half": np.dtype(np.float16), "bfloat": BFLOAT16}
# The transcendental functions in float: the C library's float functions
# (glibc's asinhf is off by up to ~1.1 ulp). half and bfloat are computed in
# float and rounded once, so within 1 ulp of the exact value.
FLOAT_ULPS = 2.0

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return sim.compile(SOURCE, cache_dir=tmp_path_factory.mktemp("stdlib-surface-cache"))


def launch_all_schedules(library, name, buffers, outputs, threads, threadgroup=32):
    """Runs the kernel on `threads` threads in threadgroups of `threadgroup`
    under every schedule, on fresh copies of `buffers`; the arrays at
    `outputs` must come out byte-identical. Returns them."""
    results = {}
    for schedule in sim.SCHEDULES:
        copies = [b.copy() for b in buffers]
        library.launch(name, copies, grid=(threads // threadgroup,), threadgroup=(threadgroup,), schedule=schedule,
                       seed=3)
        results[schedule] = [copies[i] for i in outputs]
    for schedule in sim.SCHEDULES[1:]:
        for a, b in zip(results["forward"], results[schedule]):
            assert a.tobytes() == b.tobytes(), f"{name}: {schedule} schedule differs from forward"
    return results["forward"]


# --- models -----------------------------------------------------------------------


def round_to(values, dtype):
    """float64 -> dtype, rounded once to nearest even. (ml_dtypes rounds
    float64 to bfloat16 through float32, twice; rounding to odd in float32
    first keeps the second rounding exact.)"""
    v = np.asarray(values, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype != BFLOAT16:
            return v.astype(dtype)
        f = v.astype(np.float32)
        inexact = np.isfinite(v) & (f.astype(np.float64) != v)
        bits = f.view(np.uint32).copy()
        away = inexact & (np.abs(f.astype(np.float64)) > np.abs(v))
        bits[away] -= 1  # towards zero
        bits[inexact] |= 1
    return bits.view(np.float32).astype(BFLOAT16)


def ulps(actual, exact, dtype):
    """|actual - exact| in units of the type's last place at `exact`."""
    info = ml_dtypes.finfo(dtype)
    exact = np.asarray(exact, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.abs(exact)))
    e = np.clip(np.where(np.isfinite(e), e, info.minexp), info.minexp, info.maxexp - 1)
    return np.abs(actual.astype(np.float64) - exact) / 2.0 ** (e - info.nmant)


def assert_close(actual, exact, dtype, max_ulps, what):
    """NaN where the exact value is NaN; the correctly rounded value where
    that is infinite (overflow, poles); elsewhere within max_ulps."""
    exact = np.asarray(exact, np.float64)
    nan = np.isnan(exact)
    np.testing.assert_array_equal(np.isnan(actual.astype(np.float64)), nan, err_msg=f"{what}: NaN")
    rounded = round_to(exact, dtype).astype(np.float64)
    inf = ~nan & np.isinf(rounded)
    np.testing.assert_array_equal(actual[inf].astype(np.float64), rounded[inf], err_msg=f"{what}: infinities")
    rest = ~nan & ~inf
    err = ulps(actual[rest], exact[rest], dtype)
    worst = int(np.argmax(err)) if err.size else 0
    assert err.size == 0 or err[worst] <= max_ulps, (
        f"{what}: {err[worst]:.3g} ulp at x={exact[rest][worst]!r}: got {actual[rest][worst]!r}")


def pi_reduced(x):
    """x mod 2 (exact) folded into [-1/2, 1/2], with sin(pi x) = sign * sin(pi r)."""
    r = np.fmod(x, 2.0)
    r = np.where(r > 1, r - 2, np.where(r < -1, r + 2, r))
    return np.where(r > 0.5, 1 - r, np.where(r < -0.5, -1 - r, r)), r


def sinpi(x):
    return np.sin(np.pi * pi_reduced(x)[0])


def cospi(x):
    r = pi_reduced(x)[1]  # in [-1, 1]; cos(pi r) = sin(pi (1/2 - |r|))
    return np.sin(np.pi * (0.5 - np.abs(r)))


def tanpi(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return sinpi(x) / cospi(x)


def unary_models(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"asinh": np.arcsinh(x), "acosh": np.arccosh(x), "atanh": np.arctanh(x),
                "sinpi": sinpi(x), "cospi": cospi(x), "tanpi": tanpi(x)}


def fdim(x, y):
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(np.isnan(x) | np.isnan(y), np.nan, np.where(x > y, x - y, 0.0))


def nextafter_bits(x, y):
    """Bit patterns of nextafter in x's own type (NaN as -1); y where x == y,
    as in C99 and OpenCL (NumPy's float16 nextafter returns x there)."""
    with np.errstate(over="ignore"):
        r = np.where(x == y, y, np.nextafter(x, y)).astype(x.dtype)
    bits = r.view(np.uint16 if r.dtype.itemsize == 2 else np.uint32).astype(np.int64)
    return np.where(np.isnan(r.astype(np.float64)), -1, bits)


def same_bits_or_nan(actual, expected_bits, what):
    bits = actual.view(np.uint16 if actual.dtype.itemsize == 2 else np.uint32).astype(np.int64)
    bits = np.where(np.isnan(actual.astype(np.float64)), -1, bits)
    bad = np.flatnonzero(bits != expected_bits)
    assert bad.size == 0, f"{what}: bits {bits[bad[:5]]} where {expected_bits[bad[:5]]} expected (rows {bad[:5]})"


def median(x, y, z):
    return np.median(np.stack([x, y, z]), axis=0)


# --- inputs -----------------------------------------------------------------------


def special_values(dtype):
    info = ml_dtypes.finfo(dtype)
    tiny = float(info.smallest_subnormal)
    return [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 2.0, 3.0, -7.0, 0.25, -0.75, 1025.5, 2048.0,
            np.inf, -np.inf, np.nan, float(info.max), -float(info.max), tiny, -tiny, float(info.tiny),
            2.0**23 + 1, 2.0**24, 1e10, 3e38, 0.999, -0.999, 1.001]


def float_inputs(rng, dtype, n=256):
    """Specials, then Gaussians, values over decades, multiples of 1/4 (exact
    cases of the pi-scaled functions) and values near +-1."""
    specials = special_values(dtype)
    k = (n - len(specials)) // 4
    sign = rng.choice([-1.0, 1.0], size=k)
    parts = [specials, rng.standard_normal(k) * 2, sign * 10.0 ** rng.uniform(-4, 4, size=k),
             rng.integers(-64, 64, size=k) / 4, rng.choice([-1.0, 1.0], size=n - len(specials) - 3 * k)
             * (1 + rng.uniform(-0.02, 0.02, size=n - len(specials) - 3 * k))]
    with np.errstate(over="ignore"):
        return np.concatenate(parts).astype(dtype)


# --- math ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", list(DTYPES))
def test_inverse_hyperbolic_and_pi_scaled_trig(lib, rng, type_name):
    dtype = DTYPES[type_name]
    x = float_inputs(rng, dtype)
    out = np.zeros((len(x), 10), dtype)
    (result,) = launch_all_schedules(lib, f"unary_math_{type_name}", [x, out], [1], threads=len(x))
    models = unary_models(x.astype(np.float64))
    columns = ["asinh", "acosh", "atanh", "sinpi", "cospi", "tanpi", "sinpi", "cospi", "tanpi", "asinh"]
    for i, name in enumerate(columns):
        assert_close(result[:, i], models[name], dtype, FLOAT_ULPS if dtype == np.float32 else 1.0,
                     f"{type_name} {name} (column {i})")
    # Integers give exact zeros and half-integers exact +-1 (and tanpi's poles).
    v = np.where(np.isfinite(x), x, 0.25).astype(np.float64)
    whole = v == np.round(v)
    assert np.all(result[whole, 3] == 0) and np.all(np.abs(result[whole, 4]) == 1)
    assert np.all(result[whole, 5] == 0)
    half_odd = v - np.floor(v) == 0.5
    assert np.all(np.abs(result[half_odd, 3]) == 1) and np.all(result[half_odd, 4] == 0)
    assert np.all(np.isinf(result[half_odd, 5].astype(np.float64)))


def ternary_inputs(rng, dtype, n=256):
    """x, y, z with the edge pairs of nextafter first (zeros of both signs,
    subnormals, the largest finite value, infinities, NaN), then random
    values with ties, infinities and NaNs mixed in."""
    info = ml_dtypes.finfo(dtype)
    tiny, big, normal = float(info.smallest_subnormal), float(info.max), float(info.tiny)
    inf, nan = np.inf, np.nan
    pairs = [(0, 1), (0, -1), (-0.0, 1), (-0.0, -1), (0, -0.0), (-0.0, 0), (1, 1), (big, inf), (inf, 0),
             (-inf, 0), (-big, -inf), (tiny, 0), (-tiny, 0), (tiny, -1), (-tiny, 1), (1, 2), (1, 0), (-1, -2),
             (-1, 0), (nan, 1), (1, nan), (normal, 0), (normal, 1), (-normal, 0), (2, 1), (inf, inf),
             (-inf, inf), (big, 0), (0.5, -inf), (-2, inf), (3, -3), (tiny, tiny)]
    px, py = (np.array(p, np.float64) for p in zip(*pairs))
    m = n - len(pairs)
    x = rng.standard_normal(m) * 10.0 ** rng.uniform(-3, 3, size=m)
    y = np.where(rng.random(m) < 0.15, x, rng.standard_normal(m) * 10.0 ** rng.uniform(-3, 3, size=m))
    z = np.where(rng.random(m) < 0.15, y, rng.standard_normal(m) * 4)
    for a in (x, y, z):
        a[rng.random(m) < 0.04] = np.nan
        a[rng.random(m) < 0.04] = rng.choice([np.inf, -np.inf])
    pz = rng.standard_normal(len(pairs))
    with np.errstate(over="ignore"):
        return tuple(np.concatenate(p).astype(dtype) for p in ((px, x), (py, y), (pz, z)))


@pytest.mark.parametrize("type_name", list(DTYPES))
def test_fdim_nextafter_and_three_way(lib, rng, type_name):
    dtype = DTYPES[type_name]
    x, y, z = ternary_inputs(rng, dtype)
    out = np.zeros((len(x), 12), dtype)
    (result,) = launch_all_schedules(lib, f"ternary_math_{type_name}", [x, y, z, out], [3], threads=len(x))
    a, b, c = (v.astype(np.float64) for v in (x, y, z))

    def exact(column, expected, rows=slice(None)):
        np.testing.assert_array_equal(result[rows, column].astype(np.float64), round_to(expected, dtype)
                                      .astype(np.float64)[rows], err_msg=f"{type_name} column {column}")

    # fdim is correctly rounded; fmax3 / fmin3 (precise) treat NaN as missing.
    exact(0, fdim(a, b))
    exact(8, fdim(b, a))
    exact(2, np.fmax(np.fmax(a, b), c))
    exact(3, np.fmin(np.fmin(a, b), c))
    # The medians and max3 / min3 of the default (fast) variants: NaN-free rows.
    ordered = ~(np.isnan(a) | np.isnan(b) | np.isnan(c))
    for column, expected in [(4, median(a, b, c)), (10, median(a, b, c)), (7, median(a, b, c)),
                             (5, np.maximum(np.maximum(a, b), c)), (6, np.minimum(np.minimum(a, b), c))]:
        exact(column, expected, ordered)
    # nextafter: the neighbour in x's own type, bit for bit.
    same_bits_or_nan(result[:, 1], nextafter_bits(x, y), f"{type_name} nextafter(x, y)")
    same_bits_or_nan(result[:, 9], nextafter_bits(y, x), f"{type_name} fast::nextafter(y, x)")
    same_bits_or_nan(result[:, 11], nextafter_bits(x, z), f"{type_name} precise::nextafter(x, z)")


@pytest.mark.parametrize("type_name", list(DTYPES))
def test_ldexp_and_frexp(lib, rng, type_name):
    dtype = DTYPES[type_name]
    info = ml_dtypes.finfo(dtype)
    specials = [0.0, -0.0, 1.0, -1.0, 0.75, float(info.smallest_subnormal), -float(info.smallest_subnormal),
                float(info.tiny), float(info.max), -float(info.max), np.inf, -np.inf, np.nan, 3 * float(info.tiny)]
    n = 256
    m = n - len(specials)
    x = np.concatenate([specials, rng.choice([-1.0, 1.0], size=m) * 2.0 ** rng.uniform(info.minexp - info.nmant,
                                                                                       info.maxexp, size=m)])
    x = x.astype(dtype)
    # Exponents mostly small, some far enough to overflow or round into
    # (or below) the subnormals.
    k = rng.integers(-40, 41, size=n)
    extremes = rng.choice([-300, -160, -150, -149, -140, -30, -25, -24, 16, 100, 130, 300], size=n)
    k = np.where(rng.random(n) < 0.2, extremes, k).astype(np.int32)
    out = np.zeros((n, 4), dtype)
    exps = np.zeros((n, 2), np.int32)
    result, exponents = launch_all_schedules(lib, f"exponents_{type_name}", [x, k, out, exps], [2, 3], threads=n)
    v = x.astype(np.float64)
    for column, scale in [(0, k), (1, -k)]:
        expected = round_to(np.ldexp(v, scale), dtype).astype(np.float64)
        np.testing.assert_array_equal(result[:, column].astype(np.float64), expected,
                                      err_msg=f"{type_name} ldexp (column {column})")
    mantissa, exponent = np.frexp(v)
    finite = np.isfinite(v)  # the exponent of inf and NaN is unspecified
    for column in (2, 3):
        np.testing.assert_array_equal(result[:, column].astype(np.float64), mantissa, err_msg=f"{type_name} frexp")
        np.testing.assert_array_equal(exponents[finite, column - 2], exponent[finite],
                                      err_msg=f"{type_name} frexp exponent")


def test_vector_forms_are_component_wise(lib, rng):
    n = 64
    x, y, z = (np.concatenate([rng.standard_normal(n * 4 - 16) * 3, rng.integers(-8, 8, size=16) / 2])
               .astype(np.float32) for _ in range(3))
    y[:8] = x[:8]  # nextafter(x, x) and fdim(x, x)
    out = np.zeros((n, 6, 4), np.float32)
    (result,) = launch_all_schedules(lib, "vector_math", [x, y, z, out], [3], threads=n)
    result = result.reshape(n, 6, 4).transpose(1, 0, 2).reshape(6, -1)
    a, b, c = (v.astype(np.float64) for v in (x, y, z))
    assert_close(result[0], np.arcsinh(a), np.float32, FLOAT_ULPS, "asinh(float4)")
    assert_close(result[1], sinpi(a), np.float32, FLOAT_ULPS, "sinpi(float4)")
    np.testing.assert_array_equal(result[2], round_to(fdim(a, b), np.float32))
    same_bits_or_nan(result[3], nextafter_bits(x, y), "nextafter(float4)")
    np.testing.assert_array_equal(result[4], median(a, b, c).astype(np.float32))
    np.testing.assert_array_equal(result[5], np.maximum(np.maximum(x, y), z))


@pytest.mark.parametrize("dtype", [np.int32, np.uint32])
def test_integer_max3_min3_median3(lib, rng, dtype):
    n = 128
    info = np.iinfo(dtype)
    x, y, z = (rng.integers(info.min, info.max, size=n, endpoint=True).astype(dtype) for _ in range(3))
    few = rng.random(n) < 0.5  # ties among a few small values
    for a in (x, y, z):
        a[few] = rng.integers(0, 3, size=int(few.sum())).astype(dtype)
    out = np.zeros((n, 4), dtype)
    name = "integer_median_int" if dtype == np.int32 else "integer_median_uint"
    (result,) = launch_all_schedules(lib, name, [x, y, z, out], [3], threads=n)
    stack = np.stack([x, y, z]).astype(np.int64)
    expected = np.stack([stack.max(0), stack.min(0), np.sort(stack, 0)[1], np.sort(stack, 0)[1]], axis=1)
    np.testing.assert_array_equal(result.astype(np.int64), expected)


# --- shuffle_and_fill ------------------------------------------------------------------


def shuffle_and_fill_model(data, fill, delta, modulo, down):
    """MSL spec 6.9.2: the group splits into vectors of `modulo` lanes; lane
    j of a vector takes data from lane j +- delta of the same vector, and
    where that falls outside the vector, filling_data wrapped around it."""
    lane = np.arange(len(data))
    base = lane - lane % modulo
    source = lane % modulo + (delta if down else -delta)
    inside = (source >= 0) & (source < modulo)
    return np.where(inside, data[base + np.clip(source, 0, modulo - 1)], fill[base + source % modulo])


def shuffle_and_fill_sequence(data, fill):
    """The results in the kernel's order, one column per call."""
    columns = []
    for functions, modulos in [("simd", [2, 4, 8, 16, 32]), ("simd default", [32]), ("quad", [2, 4]),
                               ("quad default", [4])]:
        for modulo in modulos:
            for delta in range(modulo):
                columns.append(shuffle_and_fill_model(data, fill, delta, modulo, down=True))
                columns.append(shuffle_and_fill_model(data, fill, delta, modulo, down=False))
    return np.stack(columns, axis=1)


def test_shuffle_and_fill_model_matches_the_spec_figures():
    """The spec's examples: modulo 8, delta 2 (simd), and modulo 2, delta 1
    (quad), data lanes a, b, c, ... and fill lanes fa, fb, ..."""
    data = np.array([chr(ord("a") + i) for i in range(26)] + list("012345"))
    fill = np.array(["f" + d for d in data])
    down = shuffle_and_fill_model(data, fill, 2, 8, down=True)
    assert list(down[:16]) == list("cdefgh") + ["fa", "fb"] + list("klmnop") + ["fi", "fj"]
    up = shuffle_and_fill_model(data, fill, 2, 8, down=False)
    assert list(up[:16]) == ["fg", "fh"] + list("abcdef") + ["fo", "fp"] + list("ijklmn")
    assert list(shuffle_and_fill_model(data, fill, 1, 2, down=True)[:4]) == ["b", "fa", "d", "fc"]
    assert list(shuffle_and_fill_model(data, fill, 1, 2, down=False)[:4]) == ["fb", "a", "fd", "c"]
    assert list(shuffle_and_fill_model(data, fill, 2, 4, down=True)[:4]) == ["c", "d", "fa", "fb"]


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_shuffle_and_fill(lib, rng, dtype):
    n = 64  # two simdgroups
    if dtype == np.float32:
        data = rng.standard_normal(n).astype(dtype)
        fill = (rng.standard_normal(n) + 100).astype(dtype)
    else:
        data = rng.integers(-(2**31), 2**31, size=n).astype(dtype)
        fill = rng.integers(-(2**31), 2**31, size=n).astype(dtype)
    expected = shuffle_and_fill_sequence(data, fill)
    out = np.zeros((n, expected.shape[1]), dtype)
    name = "shuffle_and_fill_float" if dtype == np.float32 else "shuffle_and_fill_int"
    (result,) = launch_all_schedules(lib, name, [data, fill, out], [2], threads=n, threadgroup=n)
    bad = np.argwhere(result != expected)
    assert bad.size == 0, f"{len(bad)} results differ from the spec's definition; first (lane, call): {bad[:5]}"


# --- __metal_* builtins and predefined macros ---------------------------------------


def test_metal_builtins(lib, rng):
    n = 32
    x = np.concatenate([[1.0, -2.0, 0.5, 2.5, 0.0, 1.25], rng.standard_normal(n - 6) * 2]).astype(np.float32)
    y = np.where(rng.random(n) < 0.2, x, rng.standard_normal(n)).astype(np.float32)
    z = rng.standard_normal(n).astype(np.float32)
    s = rng.integers(-100, 100, size=n).astype(np.float32)
    p = rng.choice([1.0, -1.0, 2.0, 0.5], size=n).astype(np.float32)
    k = rng.integers(-20, 20, size=n).astype(np.int32)
    math_out, simd_out = np.zeros((n, 14), np.float32), np.zeros((n, 20), np.float32)
    bits_out = np.zeros((n, 9), np.uint32)
    math_r, simd_r, bits_r = launch_all_schedules(lib, "builtins", [x, y, z, s, p, k, math_out, simd_out, bits_out],
                                                  [6, 7, 8], threads=n)
    a, b, c = (v.astype(np.float64) for v in (x, y, z))
    f32 = np.float32
    models = unary_models(a)
    for column, name in enumerate(["asinh", "acosh", "atanh", "sinpi", "cospi", "tanpi"]):
        assert_close(math_r[:, column], models[name], f32, FLOAT_ULPS, f"__metal_{name}")
    np.testing.assert_array_equal(math_r[:, 6], round_to(fdim(a, b), f32))
    same_bits_or_nan(math_r[:, 7], nextafter_bits(x, y), "__metal_nextafter")
    np.testing.assert_array_equal(math_r[:, 8], np.fmax(np.fmax(x, y), z))
    np.testing.assert_array_equal(math_r[:, 9], np.fmin(np.fmin(x, y), z))
    np.testing.assert_array_equal(math_r[:, 10], median(a, b, c).astype(f32))
    np.testing.assert_array_equal(math_r[:, 11], round_to(np.ldexp(a, k), f32))
    mantissa, exponent = np.frexp(a)
    np.testing.assert_array_equal(math_r[:, 12], mantissa)
    np.testing.assert_array_equal(math_r[:, 13], exponent)

    lane = np.arange(n)
    cumprod = np.cumprod(p)
    expected = np.stack([
        np.full(n, s.sum()), np.full(n, x.max()), np.full(n, x.min()), np.cumsum(s), np.cumsum(s) - s,
        np.full(n, np.prod(p)), cumprod, np.concatenate([[1.0], cumprod[:-1]]),
        np.full(n, x[7]), x[(lane * 5 + 1) % 32], np.where(lane + 3 < 32, x[np.minimum(lane + 3, 31)], x),
        np.where(lane >= 5, x[lane - 5], x), x[(lane + 7) % 32], x[(lane - 9) % 32], x[lane ^ 13],
        shuffle_and_fill_model(x, z, 5, 32, down=True), shuffle_and_fill_model(x, z, 3, 8, down=False),
        np.full(n, 32.0), lane, np.zeros(n),
    ], axis=1)
    np.testing.assert_array_equal(simd_r, expected.astype(np.float32))

    xb, hb, zb = x.view(np.uint32), y.astype(BFLOAT16).view(np.uint16), z.view(np.uint32)
    expected_bits = [np.bitwise_and.reduce(xb), np.bitwise_or.reduce(xb), np.bitwise_xor.reduce(xb),
                     np.bitwise_and.reduce(hb), np.bitwise_or.reduce(hb), np.bitwise_xor.reduce(hb),
                     np.bitwise_and.reduce(zb), np.bitwise_or.reduce(zb), np.bitwise_xor.reduce(zb)]
    np.testing.assert_array_equal(bits_r, np.tile(np.array(expected_bits, np.uint32), (n, 1)))


def test_predefined_macros(lib):
    out = np.zeros(6, np.int32)
    (result,) = launch_all_schedules(lib, "predefined", [out], [0], threads=32)
    # __HAVE_BFLOAT__ (MSL 3.1), fast = true, precise = false, maybe-fast =
    # fast, a METAL_FUNC helper, __METAL_VERSION__.
    np.testing.assert_array_equal(result, [1, 1, 0, 1, 42, 310])
