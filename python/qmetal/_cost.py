"""``python -m qmetal cost``: what the decode inner loops cost per weight byte.

Decode (M = 1) should be bound by memory bandwidth, but on Apple GPUs the
budget of "complex" ALU operations per weight byte is small: integer<->float
conversions, shifts and bit-field extracts run at a quarter of the FMA rate
(a variable right shift at an eighth), and there is no 64-bit integer ALU
(KERNEL_DESIGN_AUDIT.md, section 0, after Philip Turner's M1/M2
measurements). Apple's compiler is not available here, but Metal's AIR is
LLVM IR after LLVM's mid-level passes, so the IR that clang -O2 makes of the
same code is a fair proxy for what reaches Apple's backend.

Each probe is a tiny kernel that runs one lane's step of one row of a decode
kernel: the function the kernel calls per row and step (ours from
``shaders/``, MLX's ``qdot`` from the headers of the installed ``mlx``
package), with activations taken as given (they are pre-scaled once per
step and shared by all rows, so they are not part of the per-row cost).
The probes go through the simulator's own front end (the same shim and
generator as every test), are compiled together to LLVM IR with
``clang++ -O2`` (no vectorizers: a GPU lane is scalar), and each probe's
function is counted: weight loads by width (integer loads: activations,
scales and biases are floating point), int<->float conversions, shifts
(constant amount and variable), 64-bit integer operations, all
instructions. "Quarter-rate ops / byte" adds conversions, shifts and 64-bit
operations and divides by the weight bytes the step consumes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field

from .sim import _generator

SHADERS = os.path.join(os.path.dirname(__file__), "shaders")
# The installed package keeps the shaders beside the module; a source tree
# keeps them at the top.
if not os.path.isdir(SHADERS):
    SHADERS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shaders"))

AFFINE_BITS = (2, 3, 4, 5, 6, 8)


@dataclass
class Probe:
    """One lane's step of one row: `body` (MSL statements) reads weights from
    `w` and activations from `x` (float) and stores a float in `y[0]`."""

    name: str           # e.g. "ours affine 4-bit"
    family: str         # what it is compared within, e.g. "affine 4-bit"
    owner: str          # "ours" or "mlx"
    weight_bytes: float  # weight bytes one call consumes (on average)
    weight_type: str    # the MSL element type of `w`
    body: str


@dataclass
class Cost:
    name: str
    family: str
    owner: str
    weight_bytes: float
    loads: dict = field(default_factory=dict)   # weight loads by bit width
    converts: int = 0
    shifts_constant: int = 0
    shifts_variable: int = 0
    ops_64bit: int = 0
    instructions: int = 0

    @property
    def quarter_rate(self) -> int:
        return self.converts + self.shifts_constant + self.shifts_variable + self.ops_64bit

    @property
    def quarter_rate_per_byte(self) -> float:
        return self.quarter_rate / self.weight_bytes

    def as_dict(self) -> dict:
        out = asdict(self)
        out["quarter_rate"] = self.quarter_rate
        out["quarter_rate_per_byte"] = round(self.quarter_rate_per_byte, 4)
        return out


# --- probes -------------------------------------------------------------------------------


def affine_values_per_step(bits: int) -> int:
    """Codes one lane of our qmv decodes per row and step (affine::WordStep)."""
    return 16 if bits % 2 == 0 else 32


def mlx_values_per_thread(bits: int) -> int:
    """MLX's qmv_fast_impl: pack_factor (32-bit packs) x packs_per_thread."""
    pack_factor = 8 if bits in (3, 5) else 4 if bits == 6 else 32 // bits
    return pack_factor * (1 if bits <= 2 else 2)


