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
  float host[8] = {1, 2, 3, 4, 5, 6, 7, 8};
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
