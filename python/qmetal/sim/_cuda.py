"""Turns a .metal file into CUDA: the third target of the same shaders.

The simulator's generator (_generator.py) reads the .metal file: it
preprocesses it in the simulator's scan mode, finds every kernel and every
``[[host_name("...")]]`` instantiation, binds buffer, threadgroup and
thread-position arguments, resolves address-space overloads and checks MSL's
rules. This module reuses that walk and changes what it writes:

  * every function of the source is ``__device__`` (CUDA has no default
    device execution space in nvcc), kernels included: one
    ``extern "C" __global__`` entry per kernel and host name calls them with
    the arguments the simulator binds (``[[buffer(i)]]`` from
    ``Params.buffers[i]``, positions from CUDA's block and thread indices);
  * ``threadgroup T x[N];`` in a kernel is ``__shared__`` storage, and
    ``[[threadgroup(i)]]`` arguments point into the launch's dynamic shared
    memory at the offset the host computed;
  * program-scope ``constant`` variables are ``__device__ const``; the
    address-space keywords are dropped by the generator (CUDA's own
    ``__device__`` expands to a word ``device``, so no macro can drop them);
  * the prelude is csrc/cuda/include/qmetal_cuda/prelude.h: warp shuffles for
    simdgroup collectives, __syncthreads for barriers, Apple's simdgroup
    matrix layout, half/bfloat/vectors and metal:: math over libdevice.

Each file also gets a host table (name -> __global__ function) that the
`cuda` backend reads through the function `entry_name`.

Standalone use (CMake runs it this way):
    python _cuda.py --cxx c++ [-I dir] [--entry name] [--chunk i/n] in.metal out.cu
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

if __package__:
    from . import _generator as _gen
else:  # run as a script (CMake does)
    import _generator as _gen

def _cuda_include() -> str:
    # Installed next to the simulator's headers; in a source tree, csrc/cuda/include.
    installed = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "include", "cuda"))
    if os.path.isdir(installed):
        return installed
    return os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", "csrc",
                                         "cuda", "include"))


CUDA_INCLUDE = _cuda_include()
SYMBOL_PREFIX = "__qmetal_cuda_"
# Words the simulator's prelude defines away; `constant` is rewritten by the
# generator itself (to const).
DROPPED_KEYWORDS = {"device", "thread", "threadgroup", "threadgroup_imageblock", "kernel", "ray_data",
                    "object_data"}
# Flags the generated CUDA compiles with (nvcc and clang alike).
CUDA_STD = "-std=c++17"

# Thread-position attributes -> CUDA expressions (qmetal_cuda/prelude.h).
CUDA_POSITIONS = {
    "thread_position_in_grid": "::qmetal_cuda::ids::thread_position_in_grid(__qmetal_p)",
    "thread_position_in_threadgroup": "::qmetal_cuda::ids::thread_position_in_threadgroup()",
    "threadgroup_position_in_grid": "::qmetal_cuda::ids::threadgroup_position_in_grid(__qmetal_p)",
    "threads_per_threadgroup": "::qmetal_cuda::ids::threads_per_threadgroup()",
    "dispatch_threads_per_threadgroup": "::qmetal_cuda::ids::threads_per_threadgroup()",
    "threadgroups_per_grid": "::qmetal_cuda::ids::threadgroups_per_grid(__qmetal_p)",
    "threads_per_grid": "::qmetal_cuda::ids::threads_per_grid(__qmetal_p)",
    "thread_index_in_threadgroup": "::qmetal_cuda::ids::thread_index_in_threadgroup()",
    "thread_index_in_simdgroup": "::qmetal_cuda::ids::thread_index_in_simdgroup()",
    "simdgroup_index_in_threadgroup": "::qmetal_cuda::ids::simdgroup_index_in_threadgroup()",
    "threads_per_simdgroup": "::qmetal_cuda::ids::threads_per_simdgroup()",
    "thread_execution_width": "::qmetal_cuda::ids::threads_per_simdgroup()",
    "simdgroups_per_threadgroup": "::qmetal_cuda::ids::simdgroups_per_threadgroup()",
    "dispatch_simdgroups_per_threadgroup": "::qmetal_cuda::ids::simdgroups_per_threadgroup()",
    "thread_index_in_quadgroup": "::qmetal_cuda::ids::thread_index_in_quadgroup()",
    "quadgroup_index_in_threadgroup": "::qmetal_cuda::ids::quadgroup_index_in_threadgroup()",
    "quadgroups_per_threadgroup": "::qmetal_cuda::ids::quadgroups_per_threadgroup()",
}
assert set(CUDA_POSITIONS) == set(_gen.POSITIONS)
# The generator records a position parameter by the simulator's expression;
# attributes sharing one expression mean the same thing.
_BY_SIM_EXPRESSION = {_gen.POSITIONS[name]: cuda for name, cuda in CUDA_POSITIONS.items()}

_IDENTIFIER = re.compile(r"[A-Za-z0-9_]")


def entry_symbol(host_name: str) -> str:
    """The C symbol of a kernel's __global__ entry (qmetal_cuda/abi.h)."""
    return SYMBOL_PREFIX + "".join(c if _IDENTIFIER.fullmatch(c) else "".join(f"_x{b:02X}" for b in c.encode())
                                   for c in host_name)


