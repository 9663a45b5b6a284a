"""Turns a .metal file into C++ the simulator runs.

The file is preprocessed (so the kernel's own macros expand) with the
simulator's scan-mode <metal_stdlib>, which leaves MSL keywords in place. The
generator then reads every kernel and every ``[[host_name("...")]]`` explicit
instantiation, and writes C++ that includes the simulator's prelude, the
rewritten source (line markers kept, so compiler errors and sanitizer reports
point at .metal lines) and one entry point per kernel that binds
``[[buffer(i)]]``, ``[[threadgroup(i)]]`` and thread-position arguments.

Rewrites:
  * ``threadgroup T name[N];`` in a function body becomes a reference to
    storage the runtime allocates once per threadgroup (``threadgroup``
    pointers and references keep their meaning: the prelude defines the
    keyword away);
  * ``constant T name [[function_constant(i)]];`` becomes an object that reads
    the launch's value, as do program-scope constants computed from them;
  * Metal attributes are removed, explicit instantiations dropped (the entry
    points instantiate what they call), ``1.0h`` literals become ``half(1.0f)``.

Standalone use (CMake runs it this way):
    python _generator.py --cxx c++ [-I dir] [-D name=value] [--entry name] in.metal out.cpp
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

SHIM_INCLUDE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "include", "sim"))
METAL_VERSION = 310
STANDARD_ATTRIBUTES = {"maybe_unused", "likely", "unlikely", "fallthrough", "nodiscard", "noreturn",
                       "deprecated", "carries_dependency", "no_unique_address"}

# Thread-position attributes -> C++ expression on `ids` (abi::ThreadIds*).
POSITIONS = {
    "thread_position_in_grid": "ids->thread_position_in_grid",
    "thread_position_in_threadgroup": "ids->thread_position_in_threadgroup",
    "threadgroup_position_in_grid": "ids->threadgroup_position_in_grid",
    "threads_per_threadgroup": "ids->threads_per_threadgroup",
    "dispatch_threads_per_threadgroup": "ids->threads_per_threadgroup",
    "threadgroups_per_grid": "ids->threadgroups_per_grid",
    "threads_per_grid": "ids->threads_per_grid",
    "grid_size": "ids->threads_per_grid",
    "thread_index_in_threadgroup": "ids->thread_index_in_threadgroup",
    "thread_index_in_simdgroup": "ids->thread_index_in_simdgroup",
    "simdgroup_index_in_threadgroup": "ids->simdgroup_index_in_threadgroup",
    "threads_per_simdgroup": "ids->threads_per_simdgroup",
    "thread_execution_width": "ids->threads_per_simdgroup",
    "simdgroups_per_threadgroup": "ids->simdgroups_per_threadgroup",
    "dispatch_simdgroups_per_threadgroup": "ids->simdgroups_per_threadgroup",
    "thread_index_in_quadgroup": "ids->thread_index_in_simdgroup % 4u",
    "quadgroup_index_in_threadgroup": "ids->thread_index_in_threadgroup / 4u",
    "quadgroups_per_threadgroup": "(ids->threads_per_threadgroup.x * ids->threads_per_threadgroup.y"
                                  " * ids->threads_per_threadgroup.z + 3u) / 4u",
}


class GeneratorError(Exception):
    """A construct the simulator cannot compile; the message names the .metal line."""


@dataclass
class Token:
    kind: str  # "id", "num", "str", "chr", "punct", "directive"
    text: str
    start: int
    end: int
    file: str
    line: int


@dataclass
class Param:
    kind: str  # "buffer", "threadgroup", "position"
    expr: str


@dataclass
class KernelDef:
    name: str
    namespace: list[str]
    params: list[Param]
    is_template: bool
    file: str
    line: int


@dataclass
class Entry:
    host_name: str
    target: str  # call expression, e.g. qmv<float, 4>
    namespace: list[str]
    kernel: KernelDef


@dataclass
class Edits:
    items: list = field(default_factory=list)

    def replace(self, start, end, text, original):
        # Keep the line count so later line numbers stay right.
        self.items.append((start, end, text + "\n" * original.count("\n", start, end)))

    def apply(self, text):
        out, pos = [], 0
        for start, end, new in sorted(self.items, key=lambda e: e[0]):
            if start < pos:
                continue
            out.append(text[pos:start])
            out.append(new)
            pos = end
        out.append(text[pos:])
        return "".join(out)


TOKEN_RE = re.compile(r"""
    (?P<directive>^[ \t]*\#[^\n]*)
  | (?P<space>\s+)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<num>\.?\d(?:[eEpP][+-]|[\w.'])*)
  | (?P<str>(?:u8|u|U|L)?"(?:\\.|[^"\\\n])*")
  | (?P<chr>(?:u8|u|U|L)?'(?:\\.|[^'\\\n])*')
  | (?P<punct>::|->|\+\+|--|&&|\|\||==|!=|<=|>=|[-+*/%&|^~!=<>?:;,.(){}\[\]\#])
""", re.VERBOSE | re.MULTILINE)
LINE_MARKER_RE = re.compile(r'^[ \t]*#\s*(?:line\s+)?(\d+)\s+"((?:\\.|[^"\\])*)"')
HALF_LITERAL_RE = re.compile(r"^((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[hH]$")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    file, line = "<input>", 1
    pos = 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if m is None:
            raise GeneratorError(f"{file}:{line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "directive":
            marker = LINE_MARKER_RE.match(value)
            if marker:
                file = marker.group(2).encode().decode("unicode_escape")
                line = int(marker.group(1)) - 1  # the marker's own newline follows
            else:
                tokens.append(Token("directive", value, m.start(), m.end(), file, line))
        elif kind == "space":
            pass
        else:
            tokens.append(Token(kind, value, m.start(), m.end(), file, line))
        line += value.count("\n")
        pos = m.end()
    return tokens


def matching(tokens, i, open_text, close_text):
    """Index of the token closing tokens[i] (which is open_text)."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == open_text:
            depth += 1
        elif tokens[j].text == close_text:
            depth -= 1
            if depth == 0:
                return j
    raise GeneratorError(f"{tokens[i].file}:{tokens[i].line}: unbalanced {open_text!r}")


def matching_angle(tokens, i, step=1):
    """Index of the '>' closing the '<' at tokens[i] (step=1), or of the '<'
    opening the '>' at tokens[i] (step=-1); brackets inside (), [] and {}
    (such as shifts in parentheses) do not count."""
    opens, closes = ("<", ">") if step == 1 else (">", "<")
    nest_in, nest_out = ("([{", ")]}") if step == 1 else (")]}", "([{")
    depth = nest = 0
    j = i
    while 0 <= j < len(tokens):
        t = tokens[j].text
        if t in nest_in:
            nest += 1
        elif t in nest_out:
            nest -= 1
        elif nest == 0 and t == opens:
            depth += 1
        elif nest == 0 and t == closes:
            depth -= 1
            if depth == 0:
                return j
        j += step
    raise GeneratorError(f"{tokens[i].file}:{tokens[i].line}: unbalanced {tokens[i].text!r}")


def split_top_level(tokens, start, end):
    """Splits tokens[start:end] at commas outside (), [], {}, <>."""
    parts, depth, angle, first = [], 0, 0, start
    for j in range(start, end):
        t = tokens[j].text
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
        elif depth == 0 and t == "<":
            angle += 1
        elif depth == 0 and t == ">" and angle > 0:
            angle -= 1
        elif t == "," and depth == 0 and angle == 0:
            parts.append((first, j))
            first = j + 1
    if first < end:
        parts.append((first, end))
    return parts


def source_text(text, tokens, start, end):
    """The text of tokens[start:end], on one line."""
    if start >= end:
        return ""
    return " ".join(text[tokens[start].start:tokens[end - 1].end].split())


def is_attribute_start(tokens, i):
    return tokens[i].text == "[" and i + 1 < len(tokens) and tokens[i + 1].text == "["


def attribute_end(tokens, i):
    """Index of the second ']' closing the attribute opened at tokens[i]."""
    j = matching(tokens, i, "[", "]")
    return j


def attribute_items(text, tokens, i):
    """[(name, argument text or None)] of the attribute [[...]] at tokens[i]."""
    end = attribute_end(tokens, i)
    items = []
    for s, e in split_top_level(tokens, i + 2, end - 1):
        if s >= e:
            continue
        name = tokens[s].text
        if s + 1 < e and tokens[s + 1].text == "(":
            close = matching(tokens, s + 1, "(", ")")
            items.append((name, source_text(text, tokens, s + 2, close)))
        else:
            items.append((name, None))
    return items


class Generator:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.edits = Edits()
        self.kernels: dict[str, list[KernelDef]] = {}
        self.entries: list[Entry] = []
        self.function_constants: set[str] = set()
        self.counter = 0

    def where(self, i):
        t = self.tokens[i]
        return f"{t.file}:{t.line}"

    def error(self, i, message):
        raise GeneratorError(f"{self.where(i)}: {message}")

    # --- the walk -----------------------------------------------------------

    def run(self):
        tokens = self.tokens
        # One entry per open brace: ("namespace", names) for namespaces and
        # extern "C" blocks (names empty), ("class", []) or ("block", []).
        scopes: list[tuple[str, list[str]]] = []
        statement_start = 0
        i = 0
        while i < len(tokens):
            t = tokens[i]
            at_namespace_scope = all(kind == "namespace" for kind, _ in scopes)
            if t.kind == "directive":
                statement_start = i + 1
                i += 1
                continue
            if t.text == "namespace" and at_namespace_scope and i == statement_start:
                j = i + 1
                names = []
                while tokens[j].text not in ("{", ";", "="):
                    if tokens[j].kind == "id":
                        names.append(tokens[j].text)
                    j += 1
                if tokens[j].text != "{":  # a namespace alias
                    i = j
                    continue
                scopes.append(("namespace", names))
                i = j + 1
                statement_start = i
                continue
            if t.text == "{":
                first = tokens[statement_start].text
                if first == "extern" and tokens[i - 1].kind == "str":
                    scopes.append(("namespace", []))
                elif first in ("struct", "class", "union", "enum") or (
                        first == "template" and self._has_class_key(statement_start, i)):
                    scopes.append(("class", []))
                else:
                    scopes.append(("block", []))
                i += 1
                statement_start = i
                continue
            if t.text == "}":
                if not scopes:
                    self.error(i, "unbalanced '}'")
                scopes.pop()
                i += 1
                statement_start = i
                continue
            if t.text == ";":
                i += 1
                statement_start = i
                continue
            namespace = [name for kind, names in scopes if kind == "namespace" for name in names]
            if at_namespace_scope:
                if t.text == "template" and i == statement_start and tokens[i + 1].text != "<":
                    i = self._instantiation(i, namespace)
                    statement_start = i
                    continue
                if t.text == "constant" and i == statement_start:
                    self._program_constant(i, namespace)
                if (t.text == "kernel" and t.kind == "id") or (
                        is_attribute_start(tokens, i) and any(
                            name == "kernel" for name, _ in attribute_items(self.text, tokens, i))):
                    self._kernel_definition(i, statement_start, namespace)
            elif t.text == "threadgroup" and i == statement_start and scopes[-1][0] == "block":
                self._threadgroup_declaration(i)
            if is_attribute_start(tokens, i):
                end = attribute_end(tokens, i)
                items = attribute_items(self.text, tokens, i)
                if not all(name in STANDARD_ATTRIBUTES for name, _ in items):
                    self.edits.replace(tokens[i].start, tokens[end].end, " ", self.text)
                i = end + 1
                continue
            if t.kind == "num":
                m = HALF_LITERAL_RE.match(t.text)
                if m:
                    self.edits.replace(t.start, t.end, f"half({m.group(1)}f)", self.text)
            i += 1
        if scopes:
            self.error(len(tokens) - 1, "unbalanced '{'")

    def _has_class_key(self, start, end):
        close = matching_angle(self.tokens, start + 1) if self.tokens[start + 1].text == "<" else start
        return self.tokens[close + 1].text in ("struct", "class", "union") if close + 1 < end else False

    # --- kernels ------------------------------------------------------------

    def _kernel_definition(self, i, statement_start, namespace):
        tokens = self.tokens
        j = i
        while tokens[j].text != "(":
            if tokens[j].text in (";", "{"):
                self.error(i, "expected a kernel function")
            if is_attribute_start(tokens, j):
                j = attribute_end(tokens, j)
            j += 1
        name = tokens[j - 1].text
        close = matching(tokens, j, "(", ")")
        k = close + 1
        while k < len(tokens) and tokens[k].text not in ("{", ";"):
            k += 1
        if tokens[k].text == ";":
            return  # a declaration
        params = []
        buffer_index = 0
        for s, e in split_top_level(tokens, j + 1, close):
            if s == e or (e - s == 1 and tokens[s].text == "void"):
                continue
            params.append(self._param(s, e, buffer_index))
            if params[-1].kind == "buffer":
                buffer_index += 1
        is_template = tokens[statement_start].text == "template"
        kernel = KernelDef(name, namespace, params, is_template, tokens[j - 1].file, tokens[j - 1].line)
        self.kernels.setdefault(name, []).append(kernel)
        if not is_template:
            self.entries.append(Entry(name, name, namespace, kernel))

    def _param(self, s, e, unattributed_index):
        tokens = self.tokens
        for j in range(s, e):
            if not is_attribute_start(tokens, j):
                continue
            for name, arg in attribute_items(self.text, tokens, j):
                if name == "buffer":
                    return Param("buffer", arg)
                if name == "threadgroup":
                    return Param("threadgroup", arg)
                if name in POSITIONS:
                    return Param("position", POSITIONS[name])
                if name == "grid_origin":
                    return Param("position", None)
                if name in ("stage_in", "texture", "sampler", "user", "payload", "mesh", "amplification_id"):
                    self.error(j, f"[[{name}]] arguments are not supported by the simulator")
        return Param("buffer", str(unattributed_index))

    def _instantiation(self, i, namespace):
        tokens = self.tokens
        end = i
        while tokens[end].text != ";":
            end += 1
        host_name = None
        j = i + 1
        while j < end:
            if is_attribute_start(tokens, j):
                close = attribute_end(tokens, j)
                for k in range(j, close):
                    if tokens[k].text == "host_name":
                        paren = k + 1
                        literals = [tokens[m].text for m in range(paren + 1, matching(tokens, paren, "(", ")"))]
                        if not literals or not all(lit.startswith('"') for lit in literals):
                            self.error(k, "host_name needs a string literal")
                        host_name = "".join(lit[1:-1] for lit in literals)
                j = close + 1
                continue
            j += 1
        self.edits.replace(tokens[i].start, tokens[end].end, "", self.text)
        if host_name is None:
            return end + 1  # an ordinary explicit instantiation
        last = end - 1
        if tokens[last].text == ">":
            last = matching_angle(tokens, last, -1) - 1
        first = last
        while first - 2 > i and tokens[first - 1].text == "::" and tokens[first - 2].kind == "id":
            first -= 2
        target = source_text(self.text, tokens, first, end)
        base = tokens[last].text
        candidates = self.kernels.get(base)
        if not candidates:
            self.error(i, f"host_name(\"{host_name}\") instantiates {base!r}, which is not a kernel defined before it")
        kernel = next((k for k in candidates if k.namespace == namespace), candidates[-1])
        self.entries.append(Entry(host_name, target, namespace, kernel))
        return end + 1

    # --- threadgroup variables and function constants -----------------------

    def _threadgroup_declaration(self, i):
        tokens = self.tokens
        end = i
        depth = 0
        while not (tokens[end].text == ";" and depth == 0):
            if tokens[end].text in "([{":
                depth += 1
            elif tokens[end].text in ")]}":
                depth -= 1
            end += 1
        declarators = split_top_level(tokens, i + 1, end)
        first_s, first_e = declarators[0]
        # Pointers and references to threadgroup memory keep their meaning
        # (looking only before any array bounds, which may multiply).
        for s, e in declarators:
            bounds = next((j for j in range(s, e) if tokens[j].text == "["), e)
            if any(tokens[j].text in ("*", "&", "&&", "(", "=") for j in range(s, bounds)):
                return
        name_at = self._declarator_name(first_s, first_e)
        type_text = source_text(self.text, tokens, first_s, name_at)
        out = []
        for n, (s, e) in enumerate(declarators):
            at = name_at if n == 0 else s
            if tokens[at].kind != "id":
                self.error(at, "cannot read this threadgroup declaration")
            name = tokens[at].text
            dims = source_text(self.text, tokens, at + 1, e)
            self.counter += 1
            alias = f"__qmetal_tg_{self.counter}_t"
            key = f"__qmetal_tg_{self.counter}_key"
            out.append(f"typedef {type_text} {alias}{dims}; static const char {key} = 0; "
                       f"{alias}& {name} = *static_cast<{alias}*>(::qmetal_sim::runtime->threadgroup_variable("
                       f"&{key}, sizeof({alias}), alignof({alias})));")
        self.edits.replace(tokens[i].start, tokens[end].end, " ".join(out), self.text)

    def _declarator_name(self, s, e):
        j = e
        for k in range(s, e):
            if self.tokens[k].text == "[":
                j = k
                break
        return j - 1

    def _program_constant(self, i, namespace):
        tokens = self.tokens
        end = i
        while tokens[end].text != ";":
            end += 1
        attribute = next((j for j in range(i, end) if is_attribute_start(tokens, j)), None)
        if attribute is not None:
            items = dict(attribute_items(self.text, tokens, attribute))
            if "function_constant" not in items:
                return
            name_at = attribute - 1
            type_text = source_text(self.text, tokens, i + 1, name_at)
            name = tokens[name_at].text
            index = items["function_constant"]
            body = (f"static constexpr uint32_t index = {index}; operator {type_text}() const "
                    f"{{ return ::qmetal_sim::function_constant<{type_text}>(index); }} bool defined() const "
                    f"{{ return ::qmetal_sim::function_constant_defined<{type_text}>(index); }}")
        else:
            eq = next((j for j in range(i, end) if tokens[j].text == "="), None)
            if eq is None or not any(tokens[j].text in self.function_constants for j in range(eq + 1, end)):
                return
            name = tokens[eq - 1].text
            type_text = source_text(self.text, tokens, i + 1, eq - 1)
            value = source_text(self.text, tokens, eq + 1, end)
            body = f"operator {type_text}() const {{ return {value}; }} bool defined() const {{ return true; }}"
        self.function_constants.add(name)
        self.edits.replace(tokens[i].start, tokens[end].end,
                           f"struct __qmetal_fc_{name}_t {{ {body} }}; static const __qmetal_fc_{name}_t {name}{{}};",
                           self.text)

    # --- output -------------------------------------------------------------

    def source(self):
        body = self.edits.apply(self.text)

        def line_directive(m):
            line, file = int(m.group(1)), m.group(2)
            if line == 0 or file in ("<built-in>", "<command-line>"):
                return ""  # the preprocessor's own pseudo-files
            return f'#line {line} "{file}"'

        return LINE_MARKER_LINE_RE.sub(line_directive, body)

    def entry_points(self, entry_name):
        lines = []
        table = []
        for n, entry in enumerate(self.entries):
            kernel = entry.kernel
            args, buffers, threadgroups = [], [], []
            for p in kernel.params:
                if p.kind == "buffer":
                    args.append(f"::qmetal_sim::BufferArg{{buffers[{p.expr}]}}")
                    buffers.append(f"uint32_t({p.expr})")
                elif p.kind == "threadgroup":
                    args.append(f"::qmetal_sim::ThreadgroupArg{{threadgroup_args[{p.expr}]}}")
                    threadgroups.append(f"uint32_t({p.expr})")
                elif p.expr is None:
                    args.append("::qmetal_sim::position_zero()")
                else:
                    args.append(f"::qmetal_sim::position({p.expr})")
            open_ns = "".join(f"namespace {name} {{ " for name in entry.namespace)
            close_ns = "}" * len(entry.namespace)
            qualifier = "".join(f"{name}::" for name in entry.namespace)
            lines.append(f"{open_ns}static void __qmetal_entry_{n}(void* const* buffers, "
                         f"const ::qmetal::sim::abi::ThreadIds* ids, void* const* threadgroup_args) {{ "
                         f"(void)buffers; (void)ids; (void)threadgroup_args; {entry.target}({', '.join(args)}); }}")
            for label, values in (("buffers", buffers), ("threadgroups", threadgroups)):
                if values:
                    lines.append(f"static const uint32_t __qmetal_{label}_{n}[] = {{{', '.join(values)}}};")
            lines.append(close_ns)
            buffer_table = f"{qualifier}__qmetal_buffers_{n}" if buffers else "nullptr"
            tg_table = f"{qualifier}__qmetal_threadgroups_{n}" if threadgroups else "nullptr"
            table.append(f'  {{"{entry.host_name}", &{qualifier}__qmetal_entry_{n}, {buffer_table}, {len(buffers)}, '
                         f'{tg_table}, {len(threadgroups)}, {cxx_string(kernel.file)}, {kernel.line}}},')
        if table:
            lines.append("static const ::qmetal::sim::abi::Kernel __qmetal_kernels[] = {")
            lines.extend(table)
            lines.append("};")
        kernels = "__qmetal_kernels" if table else "nullptr"
        lines.append(f'extern "C" __attribute__((visibility("default"))) const ::qmetal::sim::abi::Library* '
                     f'{entry_name}(const ::qmetal::sim::abi::Runtime* runtime) {{')
        lines.append("  ::qmetal_sim::runtime = runtime;")
        lines.append("  static const ::qmetal::sim::abi::Library library{::qmetal::sim::abi::kAbiVersion, "
                     f"{len(table)}, {kernels}}};")
        lines.append("  return &library;")
        lines.append("}")
        return "\n".join(lines) + "\n"


LINE_MARKER_LINE_RE = re.compile(r'^[ \t]*#\s*(\d+)\s+"((?:\\.|[^"\\])*)"[^\n]*$', re.MULTILINE)


def cxx_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def preprocess(path: str, cxx: str, include_dirs=(), defines=None, source: str | None = None) -> str:
    command = [cxx, "-E", "-x", "c++", "-std=c++17", f"-D__METAL_VERSION__={METAL_VERSION}",
               "-DQMETAL_SIM_SCAN=1", "-DQMETAL_SIM=1", "-I", SHIM_INCLUDE]
    for directory in include_dirs:
        command += ["-I", directory]
    for name, value in (defines or {}).items():
        command.append(f"-D{name}" if value is None else f"-D{name}={value}")
    command.append("-" if source is not None else path)
    result = subprocess.run(command, input=source, capture_output=True, text=True)
    if result.returncode != 0:
        raise GeneratorError(f"preprocessing {path} failed:\n{result.stderr}")
    if source is None:
        return result.stdout
    # Source text went through stdin; name it as the caller does.
    return re.sub(r'^(#\s*\d+\s+)"<stdin>"', lambda m: m.group(1) + cxx_string(path), result.stdout,
                  flags=re.MULTILINE)


def generate(preprocessed: str, entry_name: str = "qmetal_sim_library", display_name: str = "") -> str:
    generator = Generator(preprocessed)
    generator.run()
    return (f"// Generated by qmetal's simulator from {display_name}; do not edit.\n"
            '#include "qmetal_sim/prelude.h"\n'
            + generator.source()
            + f'\n#line 1 "{display_name} (entry points)"\n'
            + generator.entry_points(entry_name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    parser.add_argument("-I", dest="include", action="append", default=[])
    parser.add_argument("-D", dest="define", action="append", default=[])
    parser.add_argument("--entry", default="qmetal_sim_library")
    args = parser.parse_args(argv)
    defines = {}
    for item in args.define:
        name, _, value = item.partition("=")
        defines[name] = value or None
    try:
        text = preprocess(args.input, args.cxx, args.include, defines)
        code = generate(text, args.entry, os.path.basename(args.input))
    except GeneratorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with open(args.output + ".tmp", "w") as f:
        f.write(code)
    os.replace(args.output + ".tmp", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
