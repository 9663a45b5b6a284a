"""What of the Metal backend can be checked without a Mac: the Objective-C++
files against our transcription of Apple's declarations (a wrong selector,
type or ARC mistake fails), and the macOS build's files agreeing with each
other (paths, kernel library name, deployment target)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
CHECK = os.path.join(ROOT, "tests", "metal_host", "check.sh")
CLANG = os.environ.get("CLANG", "clang++-19")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


@pytest.mark.skipif(shutil.which(CLANG) is None, reason=f"needs {CLANG} (apt-get install clang-19)")
def test_objective_cpp_backend_passes_the_syntax_check():
    result = subprocess.run(["sh", CHECK], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = re.findall(r"^ok: (\S+)$", result.stdout, re.MULTILINE)
    on_disk = [f"csrc/metal/{name}" for name in os.listdir(os.path.join(ROOT, "csrc", "metal")) if name.endswith(".mm")]
    on_disk += [f"csrc/ops/{name}" for name in os.listdir(os.path.join(ROOT, "csrc", "ops")) if name.endswith(".cpp")]
    assert sorted(checked) == sorted(on_disk)


@pytest.mark.skipif(shutil.which(CLANG) is None, reason=f"needs {CLANG} (apt-get install clang-19)")
def test_syntax_check_catches_a_wrong_selector(tmp_path):
    # The check is only worth something if it fails: a copy of the tree with
    # one selector misspelled must be rejected.
    bad = tmp_path / "tree"
    for folder in ("csrc", "shaders", os.path.join("tests", "metal_host")):
        shutil.copytree(os.path.join(ROOT, folder), bad / folder)
    stream = bad / "csrc" / "metal" / "stream.mm"
    text = stream.read_text()
    assert "offset:views[i].offset atIndex:" in text
    stream.write_text(text.replace("offset:views[i].offset atIndex:", "offset:views[i].offset index:"))
    result = subprocess.run(["sh", str(bad / "tests" / "metal_host" / "check.sh")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 0
    assert "setBuffer:offset:index:" in result.stdout + result.stderr


def test_macos_build_files_agree():
    cmake = read("CMakeLists.txt")
    pyproject = read("pyproject.toml")
    workflow = read(os.path.join(".github", "workflows", "macos.yml"))
    target = re.search(r"set\(QMETAL_MACOS_DEPLOYMENT_TARGET ([\d.]+)\)", cmake).group(1)
    assert f'MACOSX_DEPLOYMENT_TARGET = "{target}"' in pyproject
    assert "-mmacosx-version-min=${QMETAL_MACOS_DEPLOYMENT_TARGET}" in cmake
    # Every .mm file is built on macOS, and the metallib is installed where
    # the backend looks for it (next to the extension module).
    for name in os.listdir(os.path.join(ROOT, "csrc", "metal")):
        if name.endswith(".mm"):
            assert f"csrc/metal/{name}" in cmake, name
    assert "install(FILES ${QMETAL_METALLIB} DESTINATION qmetal)" in cmake
    assert "install(TARGETS _core LIBRARY DESTINATION qmetal)" in cmake
    assert 'kMetallibName = "qmetal.metallib"' in read(os.path.join("csrc", "metal", "library.mm"))
    assert "qmetal.metallib" in cmake
    assert 'archs = ["arm64"]' in pyproject
    # CoreGraphics, or MTLCreateSystemDefaultDevice() is nil in `python`.
    assert '"-framework CoreGraphics"' in cmake
    # Users' builds do not fail on a Metal compiler warning; CI's do.
    assert re.search(r'option\(QMETAL_METAL_WERROR "[^"]*" OFF\)', cmake)
    assert re.search(r'option\(QMETAL_BUILD_METAL "[^"]*" ON\)', cmake)
    assert "if(APPLE AND QMETAL_BUILD_METAL)" in cmake
    metal_flags = re.search(r"set\(QMETAL_METAL_FLAGS ([^)]*)\)", cmake).group(1)
    assert "-Werror" not in metal_flags and "-std=metal3.1" in metal_flags and "-fno-fast-math" in metal_flags
    assert "QMETAL_METAL_WERROR=ON" in workflow


def test_macos_workflow_runs_where_runners_exist():
    workflow = read(os.path.join(".github", "workflows", "macos.yml"))
    target = re.search(r"set\(QMETAL_MACOS_DEPLOYMENT_TARGET ([\d.]+)\)", read("CMakeLists.txt")).group(1)
    # macos-14 images are retired (actions/runner-images#13518).
    assert "macos-14" not in workflow
    assert "macos-15" in workflow and "macos-26" in workflow
    # Xcode 26 ships the Metal compiler as a separate component.
    assert "xcodebuild -downloadComponent MetalToolchain" in workflow
    # Every shader through Apple's compiler, warnings as errors, at the
    # build's deployment target.
    assert "for shader in shaders/*.metal" in workflow
    assert "-std=metal3.1 -fno-fast-math -Wall -Werror" in workflow
    assert f"-mmacosx-version-min={target}" in workflow
    assert re.search(r"cibuildwheel==\d+\.\d+\.\d+", workflow)
    # The real GPU: a self-hosted Apple-silicon job, opt-in by a variable.
    assert "runs-on: [self-hosted, macOS, ARM64]" in workflow
    assert "python\" -m qmetal selftest --backend metal" in workflow
    assert "continue-on-error" not in workflow


def test_metal_library_identity_agrees():
    # CMake names a kernel after the shaders' hash and passes the same name to
    # the backend, which refuses a metallib without it (a stale one).
    cmake = read("CMakeLists.txt")
    assert 'QMETAL_LIBRARY_ID="${QMETAL_LIBRARY_ID}"' in cmake
    assert "kernel void ${QMETAL_LIBRARY_ID}(" in cmake
    assert "foreach(shader ${QMETAL_SHADERS} ${QMETAL_LIBRARY_ID_SOURCE})" in cmake
    assert "newFunctionWithName:marker" in read(os.path.join("csrc", "metal", "library.mm"))


FAKE_XCRUN = """#!/bin/sh
if [ -n "$FAKE_XCRUN_ERROR" ]; then echo "$FAKE_XCRUN_ERROR" >&2; exit 1; fi
case "$*" in *" -E "*) printf '\\n310\\n';; esac
"""


def configure_as_macos(tmp_path, xcrun_error="", deployment_target=None):
    """CMake's configure step of CMakeLists.txt as on a Mac (APPLE set, a
    stand-in xcrun): only the configure-time logic, nothing is built."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "xcrun").write_text(FAKE_XCRUN)
    (bin_dir / "xcrun").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_XCRUN_ERROR": xcrun_error}
    env.pop("MACOSX_DEPLOYMENT_TARGET", None)
    if deployment_target:
        env["MACOSX_DEPLOYMENT_TARGET"] = deployment_target
    build = tmp_path / "build"
    return subprocess.run(["cmake", "-S", ROOT, "-B", str(build), "-DAPPLE=1", "-DSKBUILD_PROJECT_VERSION=0.0.0",
                           f"-DCMAKE_OBJCXX_COMPILER={shutil.which(CLANG)}"],
                          capture_output=True, text=True, env=env, timeout=300), build


