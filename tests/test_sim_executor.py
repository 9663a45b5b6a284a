"""The simulator's executor: thread ids, barriers, simdgroup collectives with
partial simdgroups, threadgroup memory, and the faults it must report
instead of hanging. Scenarios are C++ (tests/sim/executor_check.cpp) built
against the installed library, and again from the sources with the ucontext
fiber switch that hosts without the assembly one (Apple silicon, for now)
use; every valid one runs under three schedules with identical results."""

import os
import re
import shutil
import subprocess

import pytest

import qmetal

SCHEDULES = ["forward", "reverse", "random"]
HERE = os.path.dirname(__file__)
SOURCES = os.path.join(HERE, "..", "csrc")


# "installed": the wheel's library; "ucontext": the fallback switch, from the
# sources; "arm64": the arm64 assembly switch, cross-compiled and run under
# qemu-user where both are installed (apt-get install g++-aarch64-linux-gnu
# qemu-user), the only way to run it on an x86-64 machine.
@pytest.fixture(scope="module", params=["installed", "ucontext", "arm64"])
def check_program(request, tmp_path_factory):
    compiler, runner = "c++", []
    if request.param == "arm64":
        compiler = "aarch64-linux-gnu-g++"
        if shutil.which(compiler) is None or shutil.which("qemu-aarch64") is None:
            pytest.skip("needs aarch64-linux-gnu-g++ and qemu-aarch64")
        runner = ["qemu-aarch64"]
    if shutil.which(compiler) is None:
        pytest.skip("no C++ compiler")
    binary = tmp_path_factory.mktemp("sim") / "executor_check"
    if request.param == "installed":
        sources = [qmetal.get_library("sim"), qmetal.get_library("core")]
    else:
        if not os.path.isdir(os.path.join(SOURCES, "sim")):
            pytest.skip("needs the source tree")
        sources = ["-DQMETAL_VERSION=\"test\"", "-I", os.path.join(SOURCES, "include"),
                   "-I", os.path.join(HERE, "..", "shaders"), "-I", os.path.join(SOURCES, "sim", "include")]
        sources += ["-DQMETAL_SIM_UCONTEXT"] if request.param == "ucontext" else ["-static"]
        sources += [os.path.join(SOURCES, "sim", name) for name in ("executor.cpp", "faults.cpp", "fiber.cpp")]
        sources += [os.path.join(SOURCES, "core", name) for name in sorted(os.listdir(os.path.join(SOURCES, "core")))
                    if name.endswith(".cpp")]
    subprocess.run([compiler, "-std=c++17", "-O1", "-I", qmetal.get_include(),
                    os.path.join(HERE, "sim", "executor_check.cpp"), *sources, "-pthread", "-o", str(binary)],
                   check=True, capture_output=True)
    return [*runner, str(binary)]


def scenario(command, name, schedule="forward"):
    result = subprocess.run([*command, name, schedule], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, result.stdout.splitlines()


def valid(binary, name):
    outputs = {s: scenario(binary, name, s) for s in SCHEDULES}
    for schedule, (code, lines) in outputs.items():
        assert code == 0, (schedule, lines)
    assert outputs["forward"] == outputs["reverse"] == outputs["random"]
    return outputs["forward"][1]


def test_thread_ids_cover_the_grid(check_program):
    lines = valid(check_program, "ids")
    grid, tg = (3, 2, 2), (10, 4, 1)
    per_group = tg[0] * tg[1]
    width = grid[0] * tg[0]
    height = grid[1] * tg[1]
    assert len(lines) == grid[0] * grid[1] * grid[2] * per_group
    for index, line in enumerate(lines):
        x, y, z = index % width, (index // width) % height, index // (width * height)
        local = (x % tg[0]) + tg[0] * (y % tg[1])
        group = (x // tg[0]) + 10 * (y // tg[1]) + 100 * z
        assert line.split() == [str(local), str(local // 32 * 100 + local % 32), str(group), "2"]


def test_barriers_order_a_threadgroup_reduction(check_program):
    lines = valid(check_program, "reduce")
    for line in lines:
        n, *sums = line.split()
        n = int(n)
        assert [float(v) for v in sums] == [n * (n + 1) / 2 + 1000 * g * n for g in range(3)]


def test_collectives_with_partial_and_shrinking_simdgroups(check_program):
    lines = valid(check_program, "simd_sum")
    full, partial = (1 << 32) - 1, (1 << 18) - 1
    even_lanes = sum(1 << lane for lane in range(0, 18, 2))
    for t, line in enumerate(lines):
        first_sum, first_mask, second_sum, second_mask = line.split()
        if t < 32:
            assert (float(first_sum), int(first_mask)) == (sum(range(32)), full)
            assert (float(second_sum), int(second_mask)) == (32, full)
        else:
            assert (float(first_sum), int(first_mask)) == (sum(range(32, 50)), partial)
            if t % 2:
                assert (float(second_sum), int(second_mask)) == (-1, 0)  # returned before it
            else:
                assert (float(second_sum), int(second_mask)) == (9, even_lanes)


def test_threadgroup_arguments_are_per_threadgroup_and_poisoned(check_program):
    values = [int(v) for v in valid(check_program, "threadgroup_args")]
    for g in range(4):
        assert values[g * 64] == -1  # read before any write: 0xFFFFFFFF
        assert values[g * 64 + 1: g * 64 + 64] == [(63 - t) * 3 + g for t in range(1, 64)]


def test_missing_barrier_shows_as_schedule_dependence(check_program):
    results = {s: scenario(check_program, "missing_barrier", s) for s in ("forward", "reverse")}
    assert results["forward"][0] == results["reverse"][0] == 0
    assert results["forward"][1] != results["reverse"][1]


@pytest.mark.parametrize("name, message", [
    ("barrier_after_return", r"barrier not reached by every thread of threadgroup \(\d, 0, 0\): thread \d+ .* waits at "
                             r"barrier at .*executor_check.cpp:\d+, but thread 5 \(simdgroup 0, lane 5\) has returned"),
    ("divergent_barriers", r"divergent barriers in threadgroup \(0, 0, 0\): .*executor_check.cpp:(\d+), but .*"
                           r"executor_check.cpp:(?!\1)\d+"),
    ("divergent_collectives", r"divergent simdgroup collectives in threadgroup \(0, 0, 0\): thread \d+ .* collective at "
                              r".*executor_check.cpp:(\d+), but thread \d+ .* collective at .*executor_check.cpp:(?!\1)\d+"),
    ("collective_and_barrier", r"divergent control flow in threadgroup \(0, 0, 0\): thread \d+ .* simdgroup collective "
                               r"at .*, but thread 3 \(simdgroup 0, lane 3\) waits at barrier"),
    ("kernel_throws", r"^error: thrown by thread 7$"),
])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_broken_kernels_are_reported_not_hung(check_program, name, message, schedule):
    code, lines = scenario(check_program, name, schedule)
    assert code == 3
    assert len(lines) == 1
    assert re.search(message, lines[0]), lines[0]
