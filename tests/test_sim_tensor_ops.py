"""Metal 4 tensor operations (mpp::tensor_ops::matmul2d) in the simulator:
kernels written from the documented API (tests/sim/tensor_ops.metal) against
float64 NumPy on shapes that are not tile multiples, the M5 numerics model
the shim implements, the faults it reports, and the misuse its strict
front-end rejects (../shared/design/METAL4_TENSOR_OPS.md has the facts)."""

from __future__ import annotations

import glob
import os
import re
import shutil

import ml_dtypes
import numpy as np
import pytest

import qmetal.sim as sim
from qmetal.sim import _generator

HERE = os.path.dirname(__file__)
SOURCE = os.path.join(HERE, "sim", "tensor_ops.metal")
SHADER_DIR = os.path.join(HERE, "..", "shaders")
TENSOR_SHADERS = sorted(glob.glob(os.path.join(SHADER_DIR, "metal4", "*.metal")))
TILE_M, TILE_N, STEP = 64, 32, 32  # the kernels' tile (tensor_ops.metal)
THREADS = 128                      # execution_simdgroups<4>
BF16 = np.dtype(ml_dtypes.bfloat16)
FP32_ROUNDOFF = 2.0**-24
RELAXED_INPUT_ROUNDOFF = 2.0**-10  # float operands truncated to 10 mantissa bits
# Ragged: neither M nor N nor K is a multiple of its tile.
SHAPES = [(70, 45, 37), (9, 33, 100), (130, 8, 16)]

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tensor-ops-cache")


@pytest.fixture(scope="module")
def lib(cache):
    return sim.compile(SOURCE, cache_dir=cache, std="metal4.0")


def dims(M, N, K):
    return np.array([M, N, K, 0], np.uint32)


def grid(M, N):
    return (-(-N // TILE_N), -(-M // TILE_M))


def bound(A, B, K, input_roundoff=0.0):
    """Error bound of C = A B computed in fp32: each of the K terms is rounded
    at most ~K times relative to fp32 (the chunk tree and the chain are a
    recursive summation, gamma_K ~ K u), plus the inputs' own rounding
    (relaxed float operands: 2 roundings per product). Elementwise, scaled by
    |A| |B| so that cancellation does not make it vacuous."""
    scale = np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))
    return (2 * K * FP32_ROUNDOFF + 2 * input_roundoff) * scale + 1e-30


def run_all_schedules(lib, name, buffers, out_index, **kwargs):
    """The kernel under every schedule; results must be bit-identical."""
    results = []
    for schedule in sim.SCHEDULES:
        copies = [b.copy() for b in buffers]
        lib.launch(name, copies, schedule=schedule, seed=3, **kwargs)
        results.append(copies[out_index])
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()
    return results[0]


# --- results against float64 ---------------------------------------------------


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("kernel,dtype,tl,tr,relaxed", [
    ("mm_device_half", np.float16, False, False, False),
    ("mm_device_half_tl_tr", np.float16, True, True, False),
    ("mm_device_half_tr", np.float16, False, True, False),
    ("mm_device_bfloat_tl", BF16, True, False, False),
    ("mm_device_float", np.float32, False, False, False),
    ("mm_device_float_relaxed", np.float32, False, False, True),
])
def test_device_tensors_extent_order_and_transposes(lib, rng, M, N, K, kernel, dtype, tl, tr, relaxed):
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    A_stored = np.ascontiguousarray(A.T) if tl else A
    B_stored = np.ascontiguousarray(B.T) if tr else B
    C = np.full((M, N), np.nan, np.float32)  # every element must be written
    C = run_all_schedules(lib, kernel, [dims(M, N, K), A_stored, B_stored, C], 3, grid=grid(M, N),
                          threadgroup=(THREADS,))
    expected = A.astype(np.float64) @ B.astype(np.float64)
    error = np.abs(C - expected)
    assert np.all(error <= bound(A, B, K, RELAXED_INPUT_ROUNDOFF if relaxed else 0.0)), error.max()


