"""SASS instructions per weight in a mat-vec kernel's loop, under the CUDA
translation: how bench/README.md counted the per-weight work of our GGML and
affine kernels and of MLX's qmv_fast (no GPU needed).

    pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm   # CUDA 13.5's, which read nvcc 13.0's cubins
    python bench/cuda_sass.py ggml q4_k --row-major-only   # ggml_mul_mv_q4_k, float16 activations
    python bench/cuda_sass.py ggml q4_0 --kernel mul_mv_ext_r5
    python bench/cuda_sass.py affine 4       # affine_qmv_fast, group size 64
    python bench/cuda_sass.py mlx 4          # MLX's affine_qmv_fast from the mlx wheel's headers

It prints the kernel's registers and stack, and each loop (a backward branch
spanning 30+ instructions) with its instruction count and opcodes. A mat-vec
loop is one lane step: divide by the step's weights (rows x values per part,
e.g. 4 x 32 for Q4_K's mul_mv) for instructions per weight.

--row-major-only (ours) compiles the shaders with the head-major activation
path of read_x disabled: decode never takes it, but it sits inside the loop
and would be counted. Needs nvcc (as the cuda backend's build).
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD_MAJOR = "  if (head_dim == 0) {\n    const device T* row = x + ulong(m) * args.K + k;"


def cuobjdump() -> str:
    found = os.environ.get("CUOBJDUMP") or shutil.which("cuobjdump")
    if not found:
        try:
            import nvidia.cu13  # the nvidia-cuda-cuobjdump wheel

            found = os.path.join(list(nvidia.cu13.__path__)[0], "bin", "cuobjdump")
        except ImportError:
            pass
    if not found or not os.path.exists(found):
        sys.exit("cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or set CUOBJDUMP")
    return found


def source_and_includes(args) -> tuple[str, list[str]]:
    if args.family == "mlx":
        from qmetal import _bench

        source, _ = _bench.mlx_kernel_source("float16", 64, int(args.format))
        return source, [_bench._mlx_include()]
    shaders = os.path.join(HERE, "..", "shaders")
    if args.row_major_only:
        copy = tempfile.mkdtemp(prefix="qmetal-sass-")
        for path in glob.glob(os.path.join(shaders, "*.h")):
            text = open(path).read()
            if os.path.basename(path) == "ggml.h":
                if HEAD_MAJOR not in text:
                    sys.exit("--row-major-only: read_x's head-major branch was not found in ggml.h")
                text = text.replace(HEAD_MAJOR, HEAD_MAJOR.replace("head_dim == 0", "true"))
            open(os.path.join(copy, os.path.basename(path)), "w").write(text)
        shaders = copy
    if args.family == "ggml":
        block = "block_" + args.format.replace("_k", "_K")
        kernel = args.kernel or "mul_mv"
        source = f'#include "ggml.h"\nQMETAL_GGML_ONE({kernel}, {block}, {args.format}, half, float16, float, float32)\n'
    else:
        kernel = args.kernel or "qmv_fast"
        source = f'#include "affine.h"\nQMETAL_AFFINE_ONE({kernel}, half, float16, 64, {args.format})\n'
    return source, [shaders]


def loops(sass: str):
    """(function, registers/stack line, [(start, end, opcode counts)])."""
    for block in re.split(r"\n\s+Function : ", sass)[1:]:
        name = block.split()[0]
        instructions = []
        for line in block.splitlines():
            m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)([^;]*)", line)
            if m:
                instructions.append((int(m.group(1), 16), m.group(3).split(".")[0], m.group(4)))
        found = []
        for address, opcode, rest in instructions:
            target = re.search(r"0x([0-9a-f]+)", rest) if opcode == "BRA" else None
            if target and int(target.group(1), 16) < address:
                start = int(target.group(1), 16)
                body = collections.Counter(o for a, o, _ in instructions if start <= a <= address)
                if sum(body.values()) > 30:
                    found.append((start, address, body))
        yield name, found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=["ggml", "affine", "mlx"])
    parser.add_argument("format", help="a GGML type (q4_k) or affine bits (4)")
    parser.add_argument("--kernel", help="ggml: mul_mv (default), mul_mv_ext_r2..5, mul_mv_id, mul_mm; "
                                         "affine: qmv_fast (default), qmv, qmv_wide_r4, ...")
    parser.add_argument("--row-major-only", action="store_true",
                        help="leave out read_x's head-major path (ours; decode never takes it)")
    args = parser.parse_args(argv)
    from qmetal.sim import _cuda

    source, includes = source_and_includes(args)
    work = tempfile.mkdtemp(prefix="qmetal-sass-")
    cubin = _cuda.compile_cubin(source, "sass_probe.metal", include_dirs=includes, arch="sm_90",
                                out=os.path.join(work, "probe.cubin"))
    tool = cuobjdump()
    sass = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, check=True).stdout
    usage = subprocess.run([tool, "-res-usage", cubin], capture_output=True, text=True).stdout
    for name, found in loops(sass):
        resources = re.search(rf"{re.escape(name)}.*?\n\s*(REG:\d+ STACK:\d+)", usage, re.S)
        print(f"{name}  {resources.group(1) if resources else ''}")
        for start, end, body in found:
            print(f"  loop {start:#06x}-{end:#06x}: {sum(body.values())} instructions  "
                  + ", ".join(f"{op} {n}" for op, n in body.most_common(12)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
