"""The C++ library and headers installed in the wheel build and link into a
program of a user's own (the embedding path), compiled here with the system
compiler."""

import os
import shutil
import subprocess

import pytest

import qmetal

PROGRAM = r"""
#include <qmetal/qmetal.h>
#include <cstdio>
#include <cstring>

struct ExampleArgs { uint32_t n; float alpha; };

int main() {
  auto device = qmetal::default_device();
  alignas(qmetal::kKernelLoadAlignment) float host[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  auto wrapped = qmetal::Buffer::wrap(host, qmetal::DType::f32, {8}, nullptr, alignof(float), false);
  static_cast<float*>(wrapped->data())[0] = 42.0f;  // aliases host memory
  auto out = qmetal::Buffer::allocate(qmetal::DType::f32, {2, 4});

  qmetal::DispatchPlan plan;
  plan.kernel = "example";
  plan.set_args(ExampleArgs{8, 0.5f});
  plan.bind(qmetal_args::kFirstDataBufferIndex, wrapped, qmetal::Access::read);
  plan.bind(qmetal_args::kFirstDataBufferIndex + 1, out, qmetal::Access::write);
  plan.grid = {1, 1, 1};
  plan.threadgroup = {2048, 1, 1};
  try {
    plan.validate(device->capabilities());
    return 1;
  } catch (const qmetal::Error& e) {
    if (e.kind() != qmetal::ErrorKind::value) return 2;
    std::printf("rejected: %s\n", e.what());
  }
  plan.threadgroup = {256, 1, 1};
  plan.validate(device->capabilities());
  std::printf("%s %s %g %zu %d\n", qmetal::version(), std::string(qmetal::backend_name(device->backend())).c_str(),
              host[0], plan.args.size(), int(wrapped->copied()));
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_cpp_program_links_against_installed_library(tmp_path):
    source = tmp_path / "example.cpp"
    source.write_text(PROGRAM)
    binary = tmp_path / "example"
    subprocess.run(["c++", "-std=c++17", "-I", qmetal.get_include(), str(source), qmetal.get_library(),
                    "-o", str(binary)], check=True, capture_output=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rejected: example: threadgroup of 2048 threads exceeds the device limit of 1024"
    assert lines[1] == f"{qmetal.__version__} sim 42 8 0"


OPS_PROGRAM = r"""
#include <qmetal/ops.h>
#include <qmetal/qmetal.h>
#include <cmath>
#include <cstdio>

// A C++ user's decode step: quantize a weight, multiply, check against a
// plain loop over the dequantized weight.
int main() {
  qmetal::initialize();
  auto device = qmetal::default_device();
  const int n = 24, k = 256;
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
  std::printf("%s %d %.3g\n", qmetal::affine_kernel_name("qmv", qmetal::DType::f32, 64, 4).c_str(),
              int(y->shape()[1]), worst);
  return worst < 1e-3 ? 0 : 1;
}
"""


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_cpp_program_runs_ops(tmp_path):
    source = tmp_path / "ops.cpp"
    source.write_text(OPS_PROGRAM)
    binary = tmp_path / "ops"
    libraries = [qmetal.get_library(name) for name in ("ops", "sim", "core")]
    subprocess.run(["c++", "-std=c++17", "-I", qmetal.get_include(), str(source), *libraries, "-pthread", "-ldl",
                    "-o", str(binary)], check=True, capture_output=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True, env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    name, n, worst = result.stdout.split()
    assert name == "affine_qmv_float32_gs64_b4" and n == "24" and float(worst) < 1e-3
