"""find_package(qmetal) for C++ users: a small CMake project of a user's own
is configured against the INSTALLED package (qmetal.cmake_dir(), or the
wheel's qmetal folder on CMAKE_PREFIX_PATH), built, and run: it quantizes
a weight and multiplies with it through qmetal::qmetal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import qmetal

pytestmark = [
    pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake"),
    pytest.mark.skipif(shutil.which("c++") is None and shutil.which("clang++") is None, reason="no C++ compiler"),
]

CMAKELISTS = """
cmake_minimum_required(VERSION 3.18)
project(qmetal_consumer LANGUAGES CXX)
find_package(qmetal 0.1 CONFIG REQUIRED)
message(STATUS "qmetal ${qmetal_VERSION} at ${qmetal_DIR}; metal: ${qmetal_HAS_METAL}")
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE qmetal::qmetal)
qmetal_copy_metallib(consumer)
target_compile_definitions(consumer PRIVATE QMETAL_CMAKE_VERSION="${qmetal_VERSION}")
"""

MAIN = r"""
#include <qmetal/ops.h>
#include <qmetal/qmetal.h>
#include <cmath>
#include <cstdio>
#include <cstring>

int main() {
  qmetal::initialize();
  auto device = qmetal::default_device();
  const int n = 16, k = 128;
  auto w = qmetal::Buffer::allocate(qmetal::DType::f32, {n, k});
  auto x = qmetal::Buffer::allocate(qmetal::DType::f32, {1, k});
  float* wp = static_cast<float*>(w->data());
  float* xp = static_cast<float*>(x->data());
  for (int i = 0; i < n * k; ++i) wp[i] = std::sin(0.37f * i);
  for (int i = 0; i < k; ++i) xp[i] = std::cos(0.11f * i);
  auto q = qmetal::affine_quantize(*device, w, 4, 64);
  auto dense = qmetal::affine_dequantize(*device, q);
  auto y = qmetal::affine_matmul(*device, x, q, true);
  const float* yp = static_cast<const float*>(y->data());
  const float* dp = static_cast<const float*>(dense->data());
  double worst = 0;
  for (int r = 0; r < n; ++r) {
    double expected = 0;
    for (int i = 0; i < k; ++i) expected += double(dp[r * k + i]) * xp[i];
    worst = std::fmax(worst, std::fabs(expected - yp[r]));
  }
  std::printf("%s %s %.3g\n", qmetal::version(), QMETAL_CMAKE_VERSION, worst);
  return std::strcmp(qmetal::version(), QMETAL_CMAKE_VERSION) == 0 && worst < 1e-3 ? 0 : 1;
}
"""


def _project(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "CMakeLists.txt").write_text(CMAKELISTS)
    (source / "main.cpp").write_text(MAIN)
    return source


def _configure(source, build, *defines):
    # A clean environment for CMake: no prefix path or qmetal_DIR leaking in.
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_PREFIX_PATH", "qmetal_DIR", "qmetal_ROOT")}
    result = subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", *defines],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_cmake_dir_holds_the_package():
    folder = qmetal.cmake_dir()
    assert os.path.isfile(os.path.join(folder, "qmetalConfig.cmake")), \
        f"{folder} has no qmetalConfig.cmake: the installed wheel predates the CMake package (reinstall qmetal)"
    assert os.path.isfile(os.path.join(folder, "qmetalConfigVersion.cmake"))
    printed = subprocess.run([sys.executable, "-m", "qmetal", "--cmake_dir"], capture_output=True, text=True)
    assert printed.stdout.strip() == folder


def test_find_package_builds_and_runs_a_program(tmp_path):
    source = _project(tmp_path)
    build = tmp_path / "build"
    stdout = _configure(source, build, f"-Dqmetal_DIR={qmetal.cmake_dir()}")
    assert f"qmetal {qmetal.__version__} at " in stdout
    result = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run([str(build / "consumer")], capture_output=True, text=True,
                         env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert run.returncode == 0, run.stdout + run.stderr
    version, cmake_version, worst = run.stdout.split()
    assert version == cmake_version == qmetal.__version__ and float(worst) < 1e-3


def test_found_through_the_prefix_path(tmp_path):
    """The wheel's qmetal folder as a prefix: CMake's own search finds
    lib/cmake/qmetal under it."""
    source = _project(tmp_path)
    stdout = _configure(source, tmp_path / "build", f"-DCMAKE_PREFIX_PATH={os.path.dirname(qmetal.__file__)}")
    assert f"qmetal {qmetal.__version__} at " in stdout and "lib/cmake/qmetal" in stdout


def test_a_newer_version_is_not_found(tmp_path):
    source = _project(tmp_path)
    (source / "CMakeLists.txt").write_text(CMAKELISTS.replace("find_package(qmetal 0.1 ", "find_package(qmetal 99.0 "))
    result = subprocess.run(["cmake", "-S", str(source), "-B", str(tmp_path / "build"),
                             f"-Dqmetal_DIR={qmetal.cmake_dir()}"], capture_output=True, text=True)
    assert result.returncode != 0 and "99.0" in result.stderr


BENCH_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "cpp")


def test_cpp_benchmarks_build_and_run_one_case(tmp_path):
    """bench/cpp against the installed package and Google Benchmark (skipped
    where Google Benchmark is not installed; CI installs it): one short
    decode case, its JSON with the counters tooling reads."""
    build = tmp_path / "bench"
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_PREFIX_PATH", "qmetal_DIR")}
    configure = subprocess.run(["cmake", "-S", BENCH_SOURCE, "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                                f"-Dqmetal_DIR={qmetal.cmake_dir()}"], capture_output=True, text=True, env=env)
    if configure.returncode != 0 and 'provided by "benchmark"' in configure.stderr:
        pytest.skip("Google Benchmark is not installed (libbenchmark-dev, brew install google-benchmark)")
    assert configure.returncode == 0, configure.stdout + configure.stderr
    result = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run([str(build / "qmetal_bench"), "--benchmark_filter=^affine_q4_g64/attn_kv/M:1/",
                          "--benchmark_min_time=0.01", "--benchmark_format=json"],
                         capture_output=True, text=True, env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["context"]["qmetal_version"] == qmetal.__version__
    assert report["context"]["qmetal_backend"] == "sim"
    (case,) = report["benchmarks"]
    assert case["name"] == "affine_q4_g64/attn_kv/M:1/real_time" and not case.get("error_occurred")
    assert case["label"] == "affine_qmv_fast_float16_gs64_b4"
    assert (case["M"], case["N"], case["K"]) == (1, 128, 512)  # Llama-3-8B's k/v projection / 8 on the simulator
    assert case["bytes_per_second"] > 0 and case["FLOP/s"] > 0