needs_cmake = pytest.mark.skipif(
    sys.platform == "darwin" or shutil.which("cmake") is None or shutil.which(CLANG) is None,
    reason=f"needs cmake and {CLANG}, off macOS (where the stand-in xcrun would hide the SDK; the real build checks it)")


@needs_cmake
def test_configure_names_the_fix_when_the_metal_compiler_is_missing(tmp_path):
    error = "error: cannot execute tool 'metal' due to missing Metal Toolchain"
    result, _ = configure_as_macos(tmp_path, xcrun_error=error)
    assert result.returncode != 0
    out = " ".join((result.stdout + result.stderr).split())
    assert error in out
    assert "xcodebuild -downloadComponent MetalToolchain" in out
    assert "QMETAL_BUILD_METAL=OFF" in out


@needs_cmake
def test_configure_refuses_a_deployment_target_below_14(tmp_path):
    result, _ = configure_as_macos(tmp_path, deployment_target="13.0")
    assert result.returncode != 0
    assert "qmetal needs macOS 14.0 or later" in " ".join(result.stderr.split())


@needs_cmake
def test_configure_names_the_library_after_the_shaders(tmp_path):
    result, build = configure_as_macos(tmp_path, deployment_target="15.0")
    assert result.returncode == 0, result.stdout + result.stderr
    source = (build / "metal" / "qmetal_library_id.metal").read_text()
    name = re.search(r"kernel void (qmetal_library_[0-9a-f]{16})\(", source).group(1)
    flags = (build / "CMakeFiles" / "qmetal_metal.dir" / "flags.make").read_text()
    assert f'-DQMETAL_LIBRARY_ID=\\"{name}\\"' in flags
