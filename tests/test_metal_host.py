"""What of the Metal backend can be checked without a Mac: the Objective-C++
files against our transcription of Apple's declarations (a wrong selector,
type or ARC mistake fails), and the macOS build's files agreeing with each
other (paths, kernel library name, deployment target)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

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
    assert "offset:view.offset atIndex:" in text
    stream.write_text(text.replace("offset:view.offset atIndex:", "offset:view.offset index:"))
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
    assert "runs-on: macos-14" in workflow and "python -m qmetal selftest" in workflow
    assert 'archs = ["arm64"]' in pyproject
