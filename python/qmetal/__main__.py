"""Command line: ``python -m qmetal info``, ``bench``, ``cost`` and ``selftest``."""

from __future__ import annotations

import argparse
import sys

import qmetal


def _info(args: argparse.Namespace) -> int:
    device = qmetal.get_device(args.backend) if args.backend else qmetal.default_device()
    print(f"qmetal {qmetal.__version__}")
    print(f"backends usable: {', '.join(qmetal.available_backends())}")
    # Why Metal is (not) used: not built, no GPU, a GPU without the Apple7 /
    # Metal3 families, a missing or stale kernel library.
    print(f"metal: {qmetal._core.backend_status('metal')}")
    print(f"cuda: {qmetal._core.backend_status('cuda')}")
    print(f"backend: {device.backend}")
    print(f"device: {device.name}")
    if device.details:
        print(f"details: {device.details}")
    print(f"architecture: {device.architecture}")
    print("capabilities:")
    for key, value in device.capabilities.items():
        print(f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qmetal", description=__doc__)
    # As ``python -m nanobind --cmake_dir``: for -Dqmetal_DIR=... in C++ builds.
    parser.add_argument("--cmake_dir", action="store_true", help="print the folder of qmetal's CMake package")
    parser.add_argument("--include_dir", action="store_true", help="print the folder of qmetal's C++ headers")
    commands = parser.add_subparsers(dest="command")
    info = commands.add_parser("info", help="backend, device, capabilities and version")
    info.add_argument("--backend", choices=["sim", "metal", "cuda"],
                      help="default: QMETAL_BACKEND, else the best available")
    info.set_defaults(run=_info)
    bench = commands.add_parser("bench", help="LLM-shaped quantized matmuls: time, GB/s, GFLOP/s, checked results")
    from . import _bench

    _bench.add_arguments(bench)
    bench.set_defaults(run=_bench.run)
    cost = commands.add_parser(
        "cost", help="decode inner loops per weight byte, ours next to MLX's, from LLVM IR (needs clang++)")
    from . import _cost

    _cost.add_arguments(cost)
    cost.set_defaults(run=_cost.run)
    selftest = commands.add_parser(
        "selftest", help="a report to paste from a first Mac: device, every kernel route against the reference, "
                         "zero-copy, a long stream, timings")
    selftest.add_argument("--backend", choices=["sim", "metal"], help="default: QMETAL_BACKEND, else the best available")
    from . import _selftest

    selftest.set_defaults(run=_selftest.run)
    args = parser.parse_args(argv)
    if args.cmake_dir or args.include_dir:
        print(qmetal.cmake_dir() if args.cmake_dir else qmetal.get_include())
        return 0
    if args.command is None:
        parser.error("a command is required (info, bench, cost or selftest)")
    try:
        return args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