def affine_probes() -> list[Probe]:
    probes = []
    for bits in AFFINE_BITS:
        values = affine_values_per_step(bits)
        probes.append(Probe(
            f"ours affine {bits}-bit", f"affine {bits}-bit", "ours", values * bits // 8, "uint32_t",
            f"""  affine::ScaledActivations<{bits}> xs;
  for (int j = 0; j < {values}; ++j) {{ xs.low[j] = x[j]; xs.high[j] = x[{values} + j]; }}
  xs.sum = x[{2 * values}];
  y[0] = x[{2 * values + 1}] * affine::dot_words<{bits}>(w, xs) + x[{2 * values + 2}] * xs.sum;"""))
        values = mlx_values_per_thread(bits)
        probes.append(Probe(
            f"mlx affine {bits}-bit", f"affine {bits}-bit", "mlx", values * bits // 8, "uint8_t",
            f"""  thread float xt[{values}];
  for (int j = 0; j < {values}; ++j) xt[j] = x[j];
  y[0] = qdot<float, {values}, {bits}>(w, xt, x[{values}], x[{values} + 1], x[{values} + 2]);"""))
    return probes


# GGML block types: (type, bytes per block, values per block, the MLX
# width of about the same bits per weight, which it is compared with).
GGML_TYPES = [
    ("q4_0", 18, 32, 4), ("q4_1", 20, 32, 4), ("q5_0", 22, 32, 5), ("q5_1", 24, 32, 5), ("q8_0", 34, 32, 8),
    ("q2_K", 84, 256, 2), ("q3_K", 110, 256, 3), ("q4_K", 144, 256, 4), ("q5_K", 176, 256, 5), ("q6_K", 210, 256, 6),
]
def ggml_parts() -> dict:
    """Values one ggml::dot call of mul_mv takes at one x row, per type
    (traits<B>::part: 16, or 32 for the K-quants), from the host's type table."""
    from . import _core

    return {row[0].lower(): row[6] for row in _core.ggml_type_table()}


def ggml_probes() -> list[Probe]:
    """One lane's step of ggml_mul_mv for one row: ggml::dot<1> on one part
    (ggml_parts() values) of a block, with the activations as given
    (pre-scaled and summed once per step for all rows). Weight bytes: the
    part's share of its block, scale fields included. The part's index is
    read at run time, as the kernel's is (a lane's step decides it), so that
    work which depends on it (where its bytes and scales sit, the shifts by
    its sub-block of Q5_K's fifth bits) is counted, not folded away."""
    probes = []
    parts = ggml_parts()
    for name, block_bytes, values, mlx_bits in GGML_TYPES:
        part = parts[name.lower()]
        probes.append(Probe(
            f"ours ggml {name}", f"affine {mlx_bits}-bit", "ours", block_bytes * part / values,
            f"ggml::block_{name}",
            f"""  thread float yt[{part}], sums[4], out[1];
  for (int j = 0; j < {part}; ++j) yt[j] = x[j];
  for (int r = 0; r < 4; ++r) sums[r] = x[{part} + r];
  out[0] = 0.0f;
  const uint part = as_type<uint>(y[1]) % {values // part}u;
  ggml::dot<1, {part}>(w[0], part, yt, sums, out);
  y[0] = out[0];"""))
    return probes


def all_probes() -> list[Probe]:
    return affine_probes() + ggml_probes()


def mlx_include() -> str | None:
    try:
        import mlx
    except ImportError:
        return None
    include = os.path.join(mlx.__path__[0], "include")
    return include if os.path.exists(os.path.join(include, "mlx", "backend", "metal", "kernels", "quantized.h")) else None


# The headers each owner's probes include: ours and MLX's kernels share
# names (affine_qmv_fast, ...), so each owner's probes compile apart.
HEADERS = {
    "ours": ['"affine.h"', '"ggml.h"'],
    "mlx": ['"mlx/backend/metal/kernels/utils.h"', '"mlx/backend/metal/kernels/steel/gemm/gemm.h"',
            '"mlx/backend/metal/kernels/quantized_utils.h"', '"mlx/backend/metal/kernels/quantized.h"'],
}