class CudaGenerator(_gen.Generator):
    """The simulator's generator, writing CUDA."""

    def __init__(self, text: str, strict: bool = True):
        super().__init__(text, strict=strict)
        self.shared_counter = 0
        self.marked: set[int] = set()  # token indices before which __device__ was inserted

    # --- hooks ----------------------------------------------------------------

    def _dropped(self, k):
        return any(s <= k <= e for s, e in getattr(self, "dropped", ()))

    def _declaration_start(self, start, end):
        """Where `__device__` goes in the declaration tokens[start:end]: after
        template headers and access specifiers; None if not a function."""
        tokens = self.tokens
        k = start
        while k < end:
            if tokens[k].text == "template" and k + 1 < end and tokens[k + 1].text == "<":
                k = self.angle_close(k + 1) + 1
            elif tokens[k].text in ("public", "private", "protected") and tokens[k + 1].text == ":":
                k += 2
            else:
                break
        if k >= end or tokens[k].text in ("typedef", "using", "static_assert", "namespace", "struct", "class",
                                          "union", "enum", "template", "extern", "constant", "__device__"):
            return None
        if tokens[k].text == "friend" and tokens[k + 1].text in ("struct", "class", "union"):
            return None
        return k

    def _mark_device(self, k):
        if k in self.marked or self._dropped(k):
            return
        self.marked.add(k)
        self.edits.items.append((self.tokens[k].start, self.tokens[k].start, "__device__ "))

    def on_function_head(self, start, end):
        k = self._declaration_start(start, end)
        if k is not None:
            self._mark_device(k)

    def on_declaration(self, start, end):
        if start >= end:
            return
        k = self._declaration_start(start, end)
        if k is None:
            return
        head = self._function_head(k, end)
        if head is None:
            return
        _, _, close_at = head
        # `template <class T> S(T) -> S<T>;` is a deduction guide, not a
        # function (trailing-return prototypes are left alone with them).
        if close_at + 1 < end and self.tokens[close_at + 1].text == "->":
            return
        self._mark_device(k)

    def constant_keyword_text(self, i, text, program_scope, statement_start):
        if not program_scope or statement_start is None:
            return text
        # A program-scope variable (not a function returning a constant
        # reference or pointer, nor a parameter of one).
        tokens = self.tokens
        depth = 0
        for k in range(statement_start, i):
            if tokens[k].text in "([":
                depth += 1
            elif tokens[k].text in ")]":
                depth -= 1
        if depth:
            return text
        end = i
        while end < len(tokens) and tokens[end].text not in (";", "{", "="):
            end += 1
        if end < len(tokens) and tokens[end].text != "=" and self._function_head(statement_start, end) is not None:
            return text
        return "__device__ " + ("const" if text.strip() else "")

    def threadgroup_storage(self, type_text, name, dims):
        # Raw __shared__ bytes viewed as the declared type: __shared__
        # variables cannot have constructors, MSL's threadgroup ones may.
        self.shared_counter += 1
        alias = f"__qmetal_tg_{self.shared_counter}_t"
        storage = f"__qmetal_tg_{self.shared_counter}"
        return (f"typedef {type_text} {alias}{dims}; __shared__ __attribute__((aligned(alignof({alias})))) "
                f"unsigned char {storage}[sizeof({alias})]; {alias}& {name} = *reinterpret_cast<{alias}*>({storage});")

    def _program_constant(self, i, namespace):
        # The simulator's objects for function constants (and constants
        # computed from them), made device code: their reads go to
        # qmetal_cuda::function_constant (prelude.h).
        before = len(self.edits.items)
        super()._program_constant(i, namespace)
        if len(self.edits.items) == before:
            return
        start, end, text = self.edits.items[-1]
        # half is a class here (prelude's types.h): an explicit conversion to
        # other arithmetic types keeps `float(constant_of_type_half)` valid.
        text = re.sub(r"operator ([^(]+)\(\) const \{",
                      lambda m: (f"template <class __qmetal_U, ::std::enable_if_t<!::std::is_same_v<__qmetal_U, "
                                 f"{m.group(1)}> && ::std::is_arithmetic_v<__qmetal_U>, int> = 0> __device__ explicit "
                                 f"operator __qmetal_U() const {{ return __qmetal_U({m.group(1)}(*this)); }} "
                                 f"__device__ operator {m.group(1)}() const {{"), text, count=1)
        text = (text.replace("bool defined()", "__device__ bool defined()")
                .replace("::qmetal_sim::", "::qmetal_cuda::").replace("static const __qmetal_fc_", "__device__ const __qmetal_fc_"))
        self.edits.items[-1] = (start, end, text)

    def run(self):
        super().run()
        for k, t in enumerate(self.tokens):
            if t.kind == "id" and t.text in DROPPED_KEYWORDS:
                self.edits.replace(t.start, t.end, " ", self.text)

    # --- output -----------------------------------------------------------------

    def entry_points(self, entry_name, chunk=None):
        lines, table = [], []
        index, count = chunk or (0, 1)
        for n, entry in enumerate(self.entries):
            if n % count != index:
                continue
            args = []
            for p in entry.kernel.params:
                if p.kind == "buffer":
                    args.append(f"::qmetal_cuda::BufferArg{{__qmetal_p.buffers[{p.expr}]}}")
                elif p.kind == "threadgroup":
                    args.append(f"::qmetal_cuda::ThreadgroupArg{{::qmetal_cuda::dynamic_threadgroup_memory + "
                                f"__qmetal_p.threadgroup_offsets[{p.expr}]}}")
                else:
                    args.append(f"::qmetal_cuda::position({_BY_SIM_EXPRESSION[p.expr]})")
            open_ns = "".join(f"namespace {name} {{ " for name in entry.namespace)
            close_ns = "}" * len(entry.namespace)
            qualifier = "".join(f"{name}::" for name in entry.namespace)
            symbol = entry_symbol(entry.host_name)
            lines.append(f'{open_ns}extern "C" __global__ void {symbol}(const ::qmetal_cuda::Params __qmetal_p) '
                         f"{{ (void)__qmetal_p; {entry.target}({', '.join(args)}); }}{close_ns}")
            table.append(f'  {{"{entry.host_name}", reinterpret_cast<const void*>(&{qualifier}{symbol})}},')
        if table:
            lines.append("static const ::qmetal_cuda::KernelEntry __qmetal_cuda_kernels[] = {")
            lines.extend(table)
            lines.append("};")
        kernels = "__qmetal_cuda_kernels" if table else "nullptr"
        lines.append(f'extern "C" const ::qmetal_cuda::KernelEntry* {entry_name}(unsigned* count) {{')
        lines.append(f"  *count = {len(table)}u;")
        lines.append(f"  return {kernels};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def generate(preprocessed: str, entry_name: str = "qmetal_cuda_library", display_name: str = "",
             strict: bool = True, chunk=None) -> str:
    """CUDA for the `cuda` backend. `chunk` = (i, n): only every n-th kernel
    from the i-th, so that one large file compiles as n in parallel."""
    generator = CudaGenerator(preprocessed, strict=strict)
    generator.run()
    return (f"// Generated by qmetal's CUDA generator from {display_name}; do not edit.\n"
            '#include "qmetal_cuda/prelude.h"\n'
            + generator.source()
            + f'\n#line 1 "{display_name} (CUDA entry points)"\n'
            + generator.entry_points(entry_name, chunk))


