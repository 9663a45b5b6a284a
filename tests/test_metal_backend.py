"""The Metal backend's contract, as far as each machine can check it.

Everywhere: Apple's encoder limits in DispatchPlan.validate, why Metal is
(not) used, the 16-byte wrap alignment every device shares, and the
selftest's zero-copy and long-stream checks (on the simulator here). On a
Mac with a usable GPU (Apple7 + Metal3): the same checks on the GPU, where
they prove something: a stream of more than 64 dependent ops (command-buffer
ordering), zero-copy at any alignment (16 KB pages), streams shared by
threads and dropped with work in flight. Those skip elsewhere, with the
reason Metal is not used."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import qmetal
from qmetal import reference as ref

METAL_STATUS = qmetal._core.backend_status("metal")
needs_metal = pytest.mark.skipif("metal" not in qmetal.available_backends(),
                                 reason=f"needs a usable Metal GPU (Apple7 + Metal3); here Metal is {METAL_STATUS}")


def make_plan():
    plan = qmetal.DispatchPlan()
    plan.kernel = "example_kernel"
    plan.grid = [1]
    plan.threadgroup = [32]
    return plan


# --- Apple's limits in plan validation (every device) ----------------------


def test_threadgroup_memory_must_be_a_multiple_of_16():
    plan = make_plan()
    plan.set_threadgroup_memory(0, 100)
    with pytest.raises(ValueError, match="threadgroup memory index 0 has 100 bytes; Metal takes multiples of 16"):
        plan.validate(qmetal.default_device())
    plan = make_plan()
    plan.set_threadgroup_memory(0, 112)
    plan.validate(qmetal.default_device())


def test_arg_struct_must_fit_set_bytes():
    plan = make_plan()
    plan.args = bytes(4095)
    plan.validate(qmetal.default_device())
    plan.args = bytes(4096)
    with pytest.raises(ValueError, match="the arg struct has 4096 bytes; setBytes takes less than 4096"):
        plan.validate(qmetal.default_device())


def test_binding_extent_must_stay_inside_its_buffer():
    plan = make_plan()
    plan.bind(1, qmetal.empty((100,), "float32"), "read", offset=16, extent=384)  # exactly to the end
    plan.validate(qmetal.default_device())
    plan = make_plan()
    plan.bind(1, qmetal.empty((100,), "float32"), "read", offset=16, extent=385)
    with pytest.raises(ValueError, match="buffer 1 extent 385 from offset 16 runs past its 400 bytes"):
        plan.validate(qmetal.default_device())


# --- which device, and why (every machine) ---------------------------------


def test_metal_status_says_why():
    if sys.platform != "darwin":
        assert METAL_STATUS.startswith("not part of this build")
    elif "metal" in qmetal.available_backends():
        assert METAL_STATUS.startswith("available: ")
        assert "GPU families: " in METAL_STATUS and "qmetal.metallib" in METAL_STATUS
    else:  # a hosted runner's paravirtual GPU, an Intel Mac, a broken install
        assert METAL_STATUS.startswith("not usable: ")
    assert qmetal._core.backend_status("sim").startswith("available: qmetal simulator")


def test_info_reports_the_metal_status():
    result = subprocess.run([sys.executable, "-m", "qmetal", "info"], capture_output=True, text=True,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stderr
    assert f"metal: {METAL_STATUS}" in result.stdout


@pytest.mark.skipif("metal" in qmetal.available_backends(), reason="Metal is usable here")
def test_asking_for_metal_where_it_is_not_usable_says_why():
    with pytest.raises(ValueError, match="'metal' is not available"):
        qmetal.get_device("metal")


def aligned_not_page_aligned(shape, dtype=np.float32):
    from qmetal._selftest import _aligned_not_page_aligned

    return _aligned_not_page_aligned(shape, dtype, qmetal._core.page_size())


@pytest.mark.parametrize("backend", qmetal.available_backends())
def test_every_device_wraps_16_byte_aligned_memory_without_copying(backend):
    # The zero-copy tests (test_buffer, test_affine, test_ggml) assume this on
    # every device: Metal wraps whole pages around any pointer (16 KB on Apple
    # silicon), so only the kernels' widest loads set the alignment.
    device = qmetal.get_device(backend)
    assert device.capabilities["wrap_alignment"] == 16
    source = aligned_not_page_aligned((7, 5))
    assert source.ctypes.data % 16 == 0 and source.ctypes.data % qmetal._core.page_size() != 0
    buffer = qmetal.asbuffer(source, device=device)
    assert not buffer.copied and buffer.address == source.ctypes.data


def test_selftest_reports_zero_copy_and_a_long_stream():
    result = subprocess.run([sys.executable, "-m", "qmetal", "selftest"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"metal backend: {METAL_STATUS}" in lines
    assert any(line.startswith("ok     zero-copy: ") for line in lines)
    assert any(line.startswith("ok     stream: 130 dependent ops") for line in lines)
    assert any(line.startswith("ok     ggml mm ") for line in lines)
    assert "timings (best of 3" in result.stdout


# --- on a Mac with a usable GPU only ---------------------------------------


@needs_metal
def test_stream_longer_than_a_command_buffer_keeps_its_order():
    # Each op reads the previous op's output through a new MTLBuffer over
    # the same memory; producers and consumers fall in different command
    # buffers (64 dispatches each). Identical to running the ops one by one.
    from qmetal._selftest import stream_chain

    h, expected = stream_chain(qmetal.get_device("metal"), ops=200)
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(h, expected)


@needs_metal
def test_zero_copy_at_any_alignment_with_out_on_a_stream(rng):
    device = qmetal.get_device("metal")
    w = qmetal.quantize((rng.standard_normal((64, 512)) * 0.1).astype(np.float32), 4, 64, device=device)
    x = aligned_not_page_aligned((3, 512))
    x[...] = rng.standard_normal(x.shape)
    out = aligned_not_page_aligned((3, 64))
    with qmetal.Stream(device) as stream:
        assert qmetal.matmul(x, w, out=out, stream=stream) is out
    expected = ref.affine_matmul(x, w.packed, w.scales, w.biases, 4, 64)
    assert np.linalg.norm(out - expected) / np.linalg.norm(expected) < 1e-5


@needs_metal
def test_stream_dropped_with_work_in_flight(rng):
    # The destructor does not wait (it may hold the GIL): the GPU's work keeps
    # its buffers until a later call sees it done.
    device = qmetal.get_device("metal")
    w = qmetal.quantize((rng.standard_normal((512, 512)) * 0.04).astype(np.float32), 4, 64, device=device)
    stream = qmetal.Stream(device)
    h = rng.standard_normal((1, 512)).astype(np.float32)
    for _ in range(100):
        h = qmetal.matmul(h, w, stream=stream)
    del stream, h
    gc.collect()
    x = rng.standard_normal((1, 512)).astype(np.float32)
    with qmetal.Stream(device) as again:
        y = qmetal.matmul(x, w, stream=again)
    np.testing.assert_array_equal(y, qmetal.matmul(x, w, device=device))


@needs_metal
def test_stream_shared_by_threads(rng):
    device = qmetal.get_device("metal")
    w = qmetal.quantize((rng.standard_normal((256, 512)) * 0.1).astype(np.float32), 4, 64, device=device)
    xs = [rng.standard_normal((2, 512)).astype(np.float32) for _ in range(4)]
    results = [[None] * 50 for _ in xs]
    stream = qmetal.Stream(device)

    def work(t):
        for i in range(50):
            results[t][i] = qmetal.matmul(xs[t], w, stream=stream)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(xs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stream.synchronize()
    for t, x in enumerate(xs):
        expected = qmetal.matmul(x, w, device=device)
        for y in results[t]:
            np.testing.assert_array_equal(y, expected)


@needs_metal
def test_metal_device_reports_families_and_library():
    device = qmetal.get_device("metal")
    assert "apple7" in device.details and "metal3" in device.details
    assert device.details.endswith("qmetal.metallib") or "QMETAL_METALLIB" in os.environ
    caps = device.capabilities
    assert caps["simdgroup_matrix"] and caps["bfloat"] and caps["wrap_alignment"] == 16
