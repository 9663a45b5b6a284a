"""``python -m qmetal bench --dwq``: the DWQ backward, ``qmetal.matmul_vjp``
(dx, d_scales, d_biases) on unpacked weights from ``qmetal.dwq.init``, timed
next to ``mx.vjp`` of ``mx.quantized_matmul`` where mlx runs, each result
checked against float64.

Bytes moved counts what the op must read and write at least once: x, dy,
the codes, scales and biases, dx, d_scales and d_biases. Memory compares
what the scale / bias gradient needs beyond its inputs and outputs: nothing
but a list of matrix pairs for the fused kernel, against the weight
gradient dW [N, K] (float32) that the seeds' reduction, and mlx's vjp,
materialise first."""

from __future__ import annotations

import sys

import numpy as np

import qmetal
from ._bench import LLAMA_SHAPES, SIM_SHAPES, _mlx, _time
from ._dtypes import bfloat16, numpy_dtype

# Training batches (tokens) rather than decode rows.
DWQ_ROWS = [512, 2048]
SIM_DWQ_ROWS = [16, 64]
MIB = 2 ** 20


def _to_mx(mx, a):
    return mx.array(a.view(np.uint16)).view(mx.bfloat16) if a.dtype == bfloat16 else mx.array(a)


def _vjp64(x, qw, dy):
    codes = qw.codes.astype(np.float64)
    n, k = codes.shape
    g = qw.group_size
    dense = (codes.reshape(n, -1, g) * qw.scales.astype(np.float64)[..., None]
             + qw.biases.astype(np.float64)[..., None]).reshape(n, k)
    dw = dy.astype(np.float64).T @ x.astype(np.float64)
    return (dy.astype(np.float64) @ dense, (dw * codes).reshape(n, -1, g).sum(-1), dw.reshape(n, -1, g).sum(-1))


def run_dwq(args, device) -> int:
    if args.repeat is None:
        args.repeat = 3
    simulated = device.backend == "sim"
    if args.shapes:
        shapes = [(item, *(int(v) for v in item.lower().split("x"))) for item in args.shapes.split(",")]
    else:
        shapes = SIM_SHAPES if simulated else LLAMA_SHAPES
    rows = [int(v) for v in args.rows.split(",")] if args.rows else (SIM_DWQ_ROWS if simulated else DWQ_ROWS)
    dtype = numpy_dtype(args.dtype)
    mx = None if args.no_peers else _mlx()
    if mx is not None and not simulated and not mx.metal.is_available():
        # mlx's CPU backward at these shapes takes minutes per case (2.5 s
        # per call at 1024 x 1024, M = 64, on a 2-core VM; 16 times the work
        # at 4096 x 4096), and a CPU next to a GPU says nothing about either.
        print(f"note: mlx {mx.__version__} has no GPU here (only {mx.default_device()}): not timed")
        mx = None
    print(f"qmetal {qmetal.__version__} bench --dwq on {device.name} ({device.backend})")
    if simulated:
        print("note: this is the CPU simulator, not a GPU: shapes are scaled down and times say nothing about "
              "Metal; it checks that every kernel runs and is right")
    print(f"matmul_vjp (dx, d_scales, d_biases), unpacked {args.bits}-bit codes, group size {args.group_size}, "
          f"{args.dtype}; best of {args.repeat}" + (f"; mlx {mx.__version__} on {mx.default_device()}" if mx else ""))
    header = (f"{'layer':<16}{'M':>6}{'N':>7}{'K':>7}{'ms':>10}{'GB/s':>10}{'dW MiB':>9}{'fused MiB':>11}"
              + (f"{'mlx ms':>10}{'mlx/qmetal':>11}" if mx else ""))
    print(header)
    rng = np.random.default_rng(0)
    failures = 0
    cases = [(s, m) for s in shapes for m in rows]
    for index, ((name, n, k), m) in enumerate(cases, 1):
        print(f"\r[{index}/{len(cases)}] {name} M={m} ...", end="", file=sys.stderr, flush=True)
        init = qmetal.dwq.init((rng.standard_normal((n, k)) * 0.02).astype(dtype), args.bits, args.group_size,
                               device=device)
        # Scales in the activations' dtype, as a model holds them (float32
        # scales would promote the whole op to float32).
        qw = qmetal.QuantizedWeight.from_codes(init.codes, init.scales.astype(dtype), init.biases.astype(dtype),
                                               args.bits, args.group_size, device=device)
        x = rng.standard_normal((m, k)).astype(dtype)
        dy = rng.standard_normal((m, n)).astype(dtype)

        def run_once():
            return qmetal.matmul_vjp(x, qw, dy, device=device)

        results = run_once()
        errors = [np.linalg.norm(got.astype(np.float64) - exact) / np.linalg.norm(exact)
                  for got, exact in zip(results, _vjp64(x, qw, dy))]
        ok = max(errors) < 1e-2
        failures += not ok
        seconds = _time(run_once, args.repeat)
        dx, d_scales, d_biases = results
        moved = (x.nbytes + dy.nbytes + qw.codes.nbytes + qw.scales.nbytes + qw.biases.nbytes + dx.nbytes
                 + d_scales.nbytes + d_biases.nbytes)
        # Beyond inputs and outputs: the pair list of the fused kernel (plan_dwq_vjp), or dW.
        pairs = qmetal._core.plan_dwq_vjp(device, qmetal.asbuffer(x), qw._native, qmetal.asbuffer(dy), True,
                                          qmetal.empty(qw.scales.shape, "float32"),
                                          qmetal.empty(qw.scales.shape, "float32"))[0].buffers[-1][1]
        fused = pairs.nbytes + d_scales.nbytes + d_biases.nbytes
        line = (f"\r{name:<16}{m:>6}{n:>7}{k:>7}{seconds * 1e3:>10.3f}{moved / seconds / 1e9:>10.3g}"
                f"{n * k * 4 / MIB:>9.3g}{fused / MIB:>11.3g}")
        if mx:
            codes = mx.array(qw.codes.view(np.uint32))  # unpacked codes are mlx's 8-bit packing
            options = dict(transpose=True, group_size=args.group_size, bits=8)
            inputs = [_to_mx(mx, a) for a in (x, qw.scales, qw.biases)]
            cotangent = [_to_mx(mx, dy)]

            def peer():
                _, grads = mx.vjp(lambda a, s, b: mx.quantized_matmul(a, codes, s, b, **options), inputs,
                                  cotangent)
                mx.eval(grads)

            theirs = _time(peer, args.repeat)
            line += f"{theirs * 1e3:>10.3f}{theirs / seconds:>11.2f}"
        print(line + ("" if ok else f"  WRONG (relative errors {', '.join(f'{e:.1e}' for e in errors)})"))
    print(" " * 40, end="\r", file=sys.stderr)
    if failures:
        print(f"{failures} result(s) wrong")
        return 1
    print("all results checked against float64; 'fused MiB' is d_scales + d_biases + the pair list, "
          "'dW MiB' the float32 weight gradient an unfused backward stores")
    return 0
