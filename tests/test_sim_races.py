"""Race checks: two threads of a threadgroup touching the same byte (one of
them writing) with no barrier between them. Fibers switch only at barriers
and collectives, so no schedule interleaves inside a step; libraries built
with race_check=True report every load and store instead, and the simulator
checks them against the other threads' accesses since the last barrier.

The mutation tests remove each threadgroup_barrier of the tiled kernels in
turn (from a copy of shaders/) and require the public ops, run on that copy,
to fail with a race; the unmodified copy must pass and give right results."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

import qmetal
import qmetal.sim as sim
from qmetal import reference as ref

HERE = os.path.dirname(__file__)
SHADERS = os.path.join(HERE, "..", "shaders")

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler")

SMALL = """
#include <metal_stdlib>
using namespace metal;

kernel void reverse_tile(device float* out [[buffer(0)]], uint lane [[thread_index_in_threadgroup]]) {
  threadgroup float tile[64];
  tile[lane] = float(lane);
#ifndef DROP_BARRIER
  threadgroup_barrier(mem_flags::mem_threadgroup);
#endif
  out[lane] = tile[63 - lane];
}

// Lanes of one simdgroup ordered by a collective: no race.
kernel void within_simdgroup(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float tile[32];
  tile[lane] = float(lane);
  const float total = simd_sum(1.0f);
  out[lane] = tile[31 - lane] + total;
}

kernel void same_device_element(device float* out [[buffer(0)]], uint lane [[thread_index_in_threadgroup]]) {
  out[0] = float(lane);
}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("race-cache")


def test_missing_barrier_is_a_race_with_both_lines(cache):
    ok = sim.compile(SMALL, race_check=True, cache_dir=cache)
    assert ok.race_instrumented
    out = np.zeros(64, np.float32)
    ok.launch("reverse_tile", [out], grid=(2,), threadgroup=(64,))
    np.testing.assert_array_equal(out, np.arange(64)[::-1])
    broken = sim.compile(SMALL, defines={"DROP_BARRIER": 1}, race_check=True, cache_dir=cache)
    with pytest.raises(RuntimeError) as error:
        broken.launch("reverse_tile", [np.zeros(64, np.float32)], grid=(1,), threadgroup=(64,))
    text = str(error.value)
    lines = SMALL.splitlines()
    write_line = next(i for i, line in enumerate(lines) if "tile[lane] = float(lane);" in line) + 1
    read_line = next(i for i, line in enumerate(lines) if "out[lane] = tile[63 - lane];" in line) + 1
    assert "data race on threadgroup memory" in text
    assert re.search(rf"thread \d+ \(simdgroup \d, lane \d+\) (reads|writes) it at <source>:({write_line}|{read_line})",
                     text), text
    assert f":{write_line}" in text and f":{read_line}" in text
    # Without race checks the same launch runs (the schedules hide this bug).
    broken.launch("reverse_tile", [np.zeros(64, np.float32)], grid=(1,), threadgroup=(64,), race_check=False)


def test_collectives_order_a_simdgroup_and_device_races_are_found(cache):
    lib = sim.compile(SMALL, race_check=True, cache_dir=cache)
    out = np.zeros(32, np.float32)
    lib.launch("within_simdgroup", [out], grid=(1,), threadgroup=(32,))
    np.testing.assert_array_equal(out, np.arange(32)[::-1] + 32)
    with pytest.raises(RuntimeError, match="data race on device memory"):
        lib.launch("same_device_element", [np.zeros(1, np.float32)], grid=(1,), threadgroup=(2,))


def test_race_check_needs_an_instrumented_library(cache):
    plain = sim.compile(SMALL, cache_dir=cache)
    with pytest.raises(ValueError, match="not built for race checks"):
        plain.launch("reverse_tile", [np.zeros(64, np.float32)], grid=(1,), threadgroup=(64,), race_check=True)
    with pytest.raises(ValueError, match="cannot be combined with sanitize"):
        sim.compile(SMALL, race_check=True, sanitize=True, cache_dir=cache)


# --- the tiled kernels, and each of their barriers removed ------------------------------

AFFINE_TILES = """
#include "affine.h"
QMETAL_AFFINE_ONE(qmm_t, float, float32, 32, 4)
QMETAL_AFFINE_ONE(qmm_n, float, float32, 32, 4)
QMETAL_AFFINE_ONE(qvm, float, float32, 32, 4)
QMETAL_AFFINE_ONE(gather_qmm_sorted, float, float32, 32, 4)
"""
GGML_TILES = """
#include "ggml.h"
QMETAL_GGML_ONE(mul_mm, block_q8_0, q8_0, float, float32, float, float32)
QMETAL_GGML_ONE(mul_mm_id, block_q8_0, q8_0, float, float32, float, float32)
"""


