"""The mat-vec choices the planners make, swept on the CUDA translation: for
each format, shape and small M, every mat-vec route (GGML mul_mv and
mul_mv_ext; affine qmv_fast and qmv_wide) at 1, 2, 4 and 8 K slices, timed
as `python -m qmetal bench --backend cuda` times (CUDA events, median, L2
flushed), next to MLX's qmv_fast on the same shape. The planner's own plan
is marked `*`. It answers what the planner should pick, where the bench
only times what it picked.

    python bench/cuda_sweep.py --formats q2_k,q3_k,q4_0,affine4 --rows 1,4,5,8

Each plan's result is checked against the float64 reference before it is
timed (relative error below 1e-2, as the bench's).
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

import qmetal
from qmetal import _bench, reference as ref
from qmetal._cost import GGML_TYPES
from qmetal.sim import _cuda

SLICE_THREADS = 64  # threads of one K slice of every mat-vec kernel (2 simdgroups)
ROUTES = {"ggml": ("mv", "mv_ext"), "affine": ("qmv_fast", "qmv_wide")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="q4_0,q2_k,q3_k,q4_k,affine4")
    parser.add_argument("--shapes", default="4096x4096,1024x4096,14336x4096,4096x14336")
    parser.add_argument("--rows", default="1,2,4,5,6,8")
    parser.add_argument("--slices", default="1,2,4,8")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    device = qmetal.get_device("cuda")
    core = qmetal._core
    props = core.cuda_properties(device)
    flush = 4 * props["l2_bytes"]
    print(f"{device.name} ({props['arch']}, {props['multiprocessors']} SMs); median of {args.repeat} runs, "
          f"L2 flushed; ms; * = the planner's plan")
    rng = np.random.default_rng(0)
    dtype = "float16"
    include = _bench._mlx_include()
    modules = {}

    def mlx_module(bits):
        if bits not in modules:
            source, names = _bench.mlx_kernel_source(dtype, 64, bits)
            cubin = _cuda.compile_cubin(source, "mlx_quantized.metal", include_dirs=[include], arch=props["arch"])
            modules[bits] = (core.CudaModule(cubin), names)
        return modules[bits]

    def gpu_ms(plans, module=None):
        return statistics.median(core.cuda_time(device, plans, module, 3, args.repeat, flush))

    ggml_bits = {t.lower(): b for t, _, _, b in GGML_TYPES}
    for fmt in args.formats.split(","):
        family = "affine" if fmt.startswith("affine") else "ggml"
        bits = int(fmt[len("affine"):]) if family == "affine" else ggml_bits.get(fmt)
        for shape in args.shapes.split(","):
            n, k = (int(v) for v in shape.split("x"))
            w_dense = (rng.standard_normal((n, k), dtype=np.float32) * 0.02).astype(np.float16)
            if family == "ggml":
                blocks = _bench.ggml_blocks(rng, w_dense, fmt.upper())
                w = qmetal.GGMLWeight(blocks, fmt.upper(), w_dense.shape, device=device)
                dense = ref.ggml_dequantize(blocks, fmt.upper(), w_dense.shape).astype(np.float64)
            else:
                w = qmetal.quantize(w_dense, bits, 64, device=device)
                dense = ref.affine_dequantize(w.packed, w.scales, w.biases, bits, 64).astype(np.float64)
            peer = w if family == "affine" else (qmetal.quantize(w_dense, bits, 64, device=device) if bits else None)
            for m in (int(v) for v in args.rows.split(",")):
                x = rng.standard_normal((m, k)).astype(np.float16)
                expected = x.astype(np.float64) @ dense.T
                cells, chosen = [], None
                for route in ("automatic",) + ROUTES[family]:
                    core.cuda_capture(True)
                    try:
                        y = qmetal.matmul(x, w, route=route, device=device)
                        plans = core.cuda_captured()
                    except ValueError as e:  # a route this shape does not take
                        cells.append(f"{route}: {e}"[:40])
                        continue
                    finally:
                        core.cuda_capture(False)
                    error = np.linalg.norm(y.astype(np.float64) - expected) / np.linalg.norm(expected)
                    if route == "automatic":
                        chosen = (plans[-1].kernel, plans[-1].threadgroup[0] // SLICE_THREADS)
                        continue
                    plan = plans[-1]
                    limit = device.max_threads_per_threadgroup(plan.kernel)
                    for slices in (int(v) for v in args.slices.split(",")):
                        if slices * SLICE_THREADS > limit:
                            continue
                        plan.threadgroup = (slices * SLICE_THREADS, 1, 1)
                        y[...] = np.nan  # y is the output buffer's memory: this run must overwrite it
                        core.cuda_execute(device, [plan], None)
                        sliced_error = np.linalg.norm(y.astype(np.float64) - expected) / np.linalg.norm(expected)
                        bad = "" if max(error, sliced_error) < 1e-2 else f" WRONG {max(error, sliced_error):.1e}"
                        mark = "*" if (plan.kernel, slices) == chosen and len(plans) == 1 else ""
                        short = plan.kernel.replace("ggml_", "").replace("affine_", "").split("_" + fmt)[0]
                        short = short.split("_float16")[0]
                        cells.append(f"{short}/{slices}{mark} {gpu_ms([plan]):.4f}{bad}")
                peer_cell = ""
                if peer is not None and include and m <= 8:
                    module, names = mlx_module(bits)
                    xb, yb = qmetal.asbuffer(x), qmetal.zeros((m, n), dtype)
                    nat = peer._native
                    plan = _bench._mlx_plan("qmv_fast", names["qmv_fast"], xb, nat.packed, nat.scales, nat.biases,
                                            bits, yb, m, n, k)
                    peer_cell = f"  mlx qmv_fast {gpu_ms([plan], module):.4f}"
                print(f"{fmt:<8}{shape:>11} M={m:<3}" + "  ".join(cells) + peer_cell, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