def test_int8_to_int32_is_exact(lib, rng):
    M, N, K = 70, 45, 200
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    C = np.full((M, N), -7, np.int32)
    lib.launch("mm_int8_int32", [dims(M, N, K), A, B, C], grid=grid(M, N), threadgroup=(THREADS,))
    np.testing.assert_array_equal(C, A.astype(np.int64) @ B.astype(np.int64))


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_static_k_steps_accumulate_into_a_cooperative_destination(lib, rng, M, N, K):
    A = rng.standard_normal((M, K)).astype(np.float16)
    W = rng.standard_normal((N, K)).astype(np.float16)  # weights-like [N, K]: transpose_right
    C = np.full((M, N), np.nan, np.float32)
    C = run_all_schedules(lib, "mm_staged", [dims(M, N, K), A, W, C], 3, grid=grid(M, N), threadgroup=(THREADS,))
    expected = A.astype(np.float64) @ W.T.astype(np.float64)
    assert np.all(np.abs(C - expected) <= bound(A, W.T, K))


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_clamped_dynamic_k_views_and_index_epilogue(lib, rng, M, N, K):
    A = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((N, K)).astype(np.float16)
    bias = rng.standard_normal(N).astype(np.float32)
    C = np.full((M, N), np.nan, np.float32)
    C = run_all_schedules(lib, "mm_clamped", [dims(M, N, K), A, W, C, bias], 3, grid=grid(M, N),
                          threadgroup=(THREADS,))
    expected = 0.5 * (A.astype(np.float64) @ W.T.astype(np.float64)) + bias
    assert np.all(np.abs(C - expected) <= 0.5 * bound(A, W.T, K, RELAXED_INPUT_ROUNDOFF) + 1e-6 * np.abs(bias))