def run_affine_qmm(rng):
    w = rng.standard_normal((40, 96)).astype(np.float32)
    qw = qmetal.quantize(w, 4, 32)
    x = rng.standard_normal((33, 96)).astype(np.float32)
    y = qmetal.matmul(x, qw, route="qmm")
    expected = ref.affine_matmul(x, qw.packed, qw.scales, qw.biases, bits=4, group_size=32)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    wn = rng.standard_normal((96, 64)).astype(np.float32)  # transpose=False: w [K, N], groups along N
    qn = qmetal.quantize(wn, 4, 32)
    y = qmetal.matmul(x, qn, transpose=False, route="qmm")
    expected = ref.affine_matmul(x, qn.packed, qn.scales, qn.biases, bits=4, group_size=32, transpose=False)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def run_affine_qvm(rng):
    w = rng.standard_normal((200, 64)).astype(np.float32)
    qw = qmetal.quantize(w, 4, 32)
    x = rng.standard_normal((2, 200)).astype(np.float32)
    y = qmetal.matmul(x, qw, transpose=False, route="qvm")
    expected = ref.affine_matmul(x, qw.packed, qw.scales, qw.biases, bits=4, group_size=32, transpose=False)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def run_affine_sorted(rng):
    w = rng.standard_normal((3, 40, 64)).astype(np.float32)
    qw = qmetal.quantize(w, 4, 32)
    x = rng.standard_normal((12, 1, 1, 64)).astype(np.float32)
    experts = rng.integers(0, 3, size=(12, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(x, qw, rhs_indices=experts, route="qmm_sorted")
    dense = ref.affine_dequantize(qw.packed, qw.scales, qw.biases, bits=4, group_size=32).astype(np.float64)
    expected = np.einsum("tk,tsnk->tsn", x[:, 0, 0].astype(np.float64), dense[experts])[:, :, None, :]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def run_ggml_mm(rng):
    w = rng.standard_normal((70, 64)).astype(np.float32)
    blocks = ref.ggml_quantize(w, "Q8_0")
    g = qmetal.GGMLWeight(blocks, "Q8_0", (70, 64))
    x = rng.standard_normal((40, 64)).astype(np.float32)
    y = qmetal.matmul(x, g, route="mm")
    np.testing.assert_allclose(y, ref.ggml_matmul(x, blocks, "Q8_0", (70, 64)), rtol=1e-4, atol=1e-4)
    stacked = ref.ggml_quantize(rng.standard_normal((2 * 70, 64)).astype(np.float32), "Q8_0")
    g2 = qmetal.GGMLWeight(stacked, "Q8_0", (2, 70, 64))
    xs = rng.standard_normal((40, 1, 1, 64)).astype(np.float32)
    ids = rng.integers(0, 2, size=(40, 2)).astype(np.uint32)
    y = qmetal.gather_matmul(xs, g2, rhs_indices=ids, route="mm_id")
    dense = ref.ggml_dequantize(stacked, "Q8_0", (2, 70, 64)).astype(np.float64)
    expected = np.einsum("tk,tsnk->tsn", xs[:, 0, 0].astype(np.float64), dense[ids])[:, :, None, :]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def shader_copy(tmp_path, header=None, barrier=None):
    """shaders/ copied, with the `barrier`-th threadgroup_barrier of `header` removed."""
    target = tmp_path / "shaders"
    shutil.copytree(SHADERS, target)
    if header is not None:
        path = target / header
        text = path.read_text()
        spots = [m.start() for m in re.finditer(r"threadgroup_barrier\(mem_flags::mem_threadgroup\);", text)]
        start = spots[barrier]
        path.write_text(text[:start] + text[start:].replace("threadgroup_barrier(mem_flags::mem_threadgroup);",
                                                            "/* barrier removed */", 1))
    return target


def barriers(header):
    return len(re.findall(r"threadgroup_barrier\(mem_flags::mem_threadgroup\);", open(os.path.join(SHADERS, header)).read()))


# (header, barrier index) -> the kernels' source and the op that runs through that barrier
AFFINE_BARRIERS = [("affine.h", 0, run_affine_qvm), ("affine.h", 1, run_affine_qmm), ("affine.h", 2, run_affine_qmm),
                   ("affine.h", 3, run_affine_sorted), ("affine.h", 4, run_affine_sorted),
                   ("tile.h", 0, run_affine_qmm)]
GGML_BARRIERS = [("ggml.h", 0, run_ggml_mm), ("ggml.h", 1, run_ggml_mm)]


def test_every_barrier_of_the_tiled_kernels_is_covered():
    covered = {}
    for header, index, _ in AFFINE_BARRIERS + GGML_BARRIERS:
        covered.setdefault(header, set()).add(index)
    for header in ("affine.h", "ggml.h", "tile.h"):
        assert covered[header] == set(range(barriers(header))), header


@pytest.mark.parametrize("source, runs", [(AFFINE_TILES, [run_affine_qmm, run_affine_qvm, run_affine_sorted]),
                                          (GGML_TILES, [run_ggml_mm])], ids=["affine", "ggml"])
def test_tiled_kernels_have_no_races(tmp_path, cache, rng, source, runs):
    shaders = shader_copy(tmp_path)
    lib = sim.compile(source, include_dirs=[shaders], race_check=True, cache_dir=cache)
    with lib.running_ops():
        for run in runs:
            run(rng)


@pytest.mark.parametrize("header, barrier, run", AFFINE_BARRIERS + GGML_BARRIERS,
                         ids=[f"{h}-{i}" for h, i, _ in AFFINE_BARRIERS + GGML_BARRIERS])
def test_removing_a_barrier_is_a_race(tmp_path, cache, rng, header, barrier, run):
    shaders = shader_copy(tmp_path, header, barrier)
    source = GGML_TILES if run is run_ggml_mm else AFFINE_TILES
    lib = sim.compile(source, include_dirs=[shaders], race_check=True, cache_dir=cache)
    with lib.running_ops():
        # Reported at a shader line: the kernel's own or the staging store
        # (tile::store4) that the removed barrier ordered.
        with pytest.raises(RuntimeError, match=rf"data race on threadgroup memory.*({re.escape(header)}|tile\.h):\d+"):
            run(rng)
