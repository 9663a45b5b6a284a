"""The simulator: Metal kernels run on the CPU with GPU semantics.

Every qmetal kernel runs here on machines without Metal. Your own kernels can
too: ``qmetal.sim.compile`` builds a ``.metal`` file with the system C++
compiler (the same generator and MSL headers qmetal's kernels use) into a
cached shared library, and ``Library.launch`` runs one of its kernels::

    lib = qmetal.sim.compile("saxpy.metal")
    lib.launch("saxpy", [args, x, y], grid=(n // 64,), threadgroup=(64,))

Threads are fibers; threadgroups run in parallel on all cores; barriers and
simdgroup collectives must be reached by every live thread at the same call
site, otherwise a RuntimeError names both threads and both ``.metal`` lines.
Threadgroup memory starts as 0xFF bytes. Kernels are built with ``-g``, so
gdb can step through them; ``sanitize=True`` builds them with AddressSanitizer
and UBSan (run Python with the sanitizer runtime preloaded, see the README).
"""

from __future__ import annotations

import contextlib
import warnings
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import _core
from . import _generator
from ._generator import GeneratorError

__all__ = ["CompileError", "Library", "SCHEDULES", "builtin", "compile", "device", "sanitizer_preload"]

SCHEDULES = ("forward", "reverse", "random")
MAX_BUFFERS = 31  # Metal's buffer slots
BUILD_FLAGS = ["-O2", "-g", "-fPIC", "-shared", "-fvisibility=hidden"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


class CompileError(RuntimeError):
    """The .metal file did not compile; the message holds the compiler's output."""


class Library:
    """Kernels compiled for the simulator."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def path(self) -> str:
        return self._handle.path

    @property
    def kernels(self) -> list[str]:
        return self._handle.kernels

    @property
    def race_instrumented(self) -> bool:
        """Built with ``race_check=True``: launches check for data races."""
        return self._handle.race_instrumented

    def __repr__(self):
        return f"<qmetal.sim.Library {self.path} kernels={self.kernels}>"

    def launch(self, name, buffers, grid=None, threadgroup=(1,), threadgroup_memory=(), *, schedule="forward",
               seed=0, function_constants=None, threads=None, workers=0, race_check=None, timeout=None,
               guard=True):
        """Run kernel ``name`` as ``dispatchThreadgroups(grid, threadgroup)``
        (or, with ``threads``, as ``dispatchThreads(threads, threadgroup)``).

        ``buffers[i]`` binds ``[[buffer(i)]]`` (a list, or a dict of index to
        buffer): NumPy arrays and qmetal Buffers are bound without copying,
        so results appear in the arrays passed; a ``constant`` struct is a
        NumPy array (or bytes) holding its bytes. ``threadgroup_memory[i]`` is
        the size in bytes of ``[[threadgroup(i)]]``. ``function_constants``
        maps indices to bool, int or float values.

        ``race_check`` (default: whether the library was compiled with
        ``race_check=True``) reports a data race, two threads of a
        threadgroup touching the same byte with no barrier between them, as a
        RuntimeError naming both threads, the address space and both
        ``.metal`` lines.

        ``timeout`` (seconds) stops a kernel that runs longer with a
        RuntimeError naming it and its threadgroups, as a GPU driver stops a
        hung kernel; Ctrl-C stops any launch. With ``guard`` (the default)
        the kernel runs on copies of the buffers that end at a guard page, so
        an access past a buffer is a RuntimeError naming the kernel and the
        buffer instead of corrupting memory beside it (results are copied
        back; buffers bound twice run in place). A thread that overflows its
        stack (QMETAL_SIM_STACK_KB, default 128) is a RuntimeError too, and
        an integer division by zero gives 0 (the GPU's result is undefined)
        with a RuntimeWarning.

        Returns ``{"threads": ..., "switches": ...}``: simulated threads run
        and fiber context switches made, for benchmarks.
        """
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if (grid is None) == (threads is None):
            raise ValueError("give either grid (threadgroups) or threads (dispatchThreads), not both or neither")
        seed = _integer(seed, "seed", 0, 2**64 - 1)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or
                                    not timeout > 0):
            raise ValueError(f"timeout: expected a positive number of seconds or None, got {timeout!r}")
        workers = _integer(workers, "workers", 0, 2**32 - 1)
        memory = [_integer(b, f"threadgroup_memory[{i}]", 0, 2**32 - 1) for i, b in enumerate(threadgroup_memory)]
        bound, keepalive = _bind_buffers(buffers)
        constants = sorted((function_constants or {}).items())
        divisions = _core.sim_divisions_by_zero()
        threads_run, switches = self._handle.launch(name, bound, _dims(grid, "grid") if grid is not None else [1],
                            _dims(threadgroup, "threadgroup"), memory,
                            _dims(threads, "threads") if threads is not None else None, schedule, seed,
                            constants, workers, self._race_check(race_check), float(timeout or 0), bool(guard))
        del keepalive
        divisions = _core.sim_divisions_by_zero() - divisions
        if divisions:
            warnings.warn(f"kernel {name!r} divided an integer by zero {divisions} time(s); a GPU gives an "
                          "undefined value, the simulator gave 0", RuntimeWarning, stacklevel=2)
        return {"threads": threads_run, "switches": switches}

    def execute(self, plan, schedule="forward", seed=0, *, race_check=None):
        """Run a ``DispatchPlan`` exactly as the Metal backend would encode it
        (validated first, as the planner's plans are)."""
        self._handle.execute(plan, schedule, _integer(seed, "seed", 0, 2**64 - 1), self._race_check(race_check))

    @contextlib.contextmanager
    def running_ops(self, race_check=None):
        """While the block runs, qmetal's ops (``qmetal.matmul`` and the rest,
        on the simulator) run their plans with this library's kernels, e.g. a
        race-checked build of modified shaders; kernels it does not define come
        from the built-in library. Process-wide: for tests and kernel
        development."""
        _core.sim_use_for_ops(self._handle, self._race_check(race_check))
        try:
            yield self
        finally:
            _core.sim_use_for_ops(None, False)

    def _race_check(self, race_check):
        if race_check is None:
            return self.race_instrumented
        if not isinstance(race_check, (bool, np.bool_)):
            raise TypeError(f"race_check: expected a bool, got {type(race_check).__name__}")
        return bool(race_check)


def device(tensor_ops: bool = False, max_threads_per_threadgroup: int = 1024):
    """A simulator device of its own. With ``tensor_ops=True`` it reports
    Metal 4 tensor operations, so the planners route prefill to the
    tensor-op kernels as on an M5-class GPU (pass it as ``device=``);
    ``QMETAL_SIM_TENSOR_OPS=1`` makes the default simulator device do so.
    ``max_threads_per_threadgroup`` (a multiple of 32 up to 1024) is its limit
    for every kernel, as a GPU's is for kernels with many registers."""
    if not isinstance(tensor_ops, (bool, np.bool_)):
        raise TypeError(f"tensor_ops: expected a bool, got {type(tensor_ops).__name__}")
    if isinstance(max_threads_per_threadgroup, (bool, np.bool_)) or not isinstance(
            max_threads_per_threadgroup, (int, np.integer)):
        raise TypeError("max_threads_per_threadgroup: expected an int, got "
                        f"{type(max_threads_per_threadgroup).__name__}")
    return _core.sim_device(bool(tensor_ops), int(max_threads_per_threadgroup))


def builtin() -> Library:
    """qmetal's own kernels."""
    return Library(_core.sim_builtin_library())


def compile(path_or_source, defines=None, include_dirs=(), *, cxx=None, sanitize=None, cache_dir=None,
            strict=True, race_check=False, std="metal3.1") -> Library:
    """Build a ``.metal`` file (a path) or MSL source text for the simulator.

    The result is cached by content (the preprocessed source, the simulator's
    headers, the compiler and its flags), so a second call is quick.
    ``defines`` are preprocessor macros; ``include_dirs`` extra include paths.

    ``strict`` (the default) holds the source to the rules of MSL 3.1 that
    C++ does not enforce, as Apple's compiler does: threadgroup variables
    only in kernels, explicit address spaces, kernel signatures, no C++
    features MSL lacks, ``-Wall -Werror`` (README, "Strict MSL", lists what
    is checked). ``strict=False`` is for C++ that is knowingly not MSL.

    ``race_check=True`` builds the kernels so that every launch checks for
    data races between the threads of a threadgroup (every load and store is
    reported to the simulator; several times slower). It cannot be combined
    with ``sanitize``.

    ``std`` is the language version, as Apple's ``-std=``: ``"metal3.1"``
    (qmetal's kernels), ``"metal3.2"``, or ``"metal4.0"``, which defines
    ``__HAVE_TENSOR__`` and so enables ``<metal_tensor>`` and
    ``<MetalPerformancePrimitives/MetalPerformancePrimitives.h>`` (the
    simulator's model of them: README, "Metal 4 tensor operations").
    """
    try:
        metal_version = _generator.language_version(std)
    except GeneratorError as error:
        raise ValueError(str(error)) from None
    path, source = _source_of(path_or_source)
    cxx = cxx or os.environ.get("QMETAL_SIM_CXX") or os.environ.get("CXX") or "c++"
    if shutil.which(cxx) is None:
        raise RuntimeError(f"qmetal.sim.compile needs a C++17 compiler (g++ >= 12 or clang >= 15); {cxx!r} "
                           "was not found: install one or set CXX")
    if sanitize is None:
        sanitize = os.environ.get("QMETAL_SIM_SANITIZE", "") not in ("", "0")
    if sanitize and race_check:
        raise ValueError("race_check: cannot be combined with sanitize (one instrumentation per build)")
    if sanitize:
        _check_sanitizer_loaded(cxx)
    include_dirs = [str(d) for d in include_dirs]
    if path is not None:
        include_dirs.insert(0, str(Path(path).resolve().parent))
    defines = {str(k): (None if v is None else str(v)) for k, v in (defines or {}).items()}
    display = str(path) if path is not None else "<source>"
    try:
        text = _generator.preprocess(display, cxx, include_dirs, defines, source=source, metal_version=metal_version)
    except GeneratorError as error:
        raise CompileError(str(error)) from None
    flags = (BUILD_FLAGS + _generator.cxx_flags(_is_clang(cxx), strict) + _generator.cxx_standard_flags(text)
             + _compiler_flags(cxx, sanitize))
    compile_only = _generator.RACE_CHECK_FLAGS if race_check else []
    key = hashlib.sha256("\0".join([text, _toolchain_identity(cxx), *flags, *compile_only]).encode()).hexdigest()[:24]
    cache = Path(cache_dir or _default_cache_dir())
    library = cache / f"{Path(display).stem or 'source'}-{key}.so"
    if not library.exists():
        try:
            code = _generator.generate(text, display_name=display, strict=strict, race_check=race_check,
                                       metal_version=metal_version)
        except GeneratorError as error:
            raise CompileError(str(error)) from None
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as work:
            cpp = Path(work) / "kernels.cpp"
            cpp.write_text(code)
            out = Path(work) / "kernels.so"
            if race_check:
                # Compile with the instrumentation, link without its runtime:
                # the library defines the hooks (qmetal_sim/race_hooks.h).
                obj = Path(work) / "kernels.o"
                steps = [[cxx, *[f for f in flags if f != "-shared"], *compile_only, "-isystem",
                          _generator.SHIM_INCLUDE, "-c", str(cpp), "-o", str(obj)],
                         [cxx, "-shared", str(obj), "-o", str(out)]]
            else:
                steps = [[cxx, *flags, "-isystem", _generator.SHIM_INCLUDE, str(cpp), "-o", str(out)]]
            for step in steps:
                result = subprocess.run(step, capture_output=True, text=True)
                if result.returncode != 0:
                    raise CompileError(f"compiling {display} for the simulator failed:\n{result.stderr}")
            os.replace(out, library)
    return Library(_core.sim_open_library(str(library)))


def sanitizer_preload(cxx=None) -> str:
    """What LD_PRELOAD must hold for kernels built with ``sanitize=True``: the
    compiler's AddressSanitizer runtime (and, for g++, libstdc++ so ASan's
    exception interceptor finds it). Empty if the compiler has none."""
    cxx = cxx or os.environ.get("QMETAL_SIM_CXX") or os.environ.get("CXX") or "c++"
    if _is_clang(cxx):
        names = [f"libclang_rt.asan-{platform.machine()}.so"]
    else:
        names = ["libasan.so", "libstdc++.so"]
    paths = []
    for name in names:
        path = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            return ""
        paths.append(path)
    return " ".join(paths)


def _check_sanitizer_loaded(cxx):
    """A sanitized library loaded into a process without the sanitizer's
    runtime makes the interpreter exit; say how to start it instead."""
    try:
        with open("/proc/self/maps") as maps:
            loaded = maps.read()
    except OSError:
        return  # not Linux: nothing to check here
    if "libasan" in loaded or "libclang_rt.asan" in loaded:
        return
    preload = sanitizer_preload(cxx)
    raise RuntimeError("sanitize=True needs the AddressSanitizer runtime loaded before Python starts: run "
                       f"LD_PRELOAD=\"{preload or '<your compiler libasan.so>'}\" "
                       "ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0 python ...")


def _integer(value, what, lowest, highest):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: expected an integer, got {value!r}")
    if not lowest <= int(value) <= highest:
        raise ValueError(f"{what}: expected {lowest} to {highest}, got {value}")
    return int(value)


def _compiler_flags(cxx, sanitize):
    flags = []
    if _is_clang(cxx):
        flags.append("-fexcess-precision=16")  # round half arithmetic per operation, as the GPU does
    if sanitize:
        flags += SANITIZE_FLAGS
        if _is_clang(cxx):
            flags.append("-shared-libsan")  # clang leaves the runtime out of shared objects otherwise
    return flags


@functools.lru_cache(maxsize=None)
def _is_clang(cxx):
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    return "clang" in version.lower()


def _source_of(path_or_source):
    if isinstance(path_or_source, os.PathLike):
        return Path(path_or_source), Path(path_or_source).read_text()
    if not isinstance(path_or_source, str):
        raise TypeError(f"path_or_source: expected a path or MSL source text, got {type(path_or_source).__name__}")
    if "\n" not in path_or_source and (path_or_source.endswith(".metal") or os.path.isfile(path_or_source)):
        if not os.path.exists(path_or_source):
            raise FileNotFoundError(f"path_or_source: no such file {path_or_source!r}")
        return Path(path_or_source), Path(path_or_source).read_text()
    return None, path_or_source


def _default_cache_dir():
    if os.environ.get("QMETAL_CACHE_DIR"):
        return Path(os.environ["QMETAL_CACHE_DIR"]) / "sim"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qmetal" / "sim"


@functools.lru_cache(maxsize=None)
def _toolchain_identity(cxx):
    """Compiler version, generator and simulator headers: what a cached
    library depends on besides the kernel's own text."""
    digest = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    digest.update(version.encode())
    for module in (_generator, _generator._rules):
        digest.update(Path(module.__file__).read_bytes())
    for root, _, files in sorted(os.walk(_generator.SHIM_INCLUDE)):
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(Path(root, name).read_bytes())
    digest.update(_core.__version__.encode())
    return digest.hexdigest()


def _dims(value, what):
    if isinstance(value, (int, np.integer)):
        value = (value,)
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what}: expected an int or a tuple of 1 to 3 ints, got {value!r}") from None
    if not 1 <= len(items) <= 3:
        raise ValueError(f"{what}: expected 1 to 3 extents, got {value!r}")
    return [_integer(v, what, 0, 2**32 - 1) for v in items]


def _bind_buffers(buffers):
    """(address, bytes) per [[buffer(i)]] slot, and the objects to keep alive."""
    if isinstance(buffers, dict):
        for index in buffers:  # before any allocation sized by an index
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < MAX_BUFFERS:
                raise ValueError(f"buffers: keys must be buffer indices 0 to {MAX_BUFFERS - 1}, got {index!r}")
        slots = [None] * (max(buffers, default=-1) + 1)
        for index, value in buffers.items():
            slots[index] = value
    elif isinstance(buffers, (list, tuple)):
        slots = list(buffers)
    else:
        raise TypeError(f"buffers: expected a list or a dict of buffers, got {type(buffers).__name__}")
    bound, keepalive = [], []
    for i, value in enumerate(slots):
        if value is None:
            bound.append((0, 0, False))
            continue
        if isinstance(value, _core.Buffer):
            bound.append((value.address, value.nbytes, bool(value.readonly)))
            keepalive.append(value)
            continue
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = np.frombuffer(value, dtype=np.uint8).copy() if isinstance(value, bytes) else np.frombuffer(
                value, dtype=np.uint8)
        elif isinstance(value, np.generic):
            value = np.array(value)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"buffers[{i}]: expected a NumPy array, a qmetal Buffer or bytes, "
                            f"got {type(value).__name__}")
        if not value.flags.c_contiguous:
            raise ValueError(f"buffers[{i}]: the array must be C-contiguous to be bound without a copy")
        if value.nbytes == 0:
            raise ValueError(f"buffers[{i}]: the array is empty")
        bound.append((value.__array_interface__["data"][0], value.nbytes, not value.flags.writeable))
        keepalive.append(value)
    return bound, keepalive
