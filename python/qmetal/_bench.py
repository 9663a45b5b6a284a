"""``python -m qmetal bench``: LLM-shaped quantized matmuls, each result
checked against the float64 reference, timed next to mlx where it runs."""

from __future__ import annotations

import sys
import time

import numpy as np

import qmetal
from . import reference as ref
from ._dtypes import bfloat16, numpy_dtype

# (name, N, K) of Llama-3-8B's linear layers: attention q/o, k/v, MLP up/gate, MLP down.
LLAMA_SHAPES = [("attn q/o", 4096, 4096), ("attn k/v", 1024, 4096), ("mlp up", 14336, 4096),
                ("mlp down", 4096, 14336)]
# The simulator runs the same kernels on the CPU: the same layer kinds, scaled down.
SIM_SHAPES = [("attn q/o /8", 512, 512), ("attn k/v /8", 128, 512), ("mlp up /8", 1792, 512),
              ("mlp down /8", 512, 1792)]
# A Mixtral-like MoE layer: 8 experts, each token to its top 2.
MOE = ("moe e8 top2", 8, 2, 14336, 4096)
SIM_MOE = ("moe e8 top2 /8", 8, 2, 1792, 512)
ROWS = [1, 4, 512]
SIM_ROWS = [1, 4, 64]
# Peak memory bandwidth (GB/s) of known GPUs, by architecture prefix.
PEAK_BANDWIDTH = {"applegpu_g13g": 100, "applegpu_g13s": 200, "applegpu_g13c": 400, "applegpu_g13d": 800,
                  "applegpu_g14g": 100, "applegpu_g14s": 200, "applegpu_g14c": 400, "applegpu_g14d": 800}


def add_arguments(parser):
    parser.add_argument("--format", default="affine", type=str.lower,
                        choices=["affine"] + [t.lower() for t in ref.GGML_QUANTIZABLE_TYPES if t not in ("F32",)],
                        help="affine (MLX, with --bits / --group-size) or a GGML type (q4_0, q4_k, q6_k, ...)")
    parser.add_argument("--bits", type=int, default=4, choices=ref.AFFINE_BITS)
    parser.add_argument("--group-size", type=int, default=64, choices=ref.AFFINE_GROUP_SIZES)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--shapes", help="comma-separated NxK, e.g. 4096x4096,1024x4096 (default: Llama-3-8B)")
    parser.add_argument("--rows", help="comma-separated M values (default: 1,4,512; 1,4,64 on the simulator)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best is reported)")
    parser.add_argument("--backend", choices=["sim", "metal"], help="default: QMETAL_BACKEND, else the best available")
    parser.add_argument("--no-peers", action="store_true", help="do not time mlx")
    parser.add_argument("--no-moe", action="store_true", help="skip the mixture-of-experts case")


def _time(fn, repeat):
    fn()  # warm-up (pipelines, caches)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _mlx():
    try:
        import mlx.core as mx
    except ImportError:
        return None
    return mx


