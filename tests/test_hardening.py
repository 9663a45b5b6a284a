"""Regression tests for the adversarial review (ADVERSARIAL_REVIEW.md in the
design notes): each reproducer now fails safely, with a clear error or the
right answer. Numbers in the test names are the review's findings."""

from __future__ import annotations

import os
import signal
import struct

import numpy as np
import pytest

import qmetal
import qmetal.sim
from qmetal import _core
from qmetal import reference as ref


def _s(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def gguf_bytes(tensors, kvs=b"", kv_count=1, version=3, alignment=32, pad=True):
    """A GGUF file: `tensors` is [(name, dims (innermost first), type id, offset)]."""
    header = b"GGUF" + struct.pack("<IQQ", version, len(tensors), kv_count)
    header += _s(b"general.architecture") + struct.pack("<I", 8) + _s(b"llama") + kvs
    for name, dims, type_id, offset in tensors:
        header += _s(name.encode()) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        header += struct.pack("<IQ", type_id, offset)
    if pad:
        header += b"\0" * (-len(header) % alignment)
    return header


# --- #1: a byte count that wraps must not pass for a small buffer ------------------------

def test_1_f32_byte_count_overflow_is_refused():
    with pytest.raises(ValueError, match="takes more than 2\\^64 bytes|short"):
        qmetal.GGMLWeight(np.zeros(64, np.uint8), "F32", (2**51, 32, 64))


def test_1_crafted_gguf_with_wrapping_size_is_refused(tmp_path):
    path = tmp_path / "evil.gguf"
    path.write_bytes(gguf_bytes([("experts", (64, 32, 2**51), 0, 0)]) + b"\0" * 64)
    with pytest.raises(ValueError, match="experts"):
        qmetal.load_gguf(path)


# --- #2, #3: zero-size batches broadcast as NumPy does -----------------------------------

def test_2_empty_lhs_indices_give_an_empty_result(rng):
    q4 = qmetal.quantize(rng.standard_normal((4, 64, 128)).astype(np.float32))
    y = qmetal.gather_matmul(np.ones((3, 1, 128), np.float32), q4, lhs_indices=np.zeros(0, np.uint32),
                             rhs_indices=np.array([2], np.uint32))
    assert y.shape == (0, 1, 64)
    y = qmetal.gather_matmul(np.ones((3, 1, 128), np.float32), q4, lhs_indices=np.array([1], np.uint32),
                             rhs_indices=np.zeros(0, np.uint32))
    assert y.shape == (0, 1, 64)


def test_2_ggml_weight_with_no_matrices(rng):
    g = qmetal.GGMLWeight(np.zeros(64, np.uint8), "Q4_0", (0, 64, 256))
    assert qmetal.matmul(np.ones((1, 256), np.float32), g).shape == (0, 1, 64)
    y = qmetal.gather_matmul(np.ones((3, 1, 256), np.float32),
                             qmetal.GGMLWeight(np.zeros(2 * 64 * 8 * 18, np.uint8), "Q4_0", (2, 64, 256)),
                             lhs_indices=np.zeros(0, np.uint32), rhs_indices=np.array([1], np.uint32))
    assert y.shape == (0, 1, 64)


def test_3_empty_batch_of_x_against_one_weight(rng):
    q1 = qmetal.quantize(rng.standard_normal((1, 64, 128)).astype(np.float32))
    y = qmetal.matmul(np.ones((0, 1, 128), np.float32), q1)
    assert y.shape == (0, 1, 64)
    q0 = qmetal.QuantizedWeight.from_arrays(np.zeros((0, 64, 16), np.uint32), np.zeros((0, 64, 2), np.float32),
                                            np.zeros((0, 64, 2), np.float32), bits=4, group_size=64)
    assert qmetal.matmul(np.ones((1, 128), np.float32), q0).shape == (0, 1, 64)


def test_20_empty_quantize_and_dequantize():
    q = qmetal.quantize(np.zeros((0, 64), np.float32))
    assert q.packed.shape == (0, 8) and q.scales.shape == (0, 1)
    assert qmetal.dequantize(q).shape == (0, 64)
    g = qmetal.GGMLWeight(np.zeros(0, np.uint8), "Q4_0", (0, 256))
    assert qmetal.dequantize(g).shape == (0, 256)


# --- #4: 64-bit output indexing in qmm (M * N >= 2^32) ------------------------------------

def test_4_qmm_rows_past_two_to_the_32_do_not_wrap(rng):
    """The planner's own qmm plan, run for the first column of tiles only, so
    the 8.6 GB output stays untouched but for 32 columns."""
    M, N, K = 65536 + 32, 65536, 32
    qw = qmetal.quantize(rng.standard_normal((N, K)).astype(np.float16), 4, 32)
    x = rng.standard_normal((M, K)).astype(np.float16)
    try:
        y = qmetal.empty((M, N), "float16")
    except (MemoryError, RuntimeError) as error:
        pytest.skip(f"cannot reserve an 8.6 GB output here: {error}")
    plan = _core.plan_affine_matmul(qmetal.default_device(), qmetal.asbuffer(x), qw._native, True, y, "qmm")[0]
    plan.grid = (1, plan.grid[1], 1)
    qmetal.sim.builtin().execute(plan)
    Y = np.asarray(y)
    w = qmetal.dequantize(qw).astype(np.float32)[:32]
    first, last = x[:32].astype(np.float32) @ w.T, x[65536:].astype(np.float32) @ w.T
    np.testing.assert_allclose(Y[:32, :32].astype(np.float32), first, atol=0.05, rtol=0.01)
    np.testing.assert_allclose(Y[65536:, :32].astype(np.float32), last, atol=0.05, rtol=0.01)


# --- #5: out= that overlaps an input --------------------------------------------------------

@pytest.mark.parametrize("M", [1, 4, 64])
def test_5_out_aliasing_x_is_refused(rng, M):
    qw = qmetal.quantize(rng.standard_normal((128, 128)).astype(np.float32))
    x = rng.standard_normal((M, 128)).astype(np.float32)
    before = x.copy()
    with pytest.raises(ValueError, match="out: shares memory with x"):
        qmetal.matmul(x, qw, out=x)
    np.testing.assert_array_equal(x, before)


def test_5_out_aliasing_the_weight_is_refused(rng):
    qw = qmetal.quantize(rng.standard_normal((2, 128)).astype(np.float32))
    scales = qw.scales.copy()
    with pytest.raises(ValueError, match="out: shares memory with w.scales"):
        qmetal.matmul(rng.standard_normal((2, 128)).astype(np.float32), qw, out=qw.scales)
    np.testing.assert_array_equal(qw.scales, scales)


def test_5_out_aliasing_ggml_input_is_refused(rng):
    w = rng.standard_normal((32, 32)).astype(np.float32)
    g = qmetal.GGMLWeight(ref.ggml_quantize(w, "Q8_0"), "Q8_0", (32, 32))
    x = rng.standard_normal((4, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="out: shares memory with x"):
        qmetal.matmul(x, g, out=x)


def test_5_cpp_ops_refuse_overlapping_buffers(rng):
    """The same check in the C++ ops, for C++ users (through the bindings)."""
    qw = qmetal.quantize(rng.standard_normal((64, 64)).astype(np.float32))
    x = qmetal.asbuffer(rng.standard_normal((4, 64)).astype(np.float32))
    with pytest.raises(ValueError, match="out: overlaps x"):
        _core.affine_matmul(qmetal.default_device(), x, qw._native, True, x, "automatic", None)


# --- #6: no stale copy of the scales after an in-place update ------------------------------

def test_6_in_place_update_of_shared_scales_is_seen(rng):
    p, s, b = ref.affine_quantize(rng.standard_normal((64, 128)).astype(np.float16), 4, 64)
    q = qmetal.QuantizedWeight.from_arrays(p, s, b)
    x = rng.standard_normal((1, 128)).astype(np.float32)
    y0 = qmetal.matmul(x, q)
    s *= 2
    b *= 2
    np.testing.assert_allclose(qmetal.matmul(x, q), 2 * y0, rtol=1e-5, atol=1e-5)


# --- #7, #19: GGUF validated as its specification requires ---------------------------------

def _q4_file(tmp_path, name, alignment_kv=b"", kv_count=1, tensors=None, data=None, version=3):
    rng = np.random.default_rng(0)
    blocks = ref.ggml_quantize(rng.standard_normal((64, 256)).astype(np.float32), "Q4_0").tobytes()
    tensors = tensors if tensors is not None else [("w", (256, 64), 2, 0)]
    header = gguf_bytes(tensors, alignment_kv, kv_count, version=version)
    path = tmp_path / name
    path.write_bytes(header + (blocks if data is None else data))
    return path


@pytest.mark.parametrize("kv, message", [
    (_s(b"general.alignment") + struct.pack("<Ii", 5, -32), "general.alignment must be a positive"),
    (_s(b"general.alignment") + struct.pack("<II", 4, 0), "general.alignment must be a positive"),
    (_s(b"general.alignment") + struct.pack("<II", 4, 12), "general.alignment must be a positive"),
    (_s(b"general.alignment") + struct.pack("<I", 8) + _s(b"abc"), "general.alignment must be a positive"),
])
def test_7_bad_alignment_is_refused(tmp_path, kv, message):
    path = _q4_file(tmp_path, "bad.gguf", kv, kv_count=2)
    with pytest.raises(ValueError, match=message):
        qmetal.load_gguf(path)


def test_7_overlapping_duplicate_and_versions(tmp_path):
    blocks = 64 * 8 * 18
    path = _q4_file(tmp_path, "overlap.gguf", tensors=[("a", (256, 64), 2, 0), ("b", (256, 64), 2, 64 * 18 * 4)],
                    data=b"\0" * (2 * blocks))
    with pytest.raises(ValueError, match="tensors 'a' and 'b' overlap"):
        qmetal.load_gguf(path)
    path = _q4_file(tmp_path, "dup.gguf", tensors=[("a", (256, 64), 2, 0), ("a", (256, 64), 2, blocks)],
                    data=b"\0" * (2 * blocks))
    with pytest.raises(ValueError, match="duplicate tensor name 'a'"):
        qmetal.load_gguf(path)
    path = _q4_file(tmp_path, "version.gguf", version=0xFFFFFFFF)
    with pytest.raises(ValueError, match="version 4294967295 is not supported"):
        qmetal.load_gguf(path)
    path = _q4_file(tmp_path, "misaligned.gguf", tensors=[("w", (256, 64), 2, 4)])
    with pytest.raises(ValueError, match="not a multiple of the alignment"):
        qmetal.load_gguf(path)


def test_19_truncation_anywhere_names_file_and_byte(tmp_path):
    good = _q4_file(tmp_path, "good.gguf").read_bytes()
    assert qmetal.load_gguf(tmp_path / "good.gguf").tensors["w"].shape == (64, 256)
    header_end = len(gguf_bytes([("w", (256, 64), 2, 0)]))
    for cut in sorted({0, 3, 4, 8, 16, 24, 30, 40, 50, 60, 70, 80, 90, header_end - 1, header_end + 10}):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match=str(path.name)):
            qmetal.load_gguf(path)


def test_19_deeply_nested_array_is_read_without_recursion(tmp_path):
    depth = 200_000
    value = struct.pack("<I", 9) + (struct.pack("<IQ", 9, 1)) * (depth - 1) + struct.pack("<IQ", 4, 0)
    kv = _s(b"deep") + value
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv
    path = tmp_path / "deep.gguf"
    path.write_bytes(header)
    f = qmetal.load_gguf(path)
    node, levels = f.metadata["deep"], 1
    while node:
        node, levels = node[0], levels + 1
    assert levels == depth


def test_19_huge_counts_fail_before_allocating(tmp_path):
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _s(b"k") + struct.pack("<IIQ", 9, 4, 2**60)
    path = tmp_path / "huge.gguf"
    path.write_bytes(header)
    with pytest.raises(ValueError, match=r"huge\.gguf: array element count 1152921504606846976 cannot fit"):
        qmetal.load_gguf(path)


# --- #18, #21-#23: errors that name the argument -------------------------------------------

def test_18_bad_ggml_data_names_the_argument():
    for data in ([0] * 64, "abc", 5, None):
        with pytest.raises(TypeError, match="data: expected"):
            qmetal.GGMLWeight(data, "Q4_0", (1, 32))


def test_23_non_integral_shapes_and_offsets_are_refused():
    with pytest.raises(TypeError, match="shape: expected integers, got 64.7"):
        qmetal.GGMLWeight(np.zeros(64 * 144, np.uint8), "Q4_0", (64.7, 256.2))
    with pytest.raises(TypeError, match="offset: expected integers, got 2.9"):
        qmetal.GGMLWeight(np.zeros(64 * 144, np.uint8), "Q4_0", (64, 256), offset=2.9)
    with pytest.raises(ValueError, match="offset: expected a byte offset >= 0"):
        qmetal.GGMLWeight(np.zeros(64 * 144, np.uint8), "Q4_0", (64, 256), offset=-2)
    weight = qmetal.GGMLWeight(np.zeros(64 * 144, np.uint8), "Q4_0", (np.int64(64), np.int32(256)))
    assert weight.shape == (64, 256)


@pytest.mark.parametrize("type_name, k, offset, alignment", [
    ("Q4_0", 32, 3, 2), ("F16", 32, 1, 2), ("F32", 32, 2, 4),
    # Read in 32-bit words (their blocks keep code bytes on 4 bytes):
    ("Q4_K", 256, 2, 4), ("Q2_K", 256, 6, 4), ("Q5_1", 32, 2, 4)])
def test_ggml_offsets_keep_block_fields_aligned(type_name, k, offset, alignment):
    # A GPU faults on misaligned reads (the cuda backend did on an F32 weight at offset 2).
    data = np.zeros(4096, np.uint8)
    with pytest.raises(ValueError, match=f"offset: expected a multiple of {alignment} bytes for {type_name}, got {offset}"):
        qmetal.GGMLWeight(data, type_name, (2, k), offset=offset)
    assert qmetal.GGMLWeight(data, type_name, (2, k), offset=offset + alignment - offset % alignment).shape == (2, k)


# --- #8-#15, #17, #24: the simulator fails safely ------------------------------------------

HOSTILE = """
#include <metal_stdlib>
using namespace metal;
kernel void oob(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i + 64] = 123.0f; }
kernel void div(device const int* x [[buffer(0)]], device int* y [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  y[i] = 100 / x[i];
}
kernel void big(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  float a[40000];
  for (int k = 0; k < 40000; ++k) a[k] = float(k + i);
  y[i] = a[(i * 7919) % 40000];
}
kernel void spin(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  volatile int go = 1;
  while (go) {}
  y[i] = 1.0f;
}
kernel void saxpy(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                  uint i [[thread_position_in_grid]]) {
  y[i] = 2 * x[i] + y[i];
}
kernel void tile_write(device float* y [[buffer(0)]], threadgroup float* t [[threadgroup(0)]],
                       uint i [[thread_index_in_threadgroup]]) {
  t[i] = 1.0f;
  y[i] = t[i];
}
kernel void ids(device float* buffers [[buffer(0)]], uint threadgroup_args [[thread_position_in_grid]]) {
  buffers[threadgroup_args] = 1.0f;
}
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return qmetal.sim.compile(HOSTILE, cache_dir=tmp_path_factory.mktemp("hostile"))


def test_8_out_of_bounds_write_is_reported_and_neighbours_untouched(hostile):
    blob = np.zeros(128, np.float32)
    with pytest.raises(RuntimeError, match=r"kernel 'oob' accessed buffers\[0\] \(256 bytes\) out of bounds"):
        hostile.launch("oob", [blob[:64]], grid=(2,), threadgroup=(32,))
    assert not blob[64:].any()


def test_8_far_out_of_bounds_and_small_threadgroup_memory(hostile):
    with pytest.raises(RuntimeError, match="kernel 'saxpy'.*invalid memory access|kernel 'saxpy' accessed"):
        hostile.launch("saxpy", [np.ones(8, np.float32), np.zeros(8, np.float32)], grid=(64,), threadgroup=(32,))
    with pytest.raises(RuntimeError, match=r"past the end of \[\[threadgroup\(0\)\]\]"):
        hostile.launch("tile_write", [np.zeros(32, np.float32)], grid=(1,), threadgroup=(32,),
                       threadgroup_memory=[16])


@pytest.mark.parametrize("faulthandler_first, address", [(True, 8), (False, 8), (True, 0x2FB430394DC24953)])
def test_8_a_crash_outside_kernels_still_ends_the_process(tmp_path, faulthandler_first, address):
    """A fault that no kernel made goes to the handler installed before the
    simulator's (pytest's faulthandler) and then ends the process, in either
    order of installation. A null-page fault (and any general-protection
    fault, which reports address 0) once matched a free guard-page slot and
    faulted again forever."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import ctypes, faulthandler, numpy as np, qmetal
        if {faulthandler_first}:
            faulthandler.enable()
        qmetal.matmul(np.ones((1, 64), np.float32), qmetal.quantize(np.ones((8, 64), np.float32)))  # installs
        faulthandler.enable()
        print("crashing", flush=True)
        ctypes.string_at({address})
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert "crashing" in result.stdout
    assert result.returncode == -signal.SIGSEGV, (result.returncode, result.stderr[-2000:])
    assert "Fatal Python error: Segmentation fault" in result.stderr


