"""Simulator throughput: simulated threads/s and fiber switches/s for a
4096 x 4096 4-bit mat-vec (bench/sim_qmv.metal), so changes to the executor
can be compared. Not a test; prints a table.

    python bench/sim_throughput.py [--n 4096] [--k 4096] [--repeat 5] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import qmetal
import qmetal.sim as sim
from qmetal.reference import affine_dequantize, affine_quantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS_PER_THREADGROUP = 8
THREADS_PER_THREADGROUP = 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--k", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="OS threads (0: one per core)")
    args = parser.parse_args()
    if args.n % ROWS_PER_THREADGROUP or args.k % 256:
        parser.error("n must be a multiple of 8 and k of 256")

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((args.n, args.k)).astype(np.float16)
    packed, scales, biases = affine_quantize(weights, bits=4, group_size=64)
    x = rng.standard_normal(args.k).astype(np.float32)
    y = np.zeros(args.n, np.float32)
    library = sim.compile(os.path.join(HERE, "sim_qmv.metal"))
    buffers = [np.array([args.n, args.k], np.uint32), packed, scales, biases, x, y]
    launch = dict(grid=args.n // ROWS_PER_THREADGROUP, threadgroup=THREADS_PER_THREADGROUP, workers=args.workers)

    library.launch("qmv4", buffers, **launch)  # warm-up, and the check below
    expected = affine_dequantize(packed, scales, biases, bits=4, group_size=64).astype(np.float64) @ x
    error = np.abs(y - expected).max() / np.abs(expected).max()
    # The reference rounds each dequantized weight to float16 as MLX does; the
    # kernel keeps them in float32.
    if error > 4e-3:
        raise SystemExit(f"wrong result: relative error {error:.2e}")

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        stats = library.launch("qmv4", buffers, **launch)
        times.append(time.perf_counter() - start)
    best = min(times)
    workers = args.workers or os.cpu_count()
    print(f"qmetal {qmetal.__version__} simulator, {workers} worker(s), best of {args.repeat}")
    print(f"{'kernel':<22}{'threads':>10}{'switches':>10}{'time ms':>10}{'Mthreads/s':>12}{'Mswitches/s':>13}")
    print(f"{f'qmv4 {args.n}x{args.k}':<22}{stats['threads']:>10}{stats['switches']:>10}{best * 1e3:>10.1f}"
          f"{stats['threads'] / best / 1e6:>12.2f}{stats['switches'] / best / 1e6:>13.2f}")


if __name__ == "__main__":
    main()