def translate(source: str | None = None, path: str | None = None, include_dirs=(), defines=None,
              cxx: str | None = None, entry_name: str = "qmetal_cuda_library", strict: bool = True,
              chunk=None) -> str:
    """The CUDA translation of a .metal file (`path`) or of MSL text
    (`source`, with `path` naming it in messages)."""
    cxx = cxx or os.environ.get("CXX") or shutil.which("c++") or "c++"
    name = path or "<source>"
    text = _gen.preprocess(name, cxx, include_dirs, defines, source=source)
    return generate(text, entry_name, os.path.basename(name), strict=strict, chunk=chunk)


def nvcc_flags(arch: str, fmad: bool = False) -> list:
    """Flags the backend's kernels compile with under nvcc (CMakeLists.txt
    uses the same): no FMA contraction unless `fmad`, as the simulator."""
    return [CUDA_STD, f"--fmad={'true' if fmad else 'false'}", "--expt-relaxed-constexpr", "-arch=" + arch, "-I", CUDA_INCLUDE,
            "-Xcudafe", "--diag_suppress=20012", "-Xcudafe", "--diag_suppress=177",
            "-Xcudafe", "--diag_suppress=550"]


def clang_flags(arch: str = "sm_90") -> list:
    """Flags that compile a translation to PTX with clang's CUDA mode and no
    CUDA installation at all (the prelude declares what it uses)."""
    return ["-x", "cuda", CUDA_STD, "-ffp-contract=off", f"--cuda-gpu-arch={arch}", "--cuda-device-only", "-nocudainc", "-nocudalib",
            "-Wno-unknown-cuda-version", "-I", CUDA_INCLUDE, "-S"]


