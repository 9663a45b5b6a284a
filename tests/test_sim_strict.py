"""Strict MSL: the simulator rejects what Apple's compiler rejects, at the
right .metal line, and accepts valid MSL that plain C++ mishandles.

Each file under tests/sim/msl_rules/ breaks one rule of MSL 3.1 (its id in
../shared/design/MSL_RULES.md is the file name's prefix); its second line says
what the error must say and `// <- error` marks the line it must name."""

from __future__ import annotations

import glob
import os
import re
import shutil

import numpy as np
import pytest

import qmetal.sim as sim
from qmetal.sim import _generator

HERE = os.path.dirname(__file__)
RULES = sorted(glob.glob(os.path.join(HERE, "sim", "msl_rules", "*.metal")))
SHADERS = sorted(glob.glob(os.path.join(HERE, "..", "shaders", "*.metal")))
VALID = os.path.join(HERE, "sim", "valid_msl.metal")

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None, reason="needs a C++ compiler")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("strict-cache")


def expectation(path):
    lines = open(path).read().splitlines()
    message = next(line.split("expect:", 1)[1].strip() for line in lines if "expect:" in line)
    line = next(i + 1 for i, text in enumerate(lines) if "// <- error" in text)
    return message, line


def test_every_rule_case_is_here():
    assert len(RULES) >= 38
    rules = {os.path.basename(p).split("_")[0] for p in RULES}
    for rule in ("A-1", "A-2", "A-3", "A-4", "A-6", "A-7", "A-8", "A-9", "B-1", "B-3", "B-10", "B-11", "C-1",
                 "D-1", "D-2", "D-3", "D-4", "D-5", "D-7", "E-1", "G-1"):
        assert rule in rules


@pytest.mark.parametrize("path", RULES, ids=[os.path.basename(p)[:-6] for p in RULES])
def test_rule_is_rejected_at_its_line(path, cache):
    message, line = expectation(path)
    with pytest.raises(sim.CompileError) as error:
        sim.compile(path, cache_dir=cache)
    text = str(error.value)
    assert message in text, text
    assert re.search(re.escape(os.path.basename(path)) + rf":{line}\b", text), text


@pytest.mark.parametrize("path", [p for p in RULES if os.path.basename(p).split("_")[0] in ("A-2", "A-4", "A-8",
                                                                                              "D-1")],
                         ids=lambda p: os.path.basename(p)[:-6])
def test_plain_cxx_would_have_accepted_it(path, cache):
    """The rules are the simulator's own: without them these compile."""
    sim.compile(path, cache_dir=cache, strict=False)


@pytest.mark.parametrize("path", SHADERS, ids=[os.path.basename(p) for p in SHADERS])
def test_every_shader_passes_the_strict_front_end(path):
    text = _generator.preprocess(path, os.environ.get("CXX", "c++"), [os.path.dirname(path)])
    code = _generator.generate(text, display_name=os.path.basename(path), strict=True)
    assert "__qmetal_entry_0" in code


def test_threadgroup_in_helper_is_the_round_one_bug(cache, tmp_path):
    """The shape round 1 shipped: a tile declared in a template helper."""
    source = tmp_path / "helper_tile.metal"
    source.write_text("#include <metal_stdlib>\nusing namespace metal;\n"
                      "template <typename T>\nvoid stage(device T* out, uint lane) {\n"
                      "  threadgroup T tile[32];\n  tile[lane] = T(lane);\n"
                      "  threadgroup_barrier(mem_flags::mem_threadgroup);\n  out[lane] = tile[31 - lane];\n}\n"
                      "kernel void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_threadgroup]]) {\n"
                      "  stage(out, lane);\n}\n")
    with pytest.raises(sim.CompileError, match=r"helper_tile\.metal:5: error: variables in the threadgroup"):
        sim.compile(source, cache_dir=cache)


def test_valid_msl_runs(cache, rng):
    lib = sim.compile(VALID, cache_dir=cache)
    params = np.zeros(2, dtype=np.uint32)
    params[0] = 7
    params.view(np.float32)[1] = 0.5
    values = rng.uniform(1, 2, size=8).astype(np.float32)
    table = rng.uniform(1, 2, size=4).astype(np.float32)
    out = np.zeros(16, dtype=np.float32)
    lib.launch("address_spaces", [params, values, table, out], grid=(1,), threadgroup=(32,))
    expected = [values[0] + 100, 1.0 + 200, table[0] + 300, 5.0 + 400, values[1] + 100, 3.0 + 200,
                values[0] * 2, 4.0 * 3, values[0] * 2, 0.5 * values[1], 7]
    np.testing.assert_allclose(out[:11], np.float32(expected), rtol=1e-6)


def test_undecidable_overload_is_an_error(cache):
    source = ("#include <metal_stdlib>\nusing namespace metal;\n"
              "float tag(const device float* p) { return 1.0f; }\nfloat tag(const threadgroup float* p) { return 2.0f; }\n"
              "template <typename P> float call(P p) { return tag(p); }\n"
              "kernel void k(device float* out [[buffer(0)]]) { out[0] = call(out); }\n")
    with pytest.raises(sim.CompileError, match=r"cannot tell which address-space overload of 'tag'"):
        sim.compile(source, cache_dir=cache)


def test_strict_false_is_an_explicit_opt_out(cache):
    source = ("#include <metal_stdlib>\nusing namespace metal;\n"
              "float first(const float* v) { return v[0]; }\n"
              "kernel void k(device float* out [[buffer(0)]]) { out[0] = first(out); }\n")
    with pytest.raises(sim.CompileError, match="pointer type must have explicit address space qualifier"):
        sim.compile(source, cache_dir=cache)
    lib = sim.compile(source, cache_dir=cache, strict=False)
    out = np.full(1, 3.0, dtype=np.float32)
    lib.launch("k", [out], grid=(1,), threadgroup=(1,))
    assert out[0] == 3.0


def test_stage_in_grid_attributes_are_refused(cache):
    source = ("#include <metal_stdlib>\nusing namespace metal;\n"
              "kernel void k(device float* out [[buffer(0)]], uint2 size [[grid_size]]) { out[0] = float(size.x); }\n")
    with pytest.raises(sim.CompileError, match=r"\[\[grid_size\]\] arguments are not supported"):
        sim.compile(source, cache_dir=cache)
