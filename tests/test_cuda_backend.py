"""The `cuda` backend on an NVIDIA GPU: the built-in kernels through the
planner's plans against the float64 reference, the copies counted, timing,
and the CUDA prelude's collectives, barriers, simdgroup matrices and
half/bfloat on hardware, checked against the simulator running the same MSL.
Skipped, with the reason, where the backend is not built or no GPU is here
(run the whole suite on the GPU with QMETAL_BACKEND=cuda)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import qmetal
from conftest import BFLOAT16, relative_error
from qmetal import reference as ref

_core = qmetal._core
if not getattr(_core, "cuda_built", False):
    pytestmark = pytest.mark.skip(reason="the cuda backend is not part of this build (built where CMake finds nvcc)")
elif "cuda" not in qmetal.available_backends():
    pytestmark = pytest.mark.skip(reason=f"no usable CUDA GPU: {_core.backend_status('cuda')}")


@pytest.fixture(scope="module")
def device():
    return qmetal.get_device("cuda")


def test_device_is_the_gpu(device):
    assert device.backend == "cuda"
    assert device.architecture.startswith("sm_")
    assert "compute capability" in device.details
    props = _core.cuda_properties(device)
    assert props["multiprocessors"] > 0 and props["l2_bytes"] > 0
    assert qmetal._core.backend_status("cuda").startswith("available: ")


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BFLOAT16])
@pytest.mark.parametrize("m", [1, 3, 40])
def test_matmul_matches_reference(rng, device, dtype, m):
    n, k = 96, 512
    w = (rng.standard_normal((n, k)) * 0.1).astype(dtype)
    x = rng.standard_normal((m, k)).astype(dtype)
    q = qmetal.quantize(w, 4, 64, device=device)
    y = qmetal.matmul(x, q, device=device)
    dense = ref.affine_dequantize(q.packed, q.scales, q.biases, 4, 64).astype(np.float64)
    assert relative_error(y, x.astype(np.float64) @ dense.T) < 1e-2


def test_copies_are_counted(rng, device):
    x = rng.standard_normal((1, 256)).astype(np.float32)
    q = qmetal.quantize(rng.standard_normal((64, 256)).astype(np.float32), 4, 64, device=device)
    _core.cuda_reset_transfers()
    y = qmetal.matmul(x, q, device=device)
    t = _core.cuda_transfers()
    # In: x, packed, scales, biases, y and the arg structs; out: y.
    assert t["to_device"] >= 5 and t["to_device_bytes"] >= x.nbytes + q.packed.nbytes
    assert t["to_host"] == 1 and t["to_host_bytes"] == y.nbytes
    assert t["launches"] >= 1
    assert "copies so far" in device.details


def test_capture_and_timing(rng, device):
    x = rng.standard_normal((4, 512)).astype(np.float16)
    q = qmetal.quantize(rng.standard_normal((128, 512)).astype(np.float16), 4, 64, device=device)
    _core.cuda_capture(True)
    try:
        qmetal.matmul(x, q, device=device)
        plans = _core.cuda_captured()
    finally:
        _core.cuda_capture(False)
    assert plans and plans[-1].kernel.startswith("affine_")
    times = _core.cuda_time(device, plans, None, 2, 5, 1 << 20)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert _core.cuda_copy_bandwidth(device, 1 << 24, 3) > 1.0


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc to compile MSL at run time")

# Collectives and matrices on hardware, against the simulator on the same
# MSL: 48 threads per threadgroup, so the second simdgroup is partial.
SHIM_MSL = """
#include <metal_stdlib>
using namespace metal;
kernel void collectives(device float* out [[buffer(0)]], const device float* in [[buffer(1)]],
                        uint i [[thread_position_in_grid]], uint lane [[thread_index_in_simdgroup]],
                        uint tid [[thread_index_in_threadgroup]]) {
  const float v = in[i];
  threadgroup float shared[64];
  shared[tid] = v * 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[8 * i + 0] = simd_sum(v);
  out[8 * i + 1] = simd_max(v);
  out[8 * i + 2] = simd_prefix_inclusive_sum(v);
  out[8 * i + 3] = simd_shuffle_xor(v, ushort(1));
  out[8 * i + 4] = simd_shuffle_down(v, ushort(3));
  out[8 * i + 5] = quad_sum(v);
  out[8 * i + 6] = float(uint(ulong(simd_ballot(v > 0.0f))) & 0xFFFFu);
  out[8 * i + 7] = shared[tid ^ 1u] + float(half(v)) + float(bfloat(v));
}
kernel void matrices(device float* out [[buffer(0)]], const device float* a [[buffer(1)]],
                     const device float* b [[buffer(2)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 ma, mb, mc;
  simdgroup_load(ma, a, 8);
  simdgroup_load(mb, b, 8, ulong2(0, 0), true);
  mc = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
  simdgroup_multiply_accumulate(mc, ma, mb, mc);
  simdgroup_store(mc, out, 8);
  out[64 + 2 * lane] = mc.thread_elements()[0];
  out[64 + 2 * lane + 1] = mc.thread_elements()[1];
}
kernel void big_grid(device uint* out [[buffer(0)]], uint3 group [[threadgroup_position_in_grid]],
                     uint3 groups [[threadgroups_per_grid]]) {
  if (group.x == 0 && group.z == 0) out[group.y] = group.y + groups.y;
}
"""


@pytest.fixture(scope="module")
def shim_module(tmp_path_factory):
    from qmetal.sim import _cuda

    arch = _core.cuda_properties(qmetal.get_device("cuda"))["arch"]
    path = _cuda.compile_cubin(SHIM_MSL, "shim.metal", arch=arch,
                               out=str(tmp_path_factory.mktemp("cuda") / "shim.cubin"))
    return _core.CudaModule(path)


def _plan(kernel, buffers, grid, threadgroup):
    plan = qmetal.DispatchPlan()
    plan.kernel = kernel
    for index, (buffer, access) in enumerate(buffers):
        plan.bind(index, buffer, access)
    plan.grid, plan.threadgroup = grid, threadgroup
    return plan


@needs_nvcc
def test_collectives_match_the_simulator(rng, device, shim_module):
    import qmetal.sim as sim

    values = rng.standard_normal(96).astype(np.float32)
    out = qmetal.zeros(8 * 96, "float32")
    _core.cuda_execute(device, [_plan("collectives", [(out, "write"), (qmetal.asbuffer(values), "read")],
                                      (2, 1, 1), (48, 1, 1))], shim_module)
    expected = np.zeros(8 * 96, np.float32)
    sim.compile(SHIM_MSL).launch("collectives", [expected, values], grid=(2, 1, 1), threadgroup=(48, 1, 1))
    got = np.asarray(out.numpy())
    # Lanes whose shuffles read inactive lanes are undefined on both: compare the rest.
    defined = np.ones((96, 8), bool)
    defined[:, 4] = [(i % 48) % 32 + 3 < (32 if (i % 48) < 32 else 16) for i in range(96)]
    np.testing.assert_array_equal(got.reshape(96, 8)[defined], expected.reshape(96, 8)[defined])


@needs_nvcc
def test_simdgroup_matrix_has_apples_layout(rng, device, shim_module):
    import qmetal.sim as sim

    a = rng.standard_normal(64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    out = qmetal.zeros(128, "float32")
    _core.cuda_execute(device, [_plan("matrices", [(out, "write"), (qmetal.asbuffer(a), "read"),
                                                   (qmetal.asbuffer(b), "read")], (1, 1, 1), (32, 1, 1))], shim_module)
    got = np.asarray(out.numpy())
    np.testing.assert_allclose(got[:64].reshape(8, 8), a.reshape(8, 8) @ b.reshape(8, 8).T + 1, rtol=1e-5, atol=1e-5)
    expected = np.zeros(128, np.float32)
    sim.compile(SHIM_MSL).launch("matrices", [expected, a, b], grid=(1, 1, 1), threadgroup=(32, 1, 1))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)  # the same lane holds the same elements


@needs_nvcc
def test_grid_past_cudas_limit_runs_in_parts(device, shim_module):
    rows = 70000  # CUDA grids stop at 65535 in y
    out = qmetal.zeros(rows, "uint32")
    _core.cuda_execute(device, [_plan("big_grid", [(out, "write")], (1, rows, 1), (32, 1, 1))], shim_module)
    np.testing.assert_array_equal(np.asarray(out.numpy()), np.arange(rows, dtype=np.uint32) + rows)


def test_missing_kernel_is_an_error(device):
    plan = _plan("no_such_kernel", [], (1, 1, 1), (1, 1, 1))
    with pytest.raises(RuntimeError, match="no kernel named 'no_such_kernel'"):
        _core.cuda_execute(device, [plan])
