"""The cost report (`python -m qmetal cost`): decode inner loops counted in
LLVM IR, ours next to MLX's qdot from the installed mlx headers. Our decode
must not spend more quarter-rate operations (int<->float converts, shifts,
64-bit integer ops) per weight byte than MLX's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qmetal import _cost

pytestmark = pytest.mark.skipif(_cost.find_clang() is None, reason="the cost report needs clang++ (apt install clang-19)")

needs_mlx = pytest.mark.skipif(_cost.mlx_include() is None, reason="mlx's Metal headers are not installed")


@pytest.fixture(scope="module")
def costs():
    return {c.name: c for c in _cost.measure()}


@needs_mlx
@pytest.mark.parametrize("bits", _cost.AFFINE_BITS)
def test_affine_decode_is_at_or_below_mlx_per_weight_byte(costs, bits):
    ours, mlx = costs[f"ours affine {bits}-bit"], costs[f"mlx affine {bits}-bit"]
    assert ours.ops_64bit == 0 and ours.shifts_variable == 0, ours
    assert ours.quarter_rate_per_byte <= mlx.quarter_rate_per_byte, (ours, mlx)
    # Whole 32-bit words: never more load instructions per byte than MLX.
    assert sum(ours.loads.values()) / ours.weight_bytes <= sum(mlx.loads.values()) / mlx.weight_bytes
    assert set(ours.loads) == {"i32"}, ours.loads


@needs_mlx
@pytest.mark.parametrize("ggml_type", [t[0] for t in _cost.GGML_TYPES])
def test_ggml_decode_is_at_or_below_mlx_per_weight_byte(costs, ggml_type):
    """Each GGML type against MLX's affine kernel of about its bits per weight.
    No 64-bit integer work and no per-value variable shifts: at most one per
    32-bit word of weight bytes (Q5_K moves its fifth bits by the part's
    sub-block once per word; the part's index is read at run time)."""
    ours = costs[f"ours ggml {ggml_type}"]
    mlx = next(c for c in costs.values() if c.owner == "mlx" and c.family == ours.family)
    assert ours.ops_64bit == 0 and ours.shifts_variable * 4 <= ours.weight_bytes, ours
    assert ours.quarter_rate_per_byte <= mlx.quarter_rate_per_byte, (ours, mlx)


@needs_mlx
def test_the_report_sees_what_the_review_found():
    """The loop of the first round's qmv_fast (KERNEL_DESIGN_AUDIT.md F1): a
    pack assembled in 64 bits from byte loads, each code masked in place and
    converted from 64 bits. The report must flag it against MLX."""
    old = _cost.Probe("old affine 4-bit", "affine 4-bit", "ours", 4, "uint8_t", """
  ulong stream = 0;
  for (int i = 0; i < 4; ++i) stream |= ulong(w[i]) << (8 * i);
  float dot = 0.0f;
  for (int j = 0; j < 8; ++j) dot += float(stream & (ulong(15) << (4 * j))) * x[j];
  y[0] = dot;""")
    mlx = next(p for p in _cost.affine_probes() if p.name == "mlx affine 4-bit")
    old_cost, mlx_cost = _cost.measure([old, mlx])
    assert old_cost.ops_64bit > 0
    assert old_cost.loads == {"i8": 4}
    assert old_cost.quarter_rate_per_byte > mlx_cost.quarter_rate_per_byte


def test_counting_rules():
    ir = """
  %1 = load i32, ptr %0, align 4
  %2 = load <2 x i16>, ptr %0, align 4
  %3 = load float, ptr %x, align 4
  %4 = lshr i32 %1, 4
  %5 = shl i32 %1, %s
  %6 = and i64 %w, 255
  %7 = uitofp i64 %6 to float
  %8 = uitofp nneg i32 %4 to float
  %9 = getelementptr inbounds i8, ptr %0, i64 4
  %10 = tail call i32 @llvm.fshl.i32(i32 %1, i32 %1, i32 %s)
  call void @llvm.lifetime.start.p0(i64 8, ptr %p)
  br label %next
"""
    cost = _cost.count_function(ir, _cost.Cost("t", "t", "ours", 4))
    assert cost.loads == {"i32": 2}
    assert (cost.shifts_constant, cost.shifts_variable) == (1, 2)
    assert cost.converts == 2
    assert cost.ops_64bit == 2  # the i64 AND and the i64 conversion
    assert cost.instructions == 9  # not the GEP, the lifetime marker or the branch


def test_command_line_json():
    result = subprocess.run([sys.executable, "-m", "qmetal", "cost", "--json"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    ours = [r for r in rows if r["owner"] == "ours"]
    assert {r["family"] for r in ours} >= {f"affine {b}-bit" for b in _cost.AFFINE_BITS}
    for row in rows:
        assert row["weight_bytes"] > 0 and row["instructions"] > 0
        assert row["quarter_rate_per_byte"] == pytest.approx(row["quarter_rate"] / row["weight_bytes"], abs=1e-4)