def probe_source(probes: list[Probe], owner: str) -> str:
    lines = [f"#include {header}" for header in HEADERS[owner]]
    for i, probe in enumerate(probes):
        lines += [f"// {probe.name}",
                  f"[[kernel]] void qmetal_cost_probe_{i}(const device {probe.weight_type}* w [[buffer(0)]],",
                  "                                  const device float* x [[buffer(1)]],",
                  "                                  device float* y [[buffer(2)]]) {",
                  probe.body, "}"]
    return "\n".join(lines) + "\n"


# --- IR counting --------------------------------------------------------------------------

_LOAD = re.compile(r"^load\s+(?:volatile\s+)?(<\d+ x )?(i\d+|half|bfloat|float|double)")
_CONVERT = re.compile(r"^(uitofp|sitofp|fptoui|fptosi)\b")
_CONVERT64 = re.compile(r"^(uitofp|sitofp)\s+(?:nneg\s+)?i64\b")
_SHIFT = re.compile(r"^(shl|lshr|ashr)\s+(?:(?:nuw|nsw|exact)\s+)*(<\d+ x )?i\d+\s+[^,]+,\s*(\S+)")
_FUNNEL = re.compile(r"@llvm\.(fshl|fshr)\.")
_INT64 = re.compile(r"^(add|sub|mul|and|or|xor|shl|lshr|ashr|udiv|sdiv|urem|srem)\s+(?:(?:nuw|nsw|exact|disjoint)\s+)*i64\b")
# What the GPU does not execute as an instruction: control flow, SSA and
# address bookkeeping, width changes, intrinsics such as lifetime markers.
_FREE = {"ret", "br", "switch", "unreachable", "phi", "getelementptr", "bitcast", "zext", "sext", "trunc",
         "freeze"}


def count_function(body: str, cost: Cost) -> Cost:
    for line in body.splitlines():
        text = line.strip()
        if not line.startswith((" ", "\t")) or not text or text.startswith((";", "!")):
            continue  # labels, comments, metadata
        rhs = text.split(" = ", 1)[1] if text.startswith("%") and " = " in text else text
        rhs = re.sub(r"^(tail |musttail |notail )?call ", "call ", rhs)
        opcode = rhs.split()[0]
        if opcode in _FREE or rhs.startswith("call void @llvm."):
            continue
        cost.instructions += 1
        load = _LOAD.match(rhs)
        if load and load.group(2).startswith("i"):
            width = int(load.group(2)[1:]) * (int(load.group(1)[1:].split()[0]) if load.group(1) else 1)
            cost.loads[f"i{width}"] = cost.loads.get(f"i{width}", 0) + 1
        if _CONVERT.match(rhs):
            cost.converts += 1
            if _CONVERT64.match(rhs):
                cost.ops_64bit += 1
        shift = _SHIFT.match(rhs)
        if shift:
            if shift.group(3).startswith("%"):
                cost.shifts_variable += 1
            else:
                cost.shifts_constant += 1
        if _FUNNEL.search(rhs):
            cost.shifts_variable += 1
        if _INT64.match(rhs):
            cost.ops_64bit += 1
    return cost


def functions(ir: str) -> dict[str, str]:
    """IR function bodies by (mangled) name."""
    out = {}
    for match in re.finditer(r"^define [^@]*@(\"?[\w.$]+\"?)\(.*?\{\n(.*?)^\}", ir, re.MULTILINE | re.DOTALL):
        out[match.group(1).strip('"')] = match.group(2)
    return out


