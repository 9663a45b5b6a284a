"""MSL kernels through the whole simulator path: the generator, the shim
headers and the executor, via qmetal.sim.compile. Every construct the shim
supports runs in tests/sim/features.metal against a NumPy model, under every
schedule with identical results; tests/sim/broken.metal holds the bugs the
simulator must report, each naming the .metal lines involved."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import qmetal
import qmetal.sim as sim

HERE = os.path.dirname(__file__)
FEATURES = os.path.join(HERE, "sim", "features.metal")
BROKEN = os.path.join(HERE, "sim", "broken.metal")
POISON_INT = -1  # 0xFF bytes

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture(scope="module")
def features(cache):
    return sim.compile(FEATURES, cache_dir=cache)


@pytest.fixture(scope="module")
def broken(cache):
    return sim.compile(BROKEN, cache_dir=cache)


def line_of(path, pattern, after=None):
    """1-based line of the first line matching `pattern` (after the line
    matching `after`, if given)."""
    lines = open(path).read().splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if re.search(after, line)) + 1
    return next(i for i in range(start, len(lines)) if re.search(pattern, lines[i])) + 1


def launch_all_schedules(library, name, buffers, outputs, **kwargs):
    """Runs the kernel under every schedule on fresh copies of `buffers`;
    the arrays at `outputs` must come out byte-identical. Returns them."""
    results = {}
    for schedule in sim.SCHEDULES:
        copies = [b.copy() if isinstance(b, np.ndarray) else b for b in buffers]
        library.launch(name, copies, schedule=schedule, seed=5, **kwargs)
        results[schedule] = [copies[i] for i in outputs]
    for schedule in sim.SCHEDULES[1:]:
        for a, b in zip(results["forward"], results[schedule]):
            assert a.tobytes() == b.tobytes(), f"{name}: {schedule} schedule differs from forward"
    return results["forward"]


# --- collectives ------------------------------------------------------------


def lanes_of(size):
    """(simdgroup, lane) of each thread."""
    tid = np.arange(size)
    return tid // 32, tid % 32


def collective_model_float(x, live):
    size = len(x)
    out = np.full((size, 21), np.nan, np.float32)
    for tid in range(size):
        if not live[tid]:
            continue
        base = tid - tid % 32
        lane = tid % 32
        members = [base + i for i in range(32) if base + i < size and live[base + i]]

        def at(src_lane):
            src = base + src_lane
            return x[src] if 0 <= src_lane < 32 and src in members else np.nan

        quad = [m for m in members if m // 4 == tid // 4]
        vals = x[members]
        first = members[0]
        out[tid] = [
            vals.sum(), np.prod(vals), vals.min(), vals.max(),
            x[[m for m in members if m <= tid]].sum(), x[[m for m in members if m < tid]].sum(),
            np.prod(x[[m for m in members if m <= tid]]),
            at((lane * 7 + 3) % 32), at(lane - 3) if lane >= 3 else x[tid], at(lane + 5) if lane + 5 < 32 else x[tid],
            at(lane ^ 6), at(2), x[first], at((lane + 3) % 32),
            x[quad].sum(), at(lane ^ 1), at((lane & ~3) + 3), x[[m for m in quad if m <= tid]].sum(),
            0.0, 1.0 if tid == first else 0.0, x[quad].max(),
        ]
    return out


def collective_model_int(x, live):
    size = len(x)
    out = np.zeros((size, 8), np.int64)
    for tid in range(size):
        if not live[tid]:
            continue
        base = tid - tid % 32
        members = [base + i for i in range(32) if base + i < size and live[base + i]]
        vals = x[members].astype(np.int64)
        u = vals.astype(np.uint32)
        ballot = sum(1 << (m - base) for m in members if x[m] > 0)
        out[tid] = [vals.sum(), vals.max(), np.bitwise_and.reduce(u), np.bitwise_or.reduce(u),
                    np.bitwise_xor.reduce(u), ballot, 1, int((vals > 6).any())]
    return out.astype(np.uint32).view(np.int32).reshape(size, 8)


@pytest.mark.parametrize("size", [32, 40, 100, 1024])
def test_simdgroup_and_quad_collectives(features, rng, size):
    # Values ±2^k keep every sum and product exact in float32, so any
    # reduction order must give the model's result bit for bit.
    x = rng.choice(np.float32([-2, -1, -0.5, 0.5, 1, 2]), size)
    live = (rng.random(size) < 0.8).astype(np.uint32)
    out = np.full((size, 21), 12345.0, np.float32)
    (result,) = launch_all_schedules(features, "collectives_float", [x, live, out], [2], grid=1, threadgroup=size)
    expected = collective_model_float(x, live)
    dead = live == 0
    assert (result[dead] == 12345.0).all()  # threads that returned wrote nothing
    np.testing.assert_array_equal(result[~dead], expected[~dead])


@pytest.mark.parametrize("size", [32, 72, 1000])
def test_integer_collectives_and_ballot(features, rng, size):
    x = rng.integers(-8, 9, size).astype(np.int32)
    live = (rng.random(size) < 0.85).astype(np.uint32)
    out = np.zeros((size, 8), np.int32)
    (result,) = launch_all_schedules(features, "collectives_int", [x, live, out], [2], grid=1, threadgroup=size)
    expected = collective_model_int(x, live)
    np.testing.assert_array_equal(result[live == 1], expected[live == 1])


# --- barriers and threadgroup memory ------------------------------------------


@pytest.mark.parametrize("size", [1, 33, 100, 257, 1024])
def test_barriers_in_threadgroup_reduction(features, rng, size):
    groups = 3
    x = rng.integers(-50, 50, groups * size).astype(np.float32)
    out = np.zeros(groups, np.float32)
    (result,) = launch_all_schedules(features, "threadgroup_sum", [x, out], [1], grid=groups, threadgroup=size)
    np.testing.assert_array_equal(result, x.reshape(groups, size).sum(axis=1))


def test_threadgroup_arguments_sized_by_host_and_poisoned(features, rng):
    size, groups, skip = 48, 3, 7
    x = rng.integers(-1000, 1000, groups * size).astype(np.int32)
    out = np.zeros(2 * groups * size, np.int32)
    (result,) = launch_all_schedules(features, "threadgroup_arguments", [x, out, np.uint32(skip)], [1], grid=groups,
                                     threadgroup=size, threadgroup_memory=[size * 4, size * 2])
    result = result.reshape(groups, size, 2)
    xs = x.reshape(groups, size)
    for t in range(size):
        nxt = (t + 1) % size
        want = (POISON_INT, POISON_INT) if nxt == skip else (xs[:, nxt], np.int16(-xs[:, nxt]).astype(np.int32))
        np.testing.assert_array_equal(result[:, t, 0], want[0])
        np.testing.assert_array_equal(result[:, t, 1], want[1])


def test_threadgroup_argument_without_memory_is_an_error(features):
    x = np.zeros(48, np.int32)
    with pytest.raises(ValueError, match=r"\[\[threadgroup\(1\)\]\].*threadgroup_memory\[1\]"):
        features.launch("threadgroup_arguments", [x, x.copy(), np.uint32(0)], grid=1, threadgroup=48,
                        threadgroup_memory=[48 * 4])


# --- grids --------------------------------------------------------------------


@pytest.mark.parametrize("threads, threadgroup, uniform", [
    ((37, 5, 3), (8, 4, 2), False),   # dispatchThreads: partial threadgroups on every far edge
    ((24, 8, 4), (8, 4, 2), True),    # dispatchThreadgroups
])
def test_thread_positions_cover_the_grid(features, threads, threadgroup, uniform):
    total = int(np.prod(threads))
    out = np.zeros((total, 12), np.uint32)
    grid_threads = np.array([*threads, 0], np.uint32)
    kwargs = dict(threadgroup=threadgroup)
    if uniform:
        kwargs["grid"] = tuple(t // g for t, g in zip(threads, threadgroup))
    else:
        kwargs["threads"] = threads
    (result,) = launch_all_schedules(features, "positions", [out, grid_threads], [0], **kwargs)
    groups = [-(-t // g) for t, g in zip(threads, threadgroup)]
    for z in range(threads[2]):
        for y in range(threads[1]):
            for x in range(threads[0]):
                row = result[x + threads[0] * (y + threads[1] * z)]
                pos = (x, y, z)
                group = [p // g for p, g in zip(pos, threadgroup)]
                local = [p % g for p, g in zip(pos, threadgroup)]
                size = [min(g, t - gi * g) for g, t, gi in zip(threadgroup, threads, group)]
                index = local[0] + size[0] * (local[1] + size[1] * local[2])
                expected = [1, local[0], local[1], group[0], group[1], size[0], size[1],
                            groups[0] * 1000 + groups[1], index, index, 32,
                            local[2] + size[2] * 100 + group[2] * 10000]
                assert list(row) == expected, (pos, list(row), expected)


# --- function constants ---------------------------------------------------------


@pytest.mark.parametrize("constants, scale, doubled, half_scale, repeat_defined", [
    ({0: True, 1: 3, 2: 0.5, 3: 1.5}, lambda t: (t + 100) * 8 * 0.5, 1, 1.5, 1),
    ({0: False, 1: 0}, lambda t: t, 0, -1, 1),
    ({}, lambda t: t, 0, -1, 0),
])
def test_function_constants(features, constants, scale, doubled, half_scale, repeat_defined):
    n = 40
    out = np.zeros((n, 4), np.float32)
    (result,) = launch_all_schedules(features, "function_constants", [out], [0], grid=1, threadgroup=n,
                                     function_constants=constants)
    t = np.arange(n, dtype=np.float64)
    np.testing.assert_array_equal(result[:, 0], np.float32(scale(t)))
    assert (result[:, 1] == doubled).all() and (result[:, 2] == half_scale).all()
    assert (result[:, 3] == repeat_defined).all()


# --- numbers --------------------------------------------------------------------


def test_half_and_bfloat_round_to_nearest_even(features, rng):
    n = 4096
    # Random values, plus exact ties between neighbouring half and bfloat values.
    # Magnitudes from half's subnormals to its overflow.
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 16, n))).astype(np.float32)
    h = rng.standard_normal(n // 4).astype(np.float16)
    x[: n // 4] = (h.astype(np.float32) + np.spacing(h).astype(np.float32) / 2)
    b = rng.standard_normal(n // 4).astype(ml_dtypes.bfloat16)
    x[n // 4: n // 2] = b.astype(np.float32) + np.float32(2.0 ** -8) * np.abs(b.astype(np.float32))
    y = (rng.standard_normal(n) + 3).astype(np.float32)
    bufs = [x, y, np.zeros(n, np.float16), np.zeros(n, ml_dtypes.bfloat16), np.zeros(3 * n, np.float16),
            np.zeros(2 * n, ml_dtypes.bfloat16), np.zeros(n, np.uint32)]
    as_half, as_bf, half_ops, bf_ops, bits = launch_all_schedules(features, "conversions", bufs, [2, 3, 4, 5, 6],
                                                                  grid=n // 64, threadgroup=64)
    bf16 = ml_dtypes.bfloat16
    same = np.testing.assert_array_equal
    with np.errstate(over="ignore"):
        same(as_half.view(np.uint16), x.astype(np.float16).view(np.uint16))
        a, c = x.astype(np.float16), y.astype(np.float16)
        want = np.stack([a + c, a * c, a / c], axis=1).reshape(-1)
    same(as_bf.view(np.uint16), x.astype(bf16).view(np.uint16))
    same(half_ops.view(np.uint16), want.view(np.uint16))
    a, c = x.astype(bf16), y.astype(bf16)
    same(bf_ops.view(np.uint16), np.stack([a + c, a * c], axis=1).reshape(-1).view(np.uint16))
    same(bits, x.view(np.uint32))


def test_bfloat_does_not_convert_implicitly_from_float(cache):
    source = "#include <metal_stdlib>\nkernel void f(device bfloat* o [[buffer(0)]]) { bfloat b = 1.5f; o[0] = b; }\n"
    with pytest.raises(sim.CompileError, match=r"<source>:2"):
        sim.compile(source, cache_dir=cache)


def test_math_functions(features, rng):
    n = 256
    x = rng.standard_normal((n, 4)).astype(np.float32)
    out = np.zeros((n, 12), np.float32)
    (result,) = launch_all_schedules(features, "math", [x, out], [1], grid=n // 32, threadgroup=32)
    v = x.astype(np.float64)
    a, b, c, d = v.T
    w = np.clip(v * 2, -1, 1)
    popcount = np.array([bin(u).count("1") for u in x[:, 0].view(np.uint32)])
    clz = np.array([32 - int(i + 1).bit_length() for i in range(n)])
    expected = np.stack([
        np.exp(a), np.log(np.abs(b) + 1), np.sqrt(np.abs(c)), 1 / np.sqrt(np.abs(d) + 0.5),
        a * b + c, np.clip(a, -0.5, 0.5), np.where(a > d, c, b), v @ [1, 2, 3, 4],
        np.maximum(np.abs(a), np.minimum(b, c)), np.tanh(d),
        w[:, 0] + w[:, 1] * 10 + w[:, 2] * 100 + w[:, 3] * 1000, popcount + clz * 100,
    ], axis=1)
    # Sums of several float32 terms can cancel, so their model is float32
    # arithmetic in the kernel's order (no fused multiply-adds: the simulator
    # builds with -ffp-contract=off), compared exactly.
    f = x.astype(np.float32)
    dot = ((f[:, 0] * np.float32(1) + f[:, 1] * np.float32(2)) + f[:, 2] * np.float32(3)) + f[:, 3] * np.float32(4)
    w32 = np.clip(f * np.float32(2), np.float32(-1), np.float32(1))
    weighted = ((w32[:, 0] + w32[:, 1] * np.float32(10)) + w32[:, 2] * np.float32(100)) + w32[:, 3] * np.float32(1000)
    np.testing.assert_array_equal(result[:, 7], dot)
    np.testing.assert_array_equal(result[:, 10], weighted)
    # The functions: within a few ulp of the float64 values.
    others = [i for i in range(12) if i not in (7, 10)]
    np.testing.assert_allclose(result[:, others], expected[:, others], rtol=4e-7 * 8, atol=1e-6)


# --- simdgroup matrices ---------------------------------------------------------------


def test_simdgroup_matrix_lane_layout(features):
    m = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    (result,) = launch_all_schedules(features, "matrix_layout", [m, out], [1], grid=1, threadgroup=32)
    # Apple's layout, as MLX's BaseMMAFrag uses it.
    for lane in range(32):
        qid = lane // 4
        row = (qid & 4) + (lane // 2) % 4
        col = (qid & 2) * 2 + (lane % 2) * 2
        assert list(result[2 * lane: 2 * lane + 2]) == [row * 8 + col, row * 8 + col + 1]


@pytest.mark.parametrize("dtype, transpose_b", [("float", False), ("float", True), ("half", False)])
def test_simdgroup_matrix_matmul(features, rng, dtype, transpose_b):
    M, N, K = 16, 24, 40
    np_dtype = np.float32 if dtype == "float" else np.float16
    a = rng.integers(-4, 5, (M, K)).astype(np_dtype)
    b = rng.integers(-4, 5, (N, K) if transpose_b else (K, N)).astype(np_dtype)
    args = np.array([M, N, K, int(transpose_b)], np.uint32)
    c = np.zeros((M, N), np.float32)
    (result,) = launch_all_schedules(features, f"simd_matmul_{dtype}", [args, a, b, c], [3], grid=(N // 8, M // 8),
                                     threadgroup=32)
    bb = b.T if transpose_b else b
    np.testing.assert_array_equal(result, a.astype(np.float64) @ bb.astype(np.float64))


# --- atomics ----------------------------------------------------------------------


def test_atomics_across_parallel_threadgroups(features, rng):
    groups, size = 16, 64
    x = rng.integers(-10, 10, groups * size).astype(np.float32)
    bufs = [np.zeros(2, np.uint32), np.zeros(1, np.float32), np.zeros(groups, np.uint32), x]
    counter, total, per_group = launch_all_schedules(features, "atomics", bufs, [0, 1, 2], grid=groups,
                                                     threadgroup=size)
    assert list(counter) == [groups * size, groups * size - 1]
    assert total[0] == x.sum()
    assert (per_group == size).all()


# --- the API ------------------------------------------------------------------------


def test_compile_is_cached_and_lists_kernels(cache, features):
    again = sim.compile(FEATURES, cache_dir=cache)
    assert again.path == features.path
    assert {"collectives_float", "simd_matmul_float", "simd_matmul_half", "atomics"} <= set(features.kernels)


def test_defines_reach_the_kernel(cache):
    source = ("#include <metal_stdlib>\nkernel void f(device int* o [[buffer(0)]], uint i [[thread_position_in_grid]])"
              " { o[i] = VALUE * int(i); }\n")
    out = np.zeros(8, np.int32)
    sim.compile(source, defines={"VALUE": 7}, cache_dir=cache).launch("f", [out], grid=1, threadgroup=8)
    np.testing.assert_array_equal(out, 7 * np.arange(8))


def test_dispatch_plan_runs_through_a_library(features, rng):
    # The sim backend's path: arg bytes at slot 0 (here the kernel's x),
    # buffers bound at offsets, threadgroup memory, grid and threadgroup.
    size, groups, skip, offset = 40, 2, 3, 64
    x = rng.integers(-1000, 1000, groups * size).astype(np.int32)
    out = qmetal.zeros(offset // 4 + 2 * groups * size, "int32")
    plan = qmetal.DispatchPlan()
    plan.kernel = "threadgroup_arguments"
    plan.args = x.tobytes()
    plan.bind(1, out, "write", offset=offset)
    plan.bind(2, qmetal.asbuffer(np.array([skip], np.uint32)), "read")
    plan.set_threadgroup_memory(0, size * 4)
    plan.set_threadgroup_memory(1, size * 2)
    plan.grid = (groups,)
    plan.threadgroup = (size,)
    plan.validate(qmetal.get_device("sim"))
    features.execute(plan)
    result = out.numpy()
    assert (result[: offset // 4] == 0).all()
    result = result[offset // 4:].reshape(groups, size, 2)
    xs = x.reshape(groups, size)
    nxt = (np.arange(size) + 1) % size
    np.testing.assert_array_equal(result[:, :, 0], np.where(nxt == skip, POISON_INT, xs[:, nxt]))


@pytest.mark.parametrize("call, error, message", [
    (lambda lib: lib.launch("nope", [], grid=1, threadgroup=1), ValueError, r"no kernel named 'nope'.*has: "),
    (lambda lib: lib.launch("math", [np.zeros(4, np.float32)], grid=1, threadgroup=1), ValueError,
     r"kernel 'math' reads \[\[buffer\(1\)\]\], but buffers\[1\] is not bound"),
    (lambda lib: lib.launch("math", [np.zeros(4), np.zeros(4)], grid=1, threadgroup=2000), ValueError,
     r"2000 threads; expected 1 to 1024"),
    (lambda lib: lib.launch("math", [np.zeros(4), np.zeros(4)[::2]], grid=1, threadgroup=1), ValueError,
     r"buffers\[1\]: the array must be C-contiguous"),
    (lambda lib: lib.launch("math", [np.zeros(4), [1.0]], grid=1, threadgroup=1), TypeError, r"buffers\[1\]"),
    (lambda lib: lib.launch("math", [np.zeros(4), np.zeros(4)], grid=1, threadgroup=1, schedule="sideways"),
     ValueError, r"schedule: expected one of forward, reverse, random"),
    (lambda lib: lib.launch("math", [np.zeros(4), np.zeros(4)], threadgroup=1), ValueError, r"either grid"),
    (lambda lib: lib.launch("threadgroup_sum", [np.zeros(4), np.zeros(4)], grid=1, threadgroup=1,
                            threadgroup_memory=[40000]), ValueError, r"threadgroup_memory totals 40000 bytes"),
    (lambda lib: lib.launch("function_constants", [np.zeros(4)], grid=1, threadgroup=1,
                            function_constants={0: "yes"}), TypeError, r"function_constants\[0\]"),
])
def test_bad_launches_raise_before_running(features, call, error, message):
    with pytest.raises(error, match=message):
        call(features)


def test_compile_errors_name_the_metal_line(cache, tmp_path):
    path = tmp_path / "bad.metal"
    path.write_text("#include <metal_stdlib>\n\nkernel void f(device float* o [[buffer(0)]]) {\n  o[0] = undefined_name;\n}\n")
    with pytest.raises(sim.CompileError, match=r"bad.metal:4"):
        sim.compile(path, cache_dir=cache)


# --- broken kernels ---------------------------------------------------------------


def metal_site(pattern, after):
    return rf"broken.metal:{line_of(BROKEN, pattern, after)}\b"


@pytest.mark.parametrize("schedule", sim.SCHEDULES)
@pytest.mark.parametrize("kernel, message", [
    ("barrier_after_return",
     lambda: r"barrier not reached by every thread of threadgroup \(0, 0, 0\): thread \d+ .*waits at "
             rf"threadgroup_barrier at .*{metal_site('threadgroup_barrier', 'barrier_after_return')}.*"
             r"thread 5 \(simdgroup 0, lane 5\) has returned"),
    ("different_collectives",
     lambda: r"divergent simdgroup collectives in threadgroup \(0, 0, 0\): .*"
             rf"simd_(sum|max) at .*({metal_site('simd_sum', 'different_collectives')}|"
             rf"{metal_site('simd_max', 'different_collectives')}).*, but .*simd_(sum|max) at"),
    ("different_call_sites",
     lambda: rf"divergent simdgroup collectives.*simd_sum at .*broken.metal:(\d+).*simd_sum at .*broken.metal:(?!\1)\d+"),
    ("same_line_different_ops",
     lambda: r"divergent simdgroup collectives.*simd_(sum|min) at .*"
             rf"{metal_site('simd_sum', 'same_line_different_ops')}.*simd_(sum|min) at"),
])
def test_broken_kernels_are_reported_with_both_lines(broken, kernel, message, schedule):
    out = np.zeros(64, np.float32)
    with pytest.raises(RuntimeError, match=message()):
        broken.launch(kernel, [out], grid=1, threadgroup=32, schedule=schedule)


def test_missing_barrier_shows_as_schedule_dependence(broken):
    results = []
    for schedule in ("forward", "reverse"):
        out = np.zeros(64, np.float32)
        broken.launch("missing_barrier", [out], grid=1, threadgroup=64, schedule=schedule)
        results.append(out)
    assert not np.array_equal(results[0], results[1], equal_nan=True)


# --- sanitizers -------------------------------------------------------------------


def sanitized_env(tmp_path):
    preload = sim.sanitizer_preload()
    if not preload:
        pytest.skip("the compiler has no AddressSanitizer runtime")
    return dict(os.environ, LD_PRELOAD=preload, QMETAL_SIM_SANITIZE="1", QMETAL_CACHE_DIR=str(tmp_path / "cache"),
                ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=0", UBSAN_OPTIONS="print_stacktrace=1")


@pytest.mark.skipif(sys.platform != "linux", reason="preloads the Linux sanitizer runtime")
def test_out_of_bounds_read_is_caught_under_asan(tmp_path):
    script = (f"import numpy as np, qmetal.sim as sim\n"
              f"lib = sim.compile({BROKEN!r})\n"
              "n = 4096\n"
              "x = np.ones(n, np.float32); out = np.zeros(n, np.float32)\n"
              "lib.launch('out_of_bounds', [x, out, np.uint32(1)], grid=n // 64, threadgroup=64, guard=False)\n")
    result = subprocess.run([sys.executable, "-c", script], env=sanitized_env(tmp_path), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode != 0
    assert "heap-buffer-overflow" in result.stderr, result.stderr[-3000:]
    line = line_of(BROKEN, r"x\[tid \+ n\]")
    assert f"broken.metal:{line}" in result.stderr, result.stderr[-3000:]


@pytest.mark.skipif(sys.platform != "linux", reason="preloads the Linux sanitizer runtime")
def test_feature_kernels_under_asan_and_ubsan(tmp_path):
    # The CI's sanitizer step: every feature test again, each kernel built
    # with -fsanitize=address,undefined and the runtime preloaded.
    # -s: a sanitizer report ends the process, so it must not be captured.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-s", "-p", "no:cacheprovider", __file__,
                             "-k", "not asan"],
                            env=sanitized_env(tmp_path), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="preloads the Linux sanitizer runtime")
def test_production_kernels_under_asan_and_ubsan(tmp_path):
    # qmetal's own affine and GGML kernels, built with sanitizers from the
    # installed shaders and run through the planner's plans on edge shapes.
    script = os.path.join(HERE, "sim", "production_kernels_asan.py")
    result = subprocess.run([sys.executable, script], env=sanitized_env(tmp_path), capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "production kernels clean under the sanitizers" in result.stdout