def compile_cubin(source: str | None = None, path: str | None = None, include_dirs=(), arch: str = "sm_90",
                  nvcc: str | None = None, out: str | None = None, defines=None, fmad: bool = False) -> str:
    """Translates MSL and compiles it with nvcc to a cubin for `arch`; returns
    the cubin's path (a CudaModule loads it)."""
    nvcc = nvcc or os.environ.get("NVCC") or shutil.which("nvcc")
    if not nvcc:
        raise RuntimeError("nvcc was not found (set NVCC or put CUDA's bin folder on PATH)")
    code = translate(source, path, include_dirs, defines)
    work = tempfile.mkdtemp(prefix="qmetal-cuda-")
    cu = os.path.join(work, "kernels.cu")
    with open(cu, "w") as f:
        f.write(code)
    out = out or os.path.join(work, "kernels.cubin")
    result = subprocess.run([nvcc, *nvcc_flags(arch, fmad), "-cubin", "-O3", cu, "-o", out], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nvcc failed on the CUDA translation ({cu}):\n{result.stderr[-20000:]}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?")
    parser.add_argument("output", nargs="?")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    parser.add_argument("-I", dest="include", action="append", default=[])
    parser.add_argument("-D", dest="define", action="append", default=[])
    parser.add_argument("--entry", default="qmetal_cuda_library")
    parser.add_argument("--chunk", help="i/n: every n-th kernel from the i-th only")
    parser.add_argument("--print-nvcc-flags", metavar="ARCH",
                        help="print the nvcc flags generated kernels compile with and exit")
    args = parser.parse_args(argv)
    if args.print_nvcc_flags:
        print(";".join(nvcc_flags(args.print_nvcc_flags)))
        return 0
    if args.input is None or args.output is None:
        parser.error("input and output are required")
    defines = {}
    for item in args.define:
        name, _, value = item.partition("=")
        defines[name] = value or None
    chunk = tuple(int(v) for v in args.chunk.split("/")) if args.chunk else None
    try:
        text = _gen.preprocess(args.input, args.cxx, args.include, defines)
        code = generate(text, args.entry, os.path.basename(args.input), chunk=chunk)
    except _gen.GeneratorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with open(args.output + ".tmp", "w") as f:
        f.write(code)
    os.replace(args.output + ".tmp", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