def find_clang() -> str | None:
    for name in (os.environ.get("QMETAL_COST_CLANG"), "clang++-19", "clang++-18", "clang++-17", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# GPU compilers inline every call and fully unroll loops of a constant trip
# count; clang's -O2 host heuristics stop earlier, which would leave calls
# and loop-carried shifts that no GPU runs. These thresholds make clang do
# what a GPU compiler does, for ours and MLX's alike.
GPU_LIKE = ["-mllvm", "-inline-threshold=100000", "-mllvm", "-unroll-threshold=100000",
            "-mllvm", "-unroll-full-max-count=1024"]


def compile_ir(source: str, include_dirs: list[str], clang: str) -> str:
    text = _generator.preprocess("cost_probes.metal", clang, include_dirs, source=source)
    # Each probe's own IR function is what gets counted: external linkage
    # keeps it after clang inlines it into its entry point.
    code = _generator.generate(text, "qmetal_cost_library", "cost_probes.metal", internal_kernels=False)
    with tempfile.TemporaryDirectory() as tmp:
        cpp = os.path.join(tmp, "probes.cpp")
        ll = os.path.join(tmp, "probes.ll")
        with open(cpp, "w") as f:
            f.write(code)
        # Scalar IR, as one GPU lane sees it; full unrolling stays on (the
        # GPU compiler unrolls these constant-trip loops too).
        command = [clang, *_generator.cxx_flags(True), "-O2", "-fno-vectorize", "-fno-slp-vectorize", *GPU_LIKE,
                   "-isystem", _generator.SHIM_INCLUDE, "-S", "-emit-llvm", "-o", ll, cpp]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling the probes failed:\n{result.stderr[-4000:]}")
        with open(ll) as f:
            return f.read()


def measure(probes: list[Probe] | None = None, clang: str | None = None) -> list[Cost]:
    """Compile the probes to LLVM IR (clang -O2) and count each one's ops,
    in the order given (MLX's only where the mlx package has its headers)."""
    clang = clang or find_clang()
    if clang is None:
        raise RuntimeError("the cost report needs clang++ (clang 17 or newer; QMETAL_COST_CLANG names one)")
    include = mlx_include()
    probes = [p for p in (probes or all_probes()) if include or p.owner != "mlx"]
    costs = {}
    for owner in HEADERS:
        group = [p for p in probes if p.owner == owner]
        if not group:
            continue
        bodies = functions(compile_ir(probe_source(group, owner), [SHADERS] + ([include] if include else []), clang))
        for i, probe in enumerate(group):
            symbol = _generator.kernel_symbol(f"qmetal_cost_probe_{i}")
            matches = [body for name, body in bodies.items() if re.search(re.escape(symbol) + r"(?!\d)", name)]
            if len(matches) != 1:
                raise RuntimeError(f"probe {probe.name}: expected one IR function named like {symbol}, "
                                   f"found {len(matches)}")
            costs[id(probe)] = count_function(matches[0], Cost(probe.name, probe.family, probe.owner,
                                                               probe.weight_bytes))
    return [costs[id(p)] for p in probes]


# --- report -------------------------------------------------------------------------------


def format_table(costs: list[Cost]) -> str:
    peers = {c.family: c for c in costs if c.owner == "mlx"}
    header = ("| probe | weight bytes | weight loads | converts | shifts (const/var) | 64-bit ops | instructions "
              "| quarter-rate ops / byte | vs MLX |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for c in costs:
        peer = peers.get(c.family)
        ratio = (f"{c.quarter_rate_per_byte / peer.quarter_rate_per_byte:.2f}x"
                 if peer is not None and c.owner != "mlx" and peer.quarter_rate_per_byte else "")
        loads = ", ".join(f"{n} x {w}" for w, n in sorted(c.loads.items(), key=lambda item: int(item[0][1:])))
        lines.append(f"| {c.name} | {c.weight_bytes:g} | {loads or '-'} | {c.converts} | "
                     f"{c.shifts_constant}/{c.shifts_variable} | {c.ops_64bit} | {c.instructions} | "
                     f"{c.quarter_rate_per_byte:.2f} | {ratio} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--clang", help="the clang++ to compile with (default: clang++-19, ..., clang++)")


def run(args: argparse.Namespace) -> int:
    costs = measure(clang=args.clang)
    if args.json:
        print(json.dumps([c.as_dict() for c in costs], indent=2))
        return 0
    print("Decode inner loops, one lane's step of one row, counted in LLVM IR (clang -O2, scalar).")
    print("Quarter-rate ops on Apple GPUs: int<->float converts, shifts, 64-bit integer ops.")
    if mlx_include() is None:
        print("(mlx's Metal headers are not installed: no MLX column)")
    print(format_table(costs))
    return 0
