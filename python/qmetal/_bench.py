"""``python -m qmetal bench``: LLM-shaped quantized matmuls, each result
checked against the float64 reference, timed next to mlx where it runs.

On the ``cuda`` backend the kernels are timed on the GPU alone (CUDA events,
median after warm-up, L2 flushed before every run), next to the measured
device-to-device copy bandwidth, and next to MLX's own Metal kernels
(affine_qmv_fast, affine_qmm_t, affine_gather_qmv from the installed mlx
package's headers) through the same MSL-to-CUDA translation."""

from __future__ import annotations

import os
import re
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
                        choices=["affine"] + [t.lower() for t in ref.GGML_TYPES if t not in ("F32",)],
                        help="affine (MLX, with --bits / --group-size) or a GGML type (q4_0, q4_k, q6_k, ...)")
    parser.add_argument("--bits", type=int, default=4, choices=ref.AFFINE_BITS)
    parser.add_argument("--group-size", type=int, default=64, choices=ref.AFFINE_GROUP_SIZES)
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--shapes", help="comma-separated NxK, e.g. 4096x4096,1024x4096 (default: Llama-3-8B)")
    parser.add_argument("--rows", help="comma-separated M values (default: 1,4,512; 1,4,64 on the simulator)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed runs per case (default 3, best reported; cuda: 50, median reported)")
    parser.add_argument("--backend", choices=["sim", "metal", "cuda"],
                        help="default: QMETAL_BACKEND, else the best available")
    parser.add_argument("--no-peers", action="store_true", help="do not time mlx")
    parser.add_argument("--no-moe", action="store_true", help="skip the mixture-of-experts case")
    parser.add_argument("--baseline", metavar="DIR",
                        help="cuda: also time the same plans on the kernels of an earlier version's shaders/ folder "
                             "(e.g. exported with `git archive <rev> shaders`), as a 'base' column")
    parser.add_argument("--dwq", action="store_true",
                        help="time the DWQ backward (qmetal.matmul_vjp) instead, next to mx.vjp (unpacked codes "
                             "of --bits); --rows are training tokens (default 512,2048; 16,64 on the simulator)")