def run(args) -> int:
    device = qmetal.get_device(args.backend) if args.backend else qmetal.default_device()
    simulated = device.backend == "sim"
    if args.shapes:
        shapes = []
        for item in args.shapes.split(","):
            n, k = (int(v) for v in item.lower().split("x"))
            shapes.append((f"{n}x{k}", n, k))
    else:
        shapes = SIM_SHAPES if simulated else LLAMA_SHAPES
    rows = [int(v) for v in args.rows.split(",")] if args.rows else (SIM_ROWS if simulated else ROWS)
    dtype = numpy_dtype(args.dtype)
    mx = None if args.no_peers else _mlx()
    print(f"qmetal {qmetal.__version__} bench on {device.name} ({device.backend})")
    if simulated:
        print("note: this is the CPU simulator, not a GPU: shapes are scaled down and times say nothing about "
              "Metal; it checks that every kernel runs and is right")
    fmt = (f"affine {args.bits}-bit, group size {args.group_size}" if args.format == "affine"
           else f"GGML {args.format.upper()}")
    print(f"{fmt}, activations {args.dtype}; best of {args.repeat}"
          + (f"; mlx {mx.__version__} on {mx.default_device()}" if mx else ""))
    peak = next((v for k, v in PEAK_BANDWIDTH.items() if device.architecture.startswith(k)), None)

    rng = np.random.default_rng(0)
    header = f"{'layer':<16}{'M':>5}{'N':>7}{'K':>7}  {'kernel':<26}{'ms':>9}{'GB/s':>8}{'GFLOP/s':>9}"
    header += f"{'% peak':>8}" if peak else ""
    header += f"{'mlx ms':>9}{'mlx/qmetal':>11}" if mx else ""
    print(header)
    cases = [(s, m) for s in shapes for m in rows]
    if not args.no_moe and not args.shapes:
        cases += [(SIM_MOE if simulated else MOE, m) for m in rows]
    failures = 0
    for index, (case, m) in enumerate(cases, 1):
        moe = len(case) == 5
        name, n, k = (case[0], case[3], case[4]) if moe else case
        print(f"\r[{index}/{len(cases)}] {name} M={m} ...", end="", file=sys.stderr, flush=True)
        if moe:
            experts, top_k = case[1], case[2]
            w_dense = (rng.standard_normal((experts, n, k)) * 0.02).astype(dtype)
            ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(m)]).astype(np.uint32)
            x = rng.standard_normal((m, 1, 1, k)).astype(dtype)
        else:
            w_dense = (rng.standard_normal((n, k)) * 0.02).astype(dtype)
            x = rng.standard_normal((m, k)).astype(dtype)
        ggml_type = None if args.format == "affine" else args.format.upper()
        if ggml_type:
            blocks = ref.ggml_quantize(w_dense.astype(np.float32).reshape(-1, k), ggml_type)
            w = qmetal.GGMLWeight(blocks, ggml_type, w_dense.shape, device=device)
            dense = ref.ggml_dequantize(blocks, ggml_type, w_dense.shape).astype(np.float64)
            weight_bytes = blocks.nbytes
        else:
            w = qmetal.quantize(w_dense, args.bits, args.group_size, device=device)
            dense = ref.affine_dequantize(w.packed, w.scales, w.biases, args.bits, args.group_size).astype(np.float64)
            weight_bytes = w.packed.nbytes + w.scales.nbytes + w.biases.nbytes
        if moe:
            run_once = lambda: qmetal.gather_matmul(x, w, rhs_indices=ids, device=device)  # noqa: E731
            y = run_once()
            expected = np.einsum("tk,tsnk->tsn", x[:, 0, 0].astype(np.float64), dense[ids])[:, :, None]
            kernel = "gather"
            # Weights read: the experts the tokens use.
            used = len(np.unique(ids))
            moved = weight_bytes * used // experts + x.nbytes + y.nbytes
            flops = 2 * m * top_k * n * k
        else:
            run_once = lambda: qmetal.matmul(x, w, device=device)  # noqa: E731
            y = run_once()
            expected = x.astype(np.float64) @ dense.T
            if ggml_type:
                plan = qmetal._core.plan_ggml_matmul(device, qmetal.asbuffer(x), w._native,
                                                     qmetal.asbuffer(y), m, "automatic")
                kernel = plan[0].kernel.replace("ggml_", "").split(f"_{args.format}")[0] + f" {args.format}"
            else:
                plan = qmetal._core.plan_affine_matmul(device, qmetal.asbuffer(x), w._native, True,
                                                       qmetal.empty(y.shape, args.dtype), "automatic")
                kernel = plan[0].kernel.replace("affine_", "").split(f"_{args.dtype}")[0]
            moved = weight_bytes + x.nbytes + y.nbytes
            flops = 2 * m * n * k
        error = np.linalg.norm(y.astype(np.float64) - expected) / np.linalg.norm(expected)
        ok = error < 1e-2
        failures += not ok
        seconds = _time(run_once, args.repeat)
        line = (f"\r{name:<16}{m:>5}{n:>7}{k:>7}  {kernel:<26}{seconds * 1e3:>9.3f}{moved / seconds / 1e9:>8.2f}"
                f"{flops / seconds / 1e9:>9.2f}")
        if peak:
            line += f"{100 * moved / seconds / 1e9 / peak:>7.0f}%"
        if mx and not ggml_type:  # mlx has no GGML kernels to compare with
            args_mx = [mx.array(a) if a.dtype != bfloat16 else mx.array(a.view(np.uint16)).view(mx.bfloat16)
                       for a in (x, w.packed, w.scales, w.biases)]
            options = dict(transpose=True, group_size=args.group_size, bits=args.bits)
            if moe:
                ids_mx = mx.array(ids)

                def peer():
                    mx.eval(mx.gather_qmm(*args_mx, rhs_indices=ids_mx, **options))
            else:
                def peer():
                    mx.eval(mx.quantized_matmul(*args_mx, **options))

            theirs = _time(peer, args.repeat)
            line += f"{theirs * 1e3:>9.3f}{theirs / seconds:>11.2f}"
        elif mx:
            line += f"{'-':>9}{'-':>11}"
        print(line + ("" if ok else f"  WRONG (relative error {error:.1e})"))
    print(" " * 40, end="\r", file=sys.stderr)
    if failures:
        print(f"{failures} case(s) gave wrong results")
        return 1
    print("all results checked against the float64 reference")
    return 0