@pytest.mark.parametrize("M,N,K", [(40, 50, 40), (16, 32, 16)])
def test_cooperative_inputs_one_simdgroup_each(lib, rng, M, N, K):
    A = rng.standard_normal((M, K)).astype(np.float16)
    B = rng.standard_normal((K, N)).astype(np.float16)
    C0 = rng.standard_normal((M, N)).astype(np.float32)
    rows_per_group = 2 * 16  # 2 simdgroups of 16 rows
    C = run_all_schedules(lib, "mm_cooperative_inputs", [dims(M, N, K), A, B, C0], 3,
                          grid=(-(-N // 32), -(-M // rows_per_group)), threadgroup=(64,))
    expected = C0 + A.astype(np.float64) @ B.astype(np.float64)
    assert np.all(np.abs(C - expected) <= bound(A, B, K) + 2 * FP32_ROUNDOFF * np.abs(expected))


def test_destination_layout_covers_the_tile_once_with_m5_fragments(lib):
    """Every element of the 64 x 32 tile belongs to exactly one thread, and
    within a 16 x 16 fragment lane l holds the positions M5 uses (§4.7)."""
    owner = np.full((TILE_M, TILE_N), -1, np.float32)
    lib.launch("layout_probe", [owner], grid=(1,), threadgroup=(THREADS,))
    assert np.all(owner >= 0)
    counts = np.bincount(owner.astype(int).ravel(), minlength=THREADS)
    assert np.all(counts == TILE_M * TILE_N // THREADS)
    frag = owner[:16, :16].astype(int) % 32  # fragment 0 belongs to simdgroup 0
    for lane in range(32):
        rows = {4 * (lane >> 4) + ((lane >> 1) & 3) + 8 * (e >> 2) for e in range(8)}
        cols = {8 * ((lane >> 3) & 1) + 4 * (lane & 1) + (e & 3) for e in range(8)}
        assert {(r, c) for r in rows for c in cols} == set(zip(*np.nonzero(frag == lane)))


def m5_chunk_tree(A, B):
    """§4.5's model of one half/bfloat product, in NumPy float32: per 16-wide
    K chunk, pairs of exact products rounded once, then p_j + p_{j+4}, then a
    chain through the fp32 accumulator."""
    M, K = A.shape
    Kp = -(-K // 16) * 16
    a = np.zeros((M, Kp), np.float64)
    b = np.zeros((Kp, B.shape[1]), np.float64)
    a[:, :K], b[:K] = A.astype(np.float64), B.astype(np.float64)
    acc = np.zeros((M, B.shape[1]), np.float32)
    for k0 in range(0, Kp, 16):
        p = [(a[:, k0 + 2 * i, None] * b[k0 + 2 * i] + a[:, k0 + 2 * i + 1, None] * b[k0 + 2 * i + 1]).astype(np.float32)
             for i in range(8)]
        for j in range(4):
            acc = acc + (p[j] + p[j + 4])
    return acc


def test_half_operands_follow_the_m5_chunk_tree_bit_for_bit(lib, rng):
    M, N, K = 70, 45, 37
    A = rng.standard_normal((M, K)).astype(np.float16)
    B = rng.standard_normal((K, N)).astype(np.float16)
    C = np.zeros((M, N), np.float32)
    lib.launch("mm_device_half", [dims(M, N, K), A, B, C], grid=grid(M, N), threadgroup=(THREADS,))
    np.testing.assert_array_equal(C, m5_chunk_tree(A, B))


def test_relaxed_float_truncates_operands(lib):
    """1 + 2^-11 loses its low bit under relaxed_precision (truncation to 10
    mantissa bits), not under full fp32."""
    M, N, K = 1, 1, 16
    A = np.zeros((M, K), np.float32)
    A[0, 0] = 1 + 2.0**-11
    B = np.zeros((K, N), np.float32)
    B[0, 0] = 1.0
    for kernel, expected in (("mm_device_float_relaxed", 1.0), ("mm_device_float", 1 + 2.0**-11)):
        C = np.zeros((M, N), np.float32)
        lib.launch(kernel, [dims(M, N, K), A, B, C], grid=(1, 1), threadgroup=(THREADS,))
        assert C[0, 0] == np.float32(expected), kernel


# --- faults --------------------------------------------------------------------


def line_of(pattern):
    lines = open(SOURCE).read().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if pattern in line)


def launch_fault(lib, kernel, M=TILE_M, K=STEP, threads=THREADS):
    A = np.ones((TILE_M, STEP), np.float16)
    B = np.ones((TILE_N, STEP), np.float16)
    C = np.zeros((TILE_M, TILE_N), np.float32)
    with pytest.raises(RuntimeError) as error:
        lib.launch(kernel, [dims(M, TILE_N, K), A, B, C], grid=(1,), threadgroup=(threads,), schedule="forward")
    return str(error.value)


def test_missing_barrier_before_the_op_is_reported(lib):
    text = launch_fault(lib, "missing_barrier")
    assert "threadgroup_barrier is missing" in text
    assert f"tensor_ops.metal:{line_of('<- missing barrier')}" in text


def test_threads_skipping_the_op_are_divergence(lib):
    text = launch_fault(lib, "divergent_run", M=40)
    assert "barrier not reached by every thread" in text and "matmul2d::run" in text
    assert f"tensor_ops.metal:{line_of('<- divergent run')}" in text


def test_scope_must_be_the_threadgroup(lib):
    text = launch_fault(lib, "divergent_run", threads=64)
    assert "execution_simdgroups<4> run by a threadgroup of 64 threads" in text


def test_static_k_past_the_view_is_reported(lib):
    text = launch_fault(lib, "static_k_too_long", K=20)
    assert "static K = 32" in text and "holds only 20" in text
    assert f"tensor_ops.metal:{line_of('<- static K')}" in text


# --- what the front-end rejects ----------------------------------------------------

PRELUDE = """#include <metal_stdlib>
#include <metal_tensor>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>
using namespace metal;
using namespace mpp::tensor_ops;
"""


def kernel_source(body, params="device half* A [[buffer(0)]], device float* F [[buffer(1)]], "
                               "device float* C [[buffer(2)]]"):
    return PRELUDE + f"kernel void k({params}) {{\n{body}\n}}\n"


REJECTED = {
    "operand order": ("""
  auto tA = tensor(A, dextents<int32_t, 2>(16, 16));
  auto tF = tensor(F, dextents<int32_t, 2>(16, 16));
  matmul2d<matmul2d_descriptor(16, 16), execution_simdgroup> op;
  auto cT = op.get_destination_cooperative_tensor<decltype(tA), decltype(tF), float>();
  op.run(tF, tA, cT);""", "Input types must match cooperative tensor types"),
    "neither m nor n a multiple of 16": ("""
  matmul2d<matmul2d_descriptor(8, 8), execution_simdgroup> op; (void)op;""",
                                         "At least one of M or N must be a multiple of 16"),
    "k = 0 is not dynamic": ("""
  matmul2d<matmul2d_descriptor(16, 16, 0), execution_simdgroup> op; (void)op;""", "k = 0 is not dynamic"),
    "unsupported element types": ("""
  auto tF = tensor(F, dextents<int32_t, 2>(16, 16));
  auto tA = tensor(A, dextents<int32_t, 2>(16, 16));
  matmul2d<matmul2d_descriptor(16, 16), execution_simdgroup> op;
  op.run(tF, tF, tA);""", "unsupported (left, right, destination) element types"),
    "cooperative inputs on 4 simdgroups": ("""
  matmul2d<matmul2d_descriptor(16, 16, 16), execution_simdgroups<4>> op;
  auto ca = op.get_left_input_cooperative_tensor<half, half, float>(); (void)ca;""",
                                           "Input cooperative tensors require a single SIMD group"),
    "static_slice does not exist": ("""
  auto tA = tensor(A, dextents<int32_t, 2>(16, 16));
  auto s = tA.static_slice<16, 16>(0, 0); (void)s;""", "static_slice"),
    "get_mask does not exist": ("""
  matmul2d<matmul2d_descriptor(16, 16), execution_simdgroup> op;
  auto cT = op.get_destination_cooperative_tensor<half, half, float>();
  (void)cT.get_mask(0);""", "get_mask"),
    "tensor_offset is not a descriptor": ("""
  tensor<device half, dextents<int32_t, 2>, tensor_offset> t; (void)t;""", "tensor_offset is a tag"),
    "a temporary operand": ("""
  auto tA = tensor(A, dextents<int32_t, 2>(16, 16));
  auto tC = tensor(C, dextents<int32_t, 2>(16, 16));
  matmul2d<matmul2d_descriptor(16, 16), execution_simdgroup> op;
  op.run(tA, tensor(A, dextents<int32_t, 2>(16, 16)), tC);""", "cannot bind non-const lvalue reference"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_misuse_is_rejected(cache, case):
    body, message = REJECTED[case]
    with pytest.raises(sim.CompileError) as error:
        sim.compile(kernel_source(body), cache_dir=cache, std="metal4.0")
    assert message in str(error.value)


def test_tensor_api_needs_metal4(cache):
    """Apple's headers are empty below -std=metal4.0: the namespace is missing."""
    source = kernel_source("")
    with pytest.raises(sim.CompileError) as error:
        sim.compile(source, cache_dir=cache)  # metal3.1, qmetal's default
    assert re.search(r"mpp|tensor_ops", str(error.value))
    sim.compile(source, cache_dir=cache, std="metal4.0")


def test_unknown_language_version_is_a_value_error(cache):
    with pytest.raises(ValueError, match="metal4.0"):
        sim.compile(kernel_source(""), cache_dir=cache, std="metal5")


# --- qmetal's own tensor-op shaders ---------------------------------------------------


@pytest.mark.parametrize("path", TENSOR_SHADERS, ids=[os.path.basename(p) for p in TENSOR_SHADERS])
def test_tensor_op_shaders_pass_the_strict_front_end_as_msl4(path):
    cxx = os.environ.get("CXX", "c++")
    version = _generator.language_version("metal4.0")
    text = _generator.preprocess(path, cxx, [SHADER_DIR], metal_version=version)
    code = _generator.generate(text, display_name=os.path.basename(path), strict=True, metal_version=version)
    assert "__qmetal_entry_0" in code and '#include "qmetal_sim/tensor_ops.h"' in code


def test_tensor_op_shaders_are_not_msl31(cache):
    """Under the main library's language they fail, as with Apple's compiler:
    which is why they live in shaders/metal4/ and a library of their own."""
    with pytest.raises(sim.CompileError, match="mpp"):
        sim.compile(os.path.join(SHADER_DIR, "metal4", "tensor_probe.metal"), cache_dir=cache)


def test_the_metal_probe_kernel_computes_its_product(cache):
    """The kernel the Metal backend runs at device creation, with the host's
    inputs (csrc/metal/device.mm: entries in -2..2): exact in half and float."""
    lib = sim.compile(os.path.join(SHADER_DIR, "metal4", "tensor_probe.metal"), cache_dir=cache, std="metal4.0")
    side = 16
    i = np.arange(side * side)
    A = ((i * 7 % 5) - 2).astype(np.float16).reshape(side, side)
    B = ((i * 3 % 5) - 2).astype(np.float16).reshape(side, side)
    C = np.full((side, side), -1.0, np.float32)
    lib.launch("qmetal_tensor_probe", [A, B, C], grid=(1,), threadgroup=(THREADS,))
    np.testing.assert_array_equal(C, A.astype(np.float64) @ B.astype(np.float64))