def ggml_blocks(rng, w_dense, ggml_type):
    """The GGML blocks a bench case times: w_dense quantized, or, for the
    types our reference cannot quantize (Q2_K, Q3_K), random codes with fp16
    scales of the size w_dense's would take (results are still checked
    against the blocks' float64 dequantization)."""
    k = w_dense.shape[-1]
    if ggml_type in ref.GGML_QUANTIZABLE_TYPES:
        return ref.ggml_quantize(w_dense.astype(np.float32).reshape(-1, k), ggml_type)
    t = ref.ggml_type(ggml_type)
    count = w_dense.size // t.block_values
    structs = rng.integers(0, 256, count * t.block_bytes, dtype=np.uint8).view(t.block)
    for field in t.block.names:
        if t.block[field] == np.dtype("<f2"):
            structs[field] = (np.std(w_dense) * rng.uniform(0.05, 0.2, count)).astype(np.float16)
    return structs.view(np.uint8).reshape(-1, k // t.block_values * t.block_bytes)


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
    if args.dwq:
        from ._bench_dwq import run_dwq
        return run_dwq(args, device)
    if device.backend == "cuda":
        return run_cuda(args, device)
    if args.repeat is None:
        args.repeat = 3
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
            blocks = ggml_blocks(rng, w_dense, ggml_type)
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



# --- the cuda backend ----------------------------------------------------------

MLX_TYPES = {"float32": "float", "float16": "float16_t", "bfloat16": "bfloat16_t"}


# Kernels the baseline is asked for (those it lacks run from this version).
BASELINE_AFFINE_KERNELS = ("qmv", "qmv_fast", "qmm_t", "qmm_t_split", "gather_qmv", "gather_qmm_t",
                           "gather_qmm_sorted")
BASELINE_GGML_KERNELS = ("mul_mv", "mul_mv_ext_r2", "mul_mv_ext_r3", "mul_mv_ext_r4", "mul_mm",
                         "mul_mv_id", "mul_mm_id")


def baseline_kernels_defined(source: str, include_dir: str) -> tuple[str, list]:
    """`source` less the instantiations of kernels the baseline's headers do
    not define (an earlier version lacks some, or named them otherwise: those
    run from this version), and the host names dropped. Each such
    instantiation stops the translation with its line; that line goes."""
    from .sim import _cuda
    from .sim._generator import GeneratorError

    lines, dropped = source.split("\n"), []
    while True:
        try:
            _cuda.translate("\n".join(lines), "baseline.metal", include_dirs=[include_dir])
            return "\n".join(lines), dropped
        except GeneratorError as error:
            found = re.search(r'baseline\.metal:(\d+): host_name\("([^"]+)"\) instantiates .* not a kernel defined',
                              str(error))
            if not found:
                raise
            lines[int(found.group(1)) - 1] = ""  # keeps the other lines' numbers
            dropped.append(found.group(2))


def baseline_source(args) -> str:
    """MSL instantiating, from an earlier version's headers, the kernels of
    this bench's format with its own instantiation macros."""
    metal_type = {"float32": "float", "float16": "half", "bfloat16": "bfloat"}[args.dtype]
    if args.format == "affine":
        lines = ['#include "affine.h"']
        lines += [f"QMETAL_AFFINE_ONE({kernel}, {metal_type}, {args.dtype}, {args.group_size}, {args.bits})"
                  for kernel in BASELINE_AFFINE_KERNELS]
    else:
        block = "block_" + args.format.replace("_k", "_K")
        lines = ['#include "ggml.h"']
        outputs = {("float", "float32"), (metal_type, args.dtype)}
        lines += [f"QMETAL_GGML_ONE({kernel}, {block}, {args.format}, {metal_type}, {args.dtype}, {o}, {o_name})"
                  for kernel in BASELINE_GGML_KERNELS for o, o_name in sorted(outputs)]
    return "\n".join(lines) + "\n"


def mlx_kernel_source(dtype: str, group_size: int, bits: int):
    """MSL instantiating MLX's affine_qmv_fast, affine_qmv, affine_qmm_t and
    affine_gather_qmv from the installed mlx package's headers (the includes
    of MLX's quantized.metal, then its instantiate_kernel macro), and their
    host names by kind."""
    t = MLX_TYPES[dtype]
    names = {kind: f"mlx_affine_{kind}_{t}_gs_{group_size}_b_{bits}"
             for kind in ("qmv_fast", "qmv", "qmm_t", "gather_qmv")}
    lines = ['#include "mlx/backend/metal/kernels/utils.h"',
             '#include "mlx/backend/metal/kernels/steel/gemm/gemm.h"',
             '#include "mlx/backend/metal/kernels/quantized_utils.h"',
             '#include "mlx/backend/metal/kernels/quantized.h"',
             f'instantiate_kernel("{names["qmv_fast"]}", affine_qmv_fast, {t}, {group_size}, {bits}, false)',
             f'instantiate_kernel("{names["qmv"]}", affine_qmv, {t}, {group_size}, {bits}, false)',
             f'instantiate_kernel("{names["qmm_t"]}", affine_qmm_t, {t}, {group_size}, {bits}, true, false)',
             f'instantiate_kernel("{names["gather_qmv"]}", affine_gather_qmv, {t}, {group_size}, {bits})']
    return "\n".join(lines) + "\n", names


def _mlx_include():
    try:
        import mlx
    except ImportError:
        return None
    import os

    include = os.path.join(list(mlx.__path__)[0], "include")
    return include if os.path.exists(os.path.join(include, "mlx", "backend", "metal", "kernels", "quantized.h")) else None


def _mlx_plan(kind, name, x, packed, scales, biases, bits, y, m, n, k, ids=None, top_k=1):
    """A DispatchPlan of MLX's kernel, bound and sized as MLX's host code
    (mlx/backend/metal/quantized.cpp) does: qmv/qmv_fast on (M, N / 8) of
    (32, 2) threads, qmm_t on (N / 32, M / 32) of (32, 2, 2), gather_qmv on
    (1, N / 8, tokens * top_k) with index buffers."""
    i32 = lambda *v: qmetal.asbuffer(np.array(v, np.int32))  # noqa: E731
    i64 = lambda *v: qmetal.asbuffer(np.array(v, np.int64))  # noqa: E731
    plan = qmetal.DispatchPlan()
    plan.kernel = name
    groups = scales.shape[-1]
    if kind == "gather_qmv":
        experts = scales.shape[0]
        tokens = x.shape[0]
        lhs = qmetal.asbuffer(np.repeat(np.arange(tokens, dtype=np.uint32), top_k))
        rhs = qmetal.asbuffer(np.ascontiguousarray(ids, np.uint32).reshape(-1))
        bound = [packed, scales, biases, x, lhs, rhs, y, i32(k), i32(n),
                 i32(1), i32(tokens, 1, k), i64(k),
                 i32(1), i32(experts, n, k * bits // 32), i64(n * k * bits // 32), i64(n * groups),
                 i64(n * groups), i32(1), i32(tokens * top_k), i64(1), i64(1)]
        plan.grid, plan.threadgroup = (1, (n + 7) // 8, tokens * top_k), (32, 2, 1)
    else:
        unused = [i64(0) for _ in range(8)]
        if kind == "qmm_t":
            bound = [packed, scales, biases, x, y, i32(k), i32(n), i32(m), *unused]
            plan.grid, plan.threadgroup = ((n + 31) // 32, (m + 31) // 32, 1), (32, 2, 2)
        else:
            bound = [packed, scales, biases, x, y, i32(k), i32(n), *unused]
            plan.grid, plan.threadgroup = (m, (n + 7) // 8, 1), (32, 2, 1)
    out_index = 6 if kind == "gather_qmv" else 4
    for index, buffer in enumerate(bound):
        plan.bind(index, buffer, "write" if index == out_index else "read")
    return plan


def _moe_reference(x, dense, ids):
    """float64 MoE result [tokens, top_k, 1, N] of x [tokens, 1, 1, K]: per
    expert, the (token, slot) pairs it serves, with no [tokens, top_k, N, K]
    gather."""
    tokens, top_k = ids.shape
    expected = np.zeros((tokens, top_k, 1, dense.shape[-2]))
    x64 = x[:, 0, 0].astype(np.float64)
    for e in np.unique(ids):
        t, slot = np.nonzero(ids == e)
        expected[t, slot, 0] = x64[t] @ dense[e].T
    return expected


MAT_VEC_THREADS = 64  # a mat-vec threadgroup of one K slice (both families: 2 simdgroups)


def run_cuda(args, device) -> int:
    """The bench on an NVIDIA GPU: GPU time of the plans each op runs."""
    import statistics

    from .sim import _cuda

    core = qmetal._core
    repeat = args.repeat or 50
    props = core.cuda_properties(device)
    flush = 4 * props["l2_bytes"]
    copy_gbs = core.cuda_copy_bandwidth(device, 1 << 30, 20)
    print(f"qmetal {qmetal.__version__} bench on {device.name} ({device.backend}, {props['arch']}, "
          f"{props['multiprocessors']} SMs, {props['l2_bytes'] >> 20} MB L2)")
    print("note: an NVIDIA GPU running the CUDA translation of the Metal kernels: these times compare kernel designs "
          "under one translation and prove the kernels on parallel hardware; they do not predict Apple GPU timings")
    print(f"device-to-device copy: {copy_gbs:.0f} GB/s (1 GiB, bytes read + written, median of 20)")
    fmt = (f"affine {args.bits}-bit, group size {args.group_size}" if args.format == "affine"
           else f"GGML {args.format.upper()}")
    print(f"{fmt}, activations {args.dtype}; median of {repeat} runs after 3 warm-ups, {flush >> 20} MB written "
          f"before each run (L2 flush); CUDA events")
    mlx_module, mlx_names = None, None
    # GGML formats are compared with MLX's affine kernels at about the same
    # bits per weight (as `python -m qmetal cost` does), by GB/s.
    from ._cost import GGML_TYPES

    mlx_bits = args.bits if args.format == "affine" else {t.lower(): b for t, _, _, b in GGML_TYPES}.get(args.format)
    mlx_group_size = args.group_size if args.format == "affine" else 64
    if not args.no_peers:
        include = _mlx_include()
        if mlx_bits is None:
            print(f"mlx kernels: not run (MLX has no affine width next to {args.format.upper()})")
        elif include is None:
            print("mlx kernels: not run (no mlx package with Metal kernel headers)")
        else:
            import mlx.core as mx

            if args.format != "affine":
                print(f"mlx columns: MLX's affine {mlx_bits}-bit kernels (group size {mlx_group_size}) on the same "
                      f"shapes and activations; mlx/ours is of GB/s (ours / MLX's), the formats' bytes differ")
            source, mlx_names = mlx_kernel_source(args.dtype, mlx_group_size, mlx_bits)
            started = time.perf_counter()
            cubin = _cuda.compile_cubin(source, "mlx_quantized.metal", include_dirs=[include], arch=props["arch"])
            mlx_module = core.CudaModule(cubin)
            print(f"mlx kernels: mlx {mx.__version__}'s headers, translated and compiled with nvcc in "
                  f"{time.perf_counter() - started:.0f} s")
    base_module, dropped = None, []
    if args.baseline:
        started = time.perf_counter()
        source, dropped = baseline_kernels_defined(baseline_source(args), os.path.abspath(args.baseline))
        cubin = _cuda.compile_cubin(source, "baseline.metal", include_dirs=[os.path.abspath(args.baseline)],
                                    arch=props["arch"])
        base_module = core.CudaModule(cubin)
        print(f"baseline kernels: {args.baseline}, translated and compiled with nvcc in "
              f"{time.perf_counter() - started:.0f} s (plans of this version; kernels it lacks run from this version"
              + (f": {', '.join(dropped)}" if dropped else "") + ")")
    if args.shapes:
        shapes = []
        for item in args.shapes.split(","):
            n, k = (int(v) for v in item.lower().split("x"))
            shapes.append((f"{n}x{k}", n, k))
    else:
        shapes = LLAMA_SHAPES
    rows = [int(v) for v in args.rows.split(",")] if args.rows else ROWS
    dtype = numpy_dtype(args.dtype)
    header = (f"{'layer':<13}{'M':>5}{'N':>7}{'K':>7}  {'kernel':<20}{'ms':>8}{'GB/s':>7}{'% copy':>7}"
              f"{'GFLOP/s':>9}{'M x M=1':>8}")
    if base_module:
        header += f"  {'base ms':>8}{'% copy':>7}{'base/ours':>10}"
    if mlx_module:
        header += f"  {'mlx kernel':<11}{'mlx ms':>8}{'% copy':>7}{'mlx/ours':>9}"
    print(header)
    cases = [(s, m) for s in shapes for m in rows]
    if not args.no_moe and not args.shapes:
        cases += [(MOE, m) for m in rows]
    rng = np.random.default_rng(0)
    failures = 0
    weights = {}
    single_row = {}  # name -> seconds at M = 1: a batch should beat M runs of it

    def gpu_ms(plans, module=None):
        return statistics.median(core.cuda_time(device, plans, module, 3, repeat, flush))

    for index, (case, m) in enumerate(cases, 1):
        moe = len(case) == 5
        name, n, k = (case[0], case[3], case[4]) if moe else case
        print(f"\r[{index}/{len(cases)}] {name} M={m} ...", end="", file=sys.stderr, flush=True)
        ggml_type = None if args.format == "affine" else args.format.upper()
        key = case
        if key not in weights:  # one weight per shape, shared by its rows
            weights.clear()
            w_shape = (case[1], n, k) if moe else (n, k)
            w_dense = (rng.standard_normal(w_shape, dtype=np.float32) * 0.02).astype(dtype)
            if ggml_type:
                blocks = ggml_blocks(rng, w_dense, ggml_type)
                w = qmetal.GGMLWeight(blocks, ggml_type, w_dense.shape, device=device)
                dense = ref.ggml_dequantize(blocks, ggml_type, w_dense.shape).astype(np.float64)
                weight_bytes = blocks.nbytes
            else:
                w = qmetal.quantize(w_dense, args.bits, args.group_size, device=device)
                dense = ref.affine_dequantize(w.packed, w.scales, w.biases, args.bits,
                                              args.group_size).astype(np.float64)
                weight_bytes = w.packed.nbytes + w.scales.nbytes + w.biases.nbytes
            peer = None
            if mlx_module:
                peer = w if not ggml_type else qmetal.quantize(w_dense, mlx_bits, mlx_group_size, device=device)
            weights[key] = (w, dense, weight_bytes, peer)
        w, dense, weight_bytes, peer = weights[key]
        if moe:
            experts, top_k = case[1], case[2]
            ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(m)]).astype(np.uint32)
            x = rng.standard_normal((m, 1, 1, k)).astype(dtype)
        else:
            x = rng.standard_normal((m, k)).astype(dtype)
        core.cuda_capture(True)
        try:
            if moe:
                y = qmetal.gather_matmul(x, w, rhs_indices=ids, device=device)
            else:
                y = qmetal.matmul(x, w, device=device)
            plans = core.cuda_captured()
        finally:
            core.cuda_capture(False)
        if moe:
            expected = _moe_reference(x, dense, ids)
            weight_share = len(np.unique(ids)) / experts  # the experts this batch reads
            flops = 2 * m * top_k * n * k
        else:
            expected = x.astype(np.float64) @ dense.T
            weight_share = 1
            flops = 2 * m * n * k
        moved = weight_bytes * weight_share + x.nbytes + y.nbytes
        kernel = plans[-1].kernel.replace("affine_", "").replace("ggml_", "")
        kernel = kernel.split(f"_{args.format}_" if ggml_type else f"_{args.dtype}")[0]
        if len(plans) > 1:
            kernel += f" +{len(plans) - 1}"
        error = np.linalg.norm(y.astype(np.float64) - expected) / np.linalg.norm(expected)
        ok = error < 1e-2
        seconds = gpu_ms(plans) / 1e3
        gbs = moved / seconds / 1e9
        line = (f"\r{name:<13}{m:>5}{n:>7}{k:>7}  {kernel:<20}{seconds * 1e3:>8.3f}{gbs:>7.0f}"
                f"{100 * gbs / copy_gbs:>6.0f}%{flops / seconds / 1e9:>9.0f}")
        if m == 1:
            single_row[name] = seconds
        # (M x the M = 1 time) / this time: below 1, M single-row runs would be faster.
        line += f"{m * single_row[name] / seconds:>8.2f}" if 1 < m <= 32 and name in single_row else f"{'':>8}"
        # The baseline's mat-vec kernels predate K slices (shaders/mat_vec.h): a
        # threadgroup of several slices would run them past their rows.
        sliced = any(("qmv" in p.kernel or "mul_mv" in p.kernel) and p.threadgroup[0] > MAT_VEC_THREADS
                     for p in plans)
        missing = [p.kernel for p in plans if p.kernel in dropped]
        if base_module and sliced:
            line += f"  {'(K slices: no baseline)':>25}"
        elif base_module and missing:  # it would time this version's kernel under the baseline's name
            line += f"  {'(not in the baseline)':>25}"
        elif base_module:
            y[...] = np.nan  # y is the output buffer's memory: the baseline's run must overwrite it
            core.cuda_execute(device, plans, base_module)
            base_error = (np.linalg.norm(np.asarray(y, np.float64) - expected) / np.linalg.norm(expected))
            base = gpu_ms(plans, base_module) / 1e3
            line += f"  {base * 1e3:>8.3f}{100 * moved / base / 1e9 / copy_gbs:>6.0f}%{base / seconds:>10.2f}"
            if not base_error < 1e-2:
                line += f"  BASE WRONG ({base_error:.1e})"
        if mlx_module:
            kind = "gather_qmv" if moe else ("qmv_fast" if m <= 8 and n % 8 == 0 and k % 512 == 0
                                             else "qmv" if m <= 8 else "qmm_t")
            xb = qmetal.asbuffer(x.reshape(m, k) if not moe else x.reshape(m, 1, k))
            yb = qmetal.zeros(y.shape, args.dtype)
            native = peer._native
            plan = _mlx_plan(kind, mlx_names[kind], xb, native.packed, native.scales, native.biases, mlx_bits, yb,
                             m, n, k, ids=ids if moe else None, top_k=case[2] if moe else 1)
            core.cuda_execute(device, [plan], mlx_module)
            # Against its own weight's dequantized values (the same as ours for affine).
            peer_dense = dense if not ggml_type else ref.affine_dequantize(
                peer.packed, peer.scales, peer.biases, mlx_bits, mlx_group_size).astype(np.float64)
            peer_expected = expected if not ggml_type else (
                _moe_reference(x, peer_dense, ids) if moe else x.astype(np.float64) @ peer_dense.T)
            theirs_error = (np.linalg.norm(np.asarray(yb.numpy(), np.float64).reshape(peer_expected.shape)
                                           - peer_expected) / np.linalg.norm(peer_expected))
            theirs = gpu_ms([plan], mlx_module) / 1e3
            peer_bytes = native.packed.nbytes + native.scales.nbytes + native.biases.nbytes
            peer_moved = peer_bytes * weight_share + x.nbytes + y.nbytes
            theirs_gbs = peer_moved / theirs / 1e9
            line += (f"  {kind:<11}{theirs * 1e3:>8.3f}{100 * theirs_gbs / copy_gbs:>6.0f}%"
                     f"{gbs / theirs_gbs:>9.2f}")
            if not theirs_error < 1e-2:
                line += f"  MLX WRONG ({theirs_error:.1e})"
        failures += not ok
        print(line + ("" if ok else f"  WRONG (relative error {error:.1e})"))
    print(" " * 40, end="\r", file=sys.stderr)
    t = core.cuda_transfers()
    print(f"copies between host and GPU (outside the timings): {t['to_device']} in ({t['to_device_bytes'] / 1e9:.2f} GB), "
          f"{t['to_host']} out ({t['to_host_bytes'] / 1e9:.2f} GB); {t['launches']} kernel launches")
    if failures:
        print(f"{failures} case(s) gave wrong results")
        return 1
    print("all results checked against the float64 reference" + (" (ours and MLX's)" if mlx_module else ""))
    return 0
