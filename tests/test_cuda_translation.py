"""The CUDA target without a GPU: every shaders/*.metal (and the simulator's
feature files, and MLX's quantized kernels) translated to CUDA by
qmetal.sim._cuda and compiled for sm_90, with clang's CUDA mode and the
project's own prelude (no CUDA installation needed), and with nvcc where one
is installed and this build has not already compiled them; plus the
translation's own rules (entry points, __device__, __shared__, symbols)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import pytest

import qmetal
from qmetal.sim import _cuda

HERE = os.path.dirname(os.path.abspath(__file__))
SHADER_DIR = os.path.join(HERE, "..", "shaders")
SHADERS = sorted(glob.glob(os.path.join(SHADER_DIR, "*.metal")))
SIM_FILES = [os.path.join(HERE, "sim", name) for name in ("features.metal", "valid_msl.metal", "stdlib_surface.metal")]
# MSL 4.0 kernels on Metal 4 tensor operations (shaders/metal4/): the CUDA
# prelude has no mpp::tensor_ops::matmul2d, so they are not translated; the
# cuda backend runs the simdgroup-matrix routes (its devices report no
# tensor operations, so the planners never pick these).
TENSOR_SHADERS = sorted(glob.glob(os.path.join(SHADER_DIR, "metal4", "*.metal")))


def _clang():
    for name in (os.environ.get("QMETAL_TEST_CLANG"), "clang++-19", "clang++-20", "clang++-18", "clang++"):
        if not name or not shutil.which(name):
            continue
        # clang's CUDA mode with NVPTX (Debian's clang has it; Apple's does not).
        probe = subprocess.run([name, *_cuda.clang_flags(), "-", "-o", "-"], input="__attribute__((global)) void k() {}",
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return name
    return None


CLANG = _clang()
needs_clang = pytest.mark.skipif(CLANG is None, reason="needs clang++ with CUDA (NVPTX) support, e.g. clang-19")


def _nvcc():
    found = os.environ.get("NVCC") or shutil.which("nvcc")
    if found:
        return found
    try:  # the nvidia-cuda-nvcc wheel
        import nvidia.cu13  # noqa: F401

        path = os.path.join(list(nvidia.cu13.__path__)[0], "bin", "nvcc")
        return path if os.path.exists(path) else None
    except ImportError:
        return None


NVCC = _nvcc()


def entries_of(code):
    return re.findall(r'extern "C" __global__ void (\w+)\(', code)


def compile_with_clang(code, tmp_path, name):
    cu = tmp_path / f"{name}.cu"
    cu.write_text(code)
    ptx = tmp_path / f"{name}.ptx"
    result = subprocess.run([CLANG, *_cuda.clang_flags(), str(cu), "-o", str(ptx)], capture_output=True, text=True)
    assert result.returncode == 0, f"clang could not compile the CUDA translation of {name}:\n{result.stderr[-6000:]}"
    return ptx.read_text()


@pytest.mark.parametrize("path", TENSOR_SHADERS, ids=[os.path.basename(p) for p in TENSOR_SHADERS])
def test_tensor_op_shaders_have_no_cuda_translation(path):
    pytest.skip("Metal 4 tensor operations (matmul2d) have no CUDA translation; the cuda backend routes prefill to "
                "the simdgroup-matrix kernels")


@needs_clang
@pytest.mark.parametrize("path", SHADERS + SIM_FILES, ids=[os.path.basename(p) for p in SHADERS + SIM_FILES])
def test_translation_compiles_to_ptx_with_clang(tmp_path, path):
    code = _cuda.translate(path=path, include_dirs=[SHADER_DIR])
    entries = entries_of(code)
    assert entries, "no kernels found"
    ptx = compile_with_clang(code, tmp_path, os.path.basename(path))
    # One PTX entry per kernel and host name: nothing lost in the translation.
    assert sorted(re.findall(r"\.entry (\w+)\(", ptx)) == sorted(entries)


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (a CUDA toolkit, or pip install nvidia-cuda-nvcc)")
@pytest.mark.parametrize("path", SHADERS, ids=[os.path.basename(p) for p in SHADERS])
def test_translation_compiles_with_nvcc(tmp_path, path):
    if getattr(qmetal._core, "cuda_built", False):
        pytest.skip("this build compiled every translation with nvcc already (the cuda backend is built)")
    # Every 8th kernel: each family at several types, at an eighth of the time.
    code = _cuda.translate(path=path, include_dirs=[SHADER_DIR], chunk=(0, 8))
    cu = tmp_path / "kernels.cu"
    cu.write_text(code)
    result = subprocess.run([NVCC, *_cuda.nvcc_flags("sm_90"), "-cubin", "-O1", str(cu), "-o", str(tmp_path / "k.cubin")],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc could not compile the CUDA translation:\n{result.stderr[-6000:]}"


def _mlx_include():
    try:
        import mlx
    except ImportError:
        return None
    include = os.path.join(mlx.__path__[0], "include")
    return include if os.path.exists(os.path.join(include, "mlx", "backend", "metal", "kernels", "quantized.h")) else None


@needs_clang
@pytest.mark.skipif(_mlx_include() is None, reason="needs the mlx package with its Metal kernel headers")
def test_mlx_quantized_kernels_translate(tmp_path):
    from qmetal._bench import mlx_kernel_source

    source, names = mlx_kernel_source("float16", 64, 4)
    code = _cuda.translate(source=source, path="mlx_quantized.metal", include_dirs=[_mlx_include()])
    ptx = compile_with_clang(code, tmp_path, "mlx_quantized")
    assert sorted(re.findall(r"\.entry (\w+)\(", ptx)) == sorted(_cuda.entry_symbol(n) for n in names.values())


TILE_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "f32", "f16", "bf16"]


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (a CUDA toolkit, or pip install nvidia-cuda-nvcc)")
def test_tiles_are_staged_with_vector_stores(tmp_path):
    """Each thread's runs of the staged x and w tiles are whole float4s
    (tile::store4), and the translation must keep them so: an offset nvcc
    could not see to be a multiple of 4 floats turned the K-quants' w-tile
    stores of mul_mm into 16 scalar ones, and Q4_K's prefill from 1.42 to
    1.89 ms on the H200 (bench/README.md, session 9). Counted in nvcc's PTX:
    mul_mm stages 8 x values (2 float4s) and 16 w values (4) per thread and
    step, affine qmm_t and gather_qmm_sorted a pack of each (2 + 2)."""
    lines = ['#include "ggml.h"', '#include "affine.h"']
    lines += [f"QMETAL_GGML_ONE({kernel}, block_{t}, {t.lower()}, half, float16, half, float16)"
              for t in TILE_TYPES for kernel in ("mul_mm", "mul_mm_id")]
    lines += [f"QMETAL_AFFINE_ONE({kernel}, half, float16, 64, 4)" for kernel in ("qmm_t", "gather_qmm_sorted")]
    cu = tmp_path / "tiles.cu"
    cu.write_text(_cuda.translate(source="\n".join(lines) + "\n", path="tiles.metal", include_dirs=[SHADER_DIR]))
    result = subprocess.run([NVCC, *_cuda.nvcc_flags("sm_90"), "-ptx", "-O3", str(cu), "-o", str(tmp_path / "tiles.ptx")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-6000:]
    kernels = dict(re.findall(r"\.entry (\w+)\((.*?)\n}\n", (tmp_path / "tiles.ptx").read_text(), re.S))
    assert len(kernels) == 2 * len(TILE_TYPES) + 2
    for name, body in kernels.items():
        quads = len(re.findall(r"\bst\.shared\.v4\.", body))
        assert quads >= (4 if "affine" in name else 6), f"{name}: {quads} four-wide shared stores"


def test_bench_baseline_keeps_the_kernels_a_version_defines(tmp_path):
    """`bench --baseline DIR` instantiates this version's kernel names from
    DIR's headers; those DIR does not define (an earlier version's) are left
    to this version rather than failing the whole bench, as session 9's first
    baseline run did on a stale name."""
    import argparse

    from qmetal._bench import BASELINE_GGML_KERNELS, baseline_kernels_defined, baseline_source

    args = argparse.Namespace(format="q4_k", dtype="float16")
    source = baseline_source(args)
    kept, dropped = baseline_kernels_defined(source, SHADER_DIR)
    assert dropped == [] and kept == source  # every name is this version's
    # A version without mul_mv_ext_r4: an earlier one's headers, made here.
    older = tmp_path / "older"
    older.mkdir()
    for name in os.listdir(SHADER_DIR):
        if name.endswith(".h"):
            text = open(os.path.join(SHADER_DIR, name)).read()
            (older / name).write_text(text.replace("QMETAL_GGML_MV_EXT(4)\n", ""))
    kept, dropped = baseline_kernels_defined(source, str(older))
    assert dropped == ["ggml_mul_mv_ext_r4_q4_k_float16_float32", "ggml_mul_mv_ext_r4_q4_k_float16_float16"]
    assert "mul_mv_ext_r4" not in kept and kept.count("QMETAL_GGML_ONE(mul_mm,") == 2
    assert len(BASELINE_GGML_KERNELS) == 7


MSL = """
#include <metal_stdlib>
using namespace metal;
constant constexpr float kTable[4] = {1.0f, 2.0f, 3.0f, 4.0f};
struct Pair { float a; half b; float sum() const { return a + b; } };
template <typename T> inline T twice(T x) { return x + x; }
inline float forward_declared(float x);
inline float forward_declared(float x) { return x * 3.0f; }
kernel void simple(device float* out [[buffer(0)]], const device Pair* in [[buffer(1)]],
                   threadgroup float* scratch [[threadgroup(0)]],
                   uint i [[thread_position_in_grid]], uint lane [[thread_index_in_simdgroup]],
                   uint3 group [[threadgroup_position_in_grid]]) {
  threadgroup float tile[32];
  tile[lane] = in[i].sum();
  scratch[lane] = kTable[lane % 4];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[i] = simd_sum(tile[lane]) + twice(scratch[lane]) + forward_declared(float(group.x));
}
template <typename T>
kernel void templated(device T* out [[buffer(0)]], uint i [[thread_position_in_grid]]) { out[i] = T(i); }
template [[host_name("templated half")]] kernel void templated<half>(device half*, uint);
"""


def test_translation_rules():
    code = _cuda.translate(source=MSL, path="rules.metal")
    body = code[code.index('#include "qmetal_cuda/prelude.h"'):]
    # Every function is device code, kernels included; entries are __global__.
    assert re.search(r"__device__ inline T twice", body)
    assert re.search(r"__device__ inline float forward_declared\(float x\);", body)
    assert re.search(r"__device__ float sum\(\) const", body)
    # Kernels have internal linkage: each chunk and the simulator's C++ define their own.
    assert re.search(r"__device__ +static void __qmetal_kernel_simple", body)
    assert re.search(r"__device__ +static void __qmetal_kernel_templated", body)
    assert entries_of(code) == ["__qmetal_cuda_simple", "__qmetal_cuda_templated_x20half"]
    # Program-scope constants are device memory; threadgroup variables shared.
    assert "__device__ const constexpr float kTable" in body
    assert re.search(r"__shared__ .*unsigned char __qmetal_tg_1\[", body)
    # Bindings: buffers by index, [[threadgroup(0)]] in dynamic shared memory, positions from CUDA's indices.
    entry = body[body.index('extern "C" __global__ void __qmetal_cuda_simple'):]
    assert "__qmetal_p.buffers[0]" in entry and "__qmetal_p.buffers[1]" in entry
    assert "dynamic_threadgroup_memory + __qmetal_p.threadgroup_offsets[0]" in entry
    assert "thread_position_in_grid(__qmetal_p)" in entry and "thread_index_in_simdgroup()" in entry
    # The host table names kernels by host name.
    assert '{"templated half", reinterpret_cast<const void*>(&__qmetal_cuda_templated_x20half)}' in code
    # No address-space keyword survives (CUDA's __device__ would lose its own word).
    assert not re.search(r"(?<![\w_])(device|threadgroup|thread)(?![\w_])", body.split("#line 1 \"rules.metal (CUDA")[0]
                         .replace("mem_threadgroup", ""))


def test_entry_symbols_are_c_identifiers():
    assert _cuda.entry_symbol("affine_qmv_float16_gs64_b4") == "__qmetal_cuda_affine_qmv_float16_gs64_b4"
    assert _cuda.entry_symbol("a b/c") == "__qmetal_cuda_a_x20b_x2Fc"
    assert re.fullmatch(r"\w+", _cuda.entry_symbol("é"))


@needs_clang
def test_translation_of_rules_compiles(tmp_path):
    compile_with_clang(_cuda.translate(source=MSL, path="rules.metal"), tmp_path, "rules")


def test_cuda_backend_status_is_reported():
    status = qmetal._core.backend_status("cuda")
    assert status.startswith(("available:", "not usable:", "not part of this build"))
    if not getattr(qmetal._core, "cuda_built", False):
        assert status.startswith("not part of this build")
        with pytest.raises(ValueError, match="'cuda' is not available in this build"):
            qmetal.get_device("cuda")