def test_9_division_by_zero_does_not_kill_the_process(hostile):
    x = np.arange(32, dtype=np.int32) % 3
    y = np.full(32, -7, np.int32)
    with pytest.warns(RuntimeWarning, match="divided an integer by zero 11 time"):
        hostile.launch("div", [x, y], grid=(1,), threadgroup=(32,))
    np.testing.assert_array_equal(y, np.where(x == 0, 0, 100 // np.maximum(x, 1)))


def test_10_stack_overflow_is_a_named_error(hostile):
    with pytest.raises(RuntimeError, match="kernel 'big'.*overflowed its stack.*QMETAL_SIM_STACK_KB"):
        hostile.launch("big", [np.zeros(64, np.float32)], grid=(2,), threadgroup=(32,))


def test_12_timeout_names_the_kernel_and_threadgroup(hostile):
    with pytest.raises(RuntimeError, match=r"kernel 'spin': timed out after .* threadgroup \(0, 0, 0\)"):
        hostile.launch("spin", [np.zeros(32, np.float32)], grid=(1,), threadgroup=(32,), timeout=0.5)
    # The simulator is usable afterwards.
    y = np.zeros(32, np.float32)
    hostile.launch("saxpy", [np.ones(32, np.float32), y], grid=(1,), threadgroup=(32,))
    np.testing.assert_array_equal(y, 2.0)


def test_12_ctrl_c_interrupts_a_launch(hostile, tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "spin.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, qmetal.sim, sys
        lib = qmetal.sim.compile({HOSTILE!r}, cache_dir={str(tmp_path)!r})
        print("ready", flush=True)
        try:
            lib.launch("spin", [np.zeros(32, np.float32)], grid=(1,), threadgroup=(32,))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    import time

    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("Ctrl-C did not stop the launch")
    assert process.returncode == 3 and "interrupted" in out


def test_13_read_only_memory_is_not_a_writable_binding(hostile):
    ro = np.zeros(32, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"buffers\[1\]: the memory is read-only"):
        hostile.launch("saxpy", [np.ones(32, np.float32), ro], grid=(1,), threadgroup=(32,))
    with pytest.raises(ValueError, match=r"buffers\[1\]: the memory is read-only"):
        hostile.launch("saxpy", [np.ones(32, np.float32), memoryview(bytes(128))], grid=(1,), threadgroup=(32,))


def test_14_execute_validates_the_plan(hostile):
    plan = qmetal.DispatchPlan()
    plan.kernel = "saxpy"
    plan.grid = (1, 1, 1)
    plan.threadgroup = (32, 1, 1)
    plan.bind(0, qmetal.asbuffer(np.ones(32, np.float32)), offset=1 << 40)
    plan.bind(1, qmetal.asbuffer(np.zeros(32, np.float32)))
    with pytest.raises(ValueError, match="offset"):
        hostile.execute(plan)


def test_14_args_struct_size_is_checked():
    qw = qmetal.quantize(np.ones((8, 64), np.float32))
    x = np.ones((1, 64), np.float32)
    y = qmetal.empty((1, 8), "float32")
    plan = qmetal._core.plan_affine_matmul(qmetal.default_device(), qmetal.asbuffer(x), qw._native, True, y, "qmv")[0]
    plan.args = plan.args[:1]
    with pytest.raises(ValueError, match="struct at \\[\\[buffer\\(0\\)\\]\\], but only 1 bytes"):
        qmetal.sim.builtin().execute(plan)


def test_15_and_17_empty_dispatch_and_huge_indices(hostile):
    y = np.zeros(64, np.float32)
    hostile.launch("saxpy", [np.ones(64, np.float32), y], threads=(0,), threadgroup=(32,))
    assert not y.any()
    with pytest.raises(ValueError, match="buffer indices 0 to 30"):
        hostile.launch("saxpy", {10**8: np.ones(4, np.float32)}, grid=(1,), threadgroup=(1,))
    for kwargs, message in (({"grid": (2**32,)}, "grid"), ({"grid": (1,), "seed": -1}, "seed"),
                            ({"grid": (1,), "threadgroup_memory": [-4]}, "threadgroup_memory")):
        with pytest.raises(ValueError, match=message):
            hostile.launch("saxpy", [np.ones(4, np.float32), np.zeros(4, np.float32)], threadgroup=(1,), **kwargs)


def test_11_sanitize_without_the_runtime_says_how():
    import os

    if "asan" in open("/proc/self/maps").read():
        pytest.skip("the sanitizer runtime is loaded in this process")
    with pytest.raises(RuntimeError, match="LD_PRELOAD"):
        qmetal.sim.compile("kernel void k(device float* y [[buffer(0)]]) { y[0] = 1.0f; }", sanitize=True)


def test_24_kernel_names_cannot_collide_with_generated_ones(hostile, tmp_path):
    y = np.zeros(4, np.float32)
    hostile.launch("ids", [y], grid=(1,), threadgroup=(4,))
    np.testing.assert_array_equal(y, 1.0)
    path = tmp_path / "kernels.msl"
    path.write_text("#include <metal_stdlib>\nkernel void k(device float* y [[buffer(0)]]) { y[0] = 2.0f; }\n")
    lib = qmetal.sim.compile(str(path), cache_dir=tmp_path)
    assert lib.kernels == ["k"]


# --- #21-#23: every bad argument named -------------------------------------------------------

def test_21_bad_arguments_are_named(rng):
    w = np.ones((8, 64), np.float32)
    q = qmetal.quantize(w)
    x = np.ones((1, 64), np.float32)
    with pytest.raises(ValueError, match="bits"):
        qmetal.quantize(w, bits=2**40)
    with pytest.raises(TypeError, match="transpose: expected a bool"):
        qmetal.matmul(x, q, transpose="no")
    np.testing.assert_array_equal(qmetal.matmul(x, q, transpose=np.bool_(True)), qmetal.matmul(x, q))
    with pytest.raises(TypeError, match="route: expected a route name"):
        qmetal.matmul(x, q, route=None)
    with pytest.raises(TypeError, match="device: expected a qmetal.Device"):
        qmetal.Stream(device="gpu0")
    with pytest.raises(TypeError, match="device: expected a qmetal.Device"):
        qmetal.quantize(w, device="cpu")


def test_22_dtype_errors_name_the_argument():
    q = qmetal.quantize(np.ones((8, 64), np.float32))
    with pytest.raises(TypeError, match="w: expected float32, float16 or bfloat16, got float64"):
        qmetal.quantize(np.ones((8, 64), np.float64))
    with pytest.raises(TypeError, match="scales: expected float32, float16 or bfloat16, got float64"):
        qmetal.QuantizedWeight.from_arrays(q.packed, q.scales.astype(np.float64), q.biases)


def test_23_one_dtype_rule_for_dequantize(rng):
    q = qmetal.quantize(rng.standard_normal((8, 64)).astype(np.float32))
    g = qmetal.GGMLWeight(ref.ggml_quantize(rng.standard_normal((8, 64)).astype(np.float32), "Q8_0"), "Q8_0", (8, 64))
    for weight in (q, g):
        with pytest.raises(TypeError, match="dtype: expected a float dtype"):
            qmetal.dequantize(weight, dtype=np.int32)
        wide = qmetal.dequantize(weight, dtype=np.float64)
        assert wide.dtype == np.float64
        np.testing.assert_array_equal(wide, qmetal.dequantize(weight, dtype=np.float32).astype(np.float64))
