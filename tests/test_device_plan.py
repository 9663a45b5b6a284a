"""Devices, the `info` command, and DispatchPlan's checks."""

import os
import subprocess
import sys

import numpy as np
import pytest

import qmetal


def run_qmetal(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "qmetal", *args], capture_output=True, text=True, env=env)


def test_default_device_is_a_built_backend():
    device = qmetal.default_device()
    assert device.backend in qmetal.available_backends()
    caps = device.capabilities
    assert caps["simd_width"] == 32
    assert caps["max_threads_per_threadgroup"] >= 1024
    assert caps["max_threadgroup_memory"] >= 32 * 1024
    assert caps["wrap_alignment"] >= 16 and caps["wrap_alignment"] & (caps["wrap_alignment"] - 1) == 0


@pytest.mark.skipif(sys.platform == "darwin", reason="the Metal backend exists on macOS")
def test_metal_is_refused_where_not_built():
    backends = qmetal.available_backends()
    assert "metal" not in backends and "sim" in backends
    with pytest.raises(ValueError, match="'metal' is not available in this build"):
        qmetal.get_device("metal")


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend: expected 'sim', 'metal' or 'cuda', got 'vulkan'"):
        qmetal.get_device("vulkan")


def test_info_command_reports_device():
    result = run_qmetal("info", env_extra={"QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stderr
    assert f"qmetal {qmetal.__version__}" in result.stdout
    assert "backend: sim" in result.stdout
    assert "simdgroup_matrix: True" in result.stdout


def test_bad_backend_environment_is_a_clear_error():
    result = run_qmetal("info", env_extra={"QMETAL_BACKEND": "vulkan"})
    assert result.returncode == 2
    assert "QMETAL_BACKEND: expected 'sim', 'metal' or 'cuda', got 'vulkan'" in result.stderr


def test_headers_and_library_are_installed():
    assert os.path.isfile(os.path.join(qmetal.get_include(), "qmetal", "qmetal.h"))
    assert os.path.isfile(os.path.join(qmetal.get_include(), "qmetal_args.h"))
    assert os.path.isfile(qmetal.get_library())


def make_plan(**changes):
    plan = qmetal.DispatchPlan()
    plan.kernel = "example_kernel"
    plan.args = np.arange(4, dtype=np.uint32).tobytes()
    plan.grid = [3, 2]
    plan.threadgroup = [64]
    plan.bind(1, qmetal.empty((100,), "float32"), "read")
    plan.bind(2, qmetal.empty((100,), "float32"), "write", offset=16)
    plan.set_threadgroup_memory(0, 4096)
    for key, value in changes.items():
        setattr(plan, key, value)
    return plan


def test_valid_plan_passes_and_reads_back():
    plan = make_plan()
    plan.validate(qmetal.default_device())
    assert plan.grid == (3, 2, 1) and plan.threadgroup == (64, 1, 1)
    assert plan.args == np.arange(4, dtype=np.uint32).tobytes()
    assert [(index, offset, access) for index, _, offset, access in plan.buffers] == [
        (1, 0, "read"), (2, 16, "write")]
    assert plan.threadgroup_memory == [(0, 4096)]


@pytest.mark.parametrize("mutate, message", [
    (lambda p: setattr(p, "kernel", ""), "kernel name is empty"),
    (lambda p: setattr(p, "grid", [0, 1]), "grid has a zero extent"),
    (lambda p: setattr(p, "threadgroup", [32, 33]), "threadgroup of 1056 threads exceeds the device limit of 1024"),
    (lambda p: p.bind(1, qmetal.empty((1,), "uint8")), "buffer index 1 is bound twice"),
    (lambda p: p.bind(0, qmetal.empty((1,), "uint8")), "buffer index 0 is reserved for the arg struct"),
    (lambda p: p.bind(3, qmetal.empty((4,), "uint8"), offset=5), "buffer 3 offset 5 is past its 4 bytes"),
    (lambda p: p.set_threadgroup_memory(1, 32 * 1024), "exceed the device limit of 32768"),
    (lambda p: p.set_threadgroup_memory(0, 16), "threadgroup memory index 0 is set twice"),
])
def test_plan_validation_names_the_problem(mutate, message):
    plan = make_plan()
    mutate(plan)
    with pytest.raises(ValueError, match=message):
        plan.validate(qmetal.default_device())


def test_plan_refuses_writes_to_readonly_buffers():
    source = np.zeros(8, np.float32)
    source.flags.writeable = False
    plan = make_plan()
    plan.bind(5, qmetal.asbuffer(source), "write")
    with pytest.raises(ValueError, match="buffer 5 is written but read-only"):
        plan.validate(qmetal.default_device())


def test_plan_setters_check_arguments():
    plan = qmetal.DispatchPlan()
    with pytest.raises(ValueError, match="grid: expected 1 to 3 extents, got 4"):
        plan.grid = [1, 1, 1, 1]
    with pytest.raises(ValueError, match="access: expected 'read', 'write' or 'read_write', got 'rw'"):
        plan.bind(1, qmetal.empty((1,), "uint8"), "rw")


def test_simulator_device_thread_limit_is_checked():
    """qmetal.sim.device(max_threads_per_threadgroup=): a multiple of 32 up to
    1024 (what a GPU's pipeline can report), an int."""
    import qmetal.sim

    assert qmetal.sim.device(max_threads_per_threadgroup=384).capabilities["max_threads_per_threadgroup"] == 384
    for bad in (0, 100, 2048):
        with pytest.raises(ValueError, match=f"max_threads_per_threadgroup: expected a multiple of 32 from 32 to "
                                             f"1024, got {bad}"):
            qmetal.sim.device(max_threads_per_threadgroup=bad)
    for bad in (256.0, True, "256"):
        with pytest.raises(TypeError, match="max_threads_per_threadgroup: expected an int"):
            qmetal.sim.device(max_threads_per_threadgroup=bad)
