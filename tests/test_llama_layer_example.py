"""examples/llama_layer.py, as a user runs it: one Llama decoder layer from
a GGUF file (Q4_K/Q6_K, written with gguf.GGUFWriter) and from an MLX
directory, each within its tolerance of float64 on the dequantized
weights, with the time split per op."""

import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "llama_layer.py")


def test_llama_layer_example_runs_and_agrees():
    pytest.importorskip("gguf")
    result = subprocess.run([sys.executable, EXAMPLE, "--tokens", "5"], capture_output=True, text=True,
                            env={**os.environ, "QMETAL_BACKEND": "sim"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("GGUF (Q4_K_M mix): relative error") and "(ok," in line for line in lines)
    assert any(line.startswith("MLX (affine, float16): relative error") and "(ok," in line for line in lines)
    for op in ("q_proj", "o_proj", "down_proj", "attention", "rope", "rms_norm", "swiglu"):
        assert sum(line.split()[0] == op for line in lines if line.startswith("  ")) == 2, op
    assert any(line.split()[-1] == "Q6_K" for line in lines if line.startswith("  down_proj"))
    assert any(line.endswith("affine 8-bit g64") for line in lines if line.startswith("  down_proj"))
