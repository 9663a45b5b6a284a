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

if __package__:
    from . import _msl_rules as _rules
else:  # run as a script (CMake does)
    import _msl_rules as _rules

ADDRESS_SPACES = _rules.ADDRESS_SPACES

def _shim_include():
    """The simulator's MSL headers: installed beside the package (a regular
    install, or beside the extension module in an editable one), else the
    source tree's (the generator run by CMake from a checkout)."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, "..", "include", "sim")]
    try:
        import importlib.util

        spec = importlib.util.find_spec("qmetal._core") if __package__ else None
        if spec is not None and spec.origin:
            candidates.append(os.path.join(os.path.dirname(spec.origin), "include", "sim"))
    except (ImportError, ValueError):
        pass
    candidates.append(os.path.join(here, "..", "..", "..", "csrc", "sim", "include"))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "metal_stdlib")):
            return os.path.normpath(candidate)
    return os.path.normpath(candidates[0])


SHIM_INCLUDE = _shim_include()
METAL_VERSION = 310
# -std= values the generator takes, as Apple's compiler spells them, and the
# __METAL_VERSION__ each defines. Metal 4's tensor types and operations
# (<metal_tensor>, MetalPerformancePrimitives) exist only from metal4.0 on,
# where the compiler defines __HAVE_TENSOR__.
LANGUAGE_VERSIONS = {"metal3.1": 310, "metal3.2": 320, "metal4.0": 400}
TENSOR_METAL_VERSION = 400
# A shim header that needs more than the prelude says so while the file is
# scanned (`#pragma qmetal_sim_requires <name>`); the generated C++ then
# includes qmetal_sim/<name>.h after the prelude.
REQUIRES_RE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+qmetal_sim_requires[ \t]+(\w+)[ \t]*$", re.MULTILINE)
STANDARD_ATTRIBUTES = {"maybe_unused", "likely", "unlikely", "fallthrough", "nodiscard", "noreturn",
                       "deprecated", "carries_dependency", "no_unique_address"}

# Thread-position attributes -> C++ expression on `ids` (abi::ThreadIds*).
POSITIONS = {
    "thread_position_in_grid": "__qmetal_ids->thread_position_in_grid",
    "thread_position_in_threadgroup": "__qmetal_ids->thread_position_in_threadgroup",
    "threadgroup_position_in_grid": "__qmetal_ids->threadgroup_position_in_grid",
    "threads_per_threadgroup": "__qmetal_ids->threads_per_threadgroup",
    "dispatch_threads_per_threadgroup": "__qmetal_ids->threads_per_threadgroup",
    "threadgroups_per_grid": "__qmetal_ids->threadgroups_per_grid",
    "threads_per_grid": "__qmetal_ids->threads_per_grid",
    "thread_index_in_threadgroup": "__qmetal_ids->thread_index_in_threadgroup",
    "thread_index_in_simdgroup": "__qmetal_ids->thread_index_in_simdgroup",
    "simdgroup_index_in_threadgroup": "__qmetal_ids->simdgroup_index_in_threadgroup",
    "threads_per_simdgroup": "__qmetal_ids->threads_per_simdgroup",
    "thread_execution_width": "__qmetal_ids->threads_per_simdgroup",
    "simdgroups_per_threadgroup": "__qmetal_ids->simdgroups_per_threadgroup",
    "dispatch_simdgroups_per_threadgroup": "__qmetal_ids->simdgroups_per_threadgroup",
    "thread_index_in_quadgroup": "__qmetal_ids->thread_index_in_simdgroup % 4u",
    "quadgroup_index_in_threadgroup": "__qmetal_ids->thread_index_in_threadgroup / 4u",
    "quadgroups_per_threadgroup": "(__qmetal_ids->threads_per_threadgroup.x * __qmetal_ids->threads_per_threadgroup.y"
                                  " * __qmetal_ids->threads_per_threadgroup.z + 3u) / 4u",
}


# Words that take parentheses but do not name a function being declared.
FUNCTION_LIKE_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "alignof", "alignas", "decltype",
                          "static_assert", "noexcept", "catch", "throw", "defined", "__attribute__"}
SYSTEM_MARKER_RE = re.compile(r'^#\s*(\d+)\s+"((?:\\.|[^"\\])*)"((?:\s+\d)*)\s*$')


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
        # At one start the longest edit wins (a dropped definition over the
        # edits inside it); an insertion there (start == end) goes first.
        for start, end, new in sorted(self.items, key=lambda e: (e[0], e[1] != e[0], -e[1])):
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


@dataclass
class Scope:
    kind: str  # "namespace", "class", "function" or "block"
    names: list[str]
    kernel: bool = False
    # Pointers and references declared here -> their address space (None if
    # unqualified); what address-space overloads are resolved by.
    variables: dict = field(default_factory=dict)


class Generator:
    def __init__(self, text: str, strict: bool = True, metal_version: int = METAL_VERSION,
                 internal_kernels: bool = True):
        # Kernels get internal linkage (see _kernel_definition); False keeps
        # them external, for a tool that reads each kernel's own function
        # (the cost report's IR, where clang would otherwise inline it away).
        self.internal_kernels = internal_kernels
        self.text = text
        self.tokens = tokenize(text)
        self.strict = strict
        self.metal_version = metal_version
        self.edits = Edits()
        self.kernels: dict[str, list[KernelDef]] = {}
        self.entries: list[Entry] = []
        self.function_constants: set[str] = set()
        self.counter = 0
        self.rule_errors = _rules.RuleErrors(self)
        self.overloaded: dict[str, list] = {}
        self.host_names: dict[str, int] = {}
        # Matching brackets, once: the walk asks for them often.
        self.match: dict[int, int] = {}
        stack = []
        for k, t in enumerate(self.tokens):
            if t.kind != "punct":
                continue
            if t.text in ("(", "[", "{"):
                stack.append(k)
            elif t.text in (")", "]", "}") and stack:
                o = stack.pop()
                self.match[o] = k
                self.match[k] = o

    def where(self, i):
        t = self.tokens[i]
        return f"{t.file}:{t.line}"

    def error(self, i, message):
        raise GeneratorError(f"{self.where(i)}: {message}")

    # --- token helpers ------------------------------------------------------

    def is_attribute(self, i):
        return is_attribute_start(self.tokens, i)

    def close_of(self, i):
        if i not in self.match:
            raise GeneratorError(f"{self.where(i)}: unbalanced {self.tokens[i].text!r}")
        return self.match[i]

    def attribute_items_at(self, i):
        return attribute_items(self.text, self.tokens, i)

    def angle_close(self, i):
        return matching_angle(self.tokens, i)

    def angle_open(self, i):
        return matching_angle(self.tokens, i, -1)

    def angle_depth_zero(self, s, j):
        depth = 0
        for k in range(s, j):
            text = self.tokens[k].text
            if text == "<":
                depth += 1
            elif text == ">" and depth:
                depth -= 1
        return depth == 0

    # --- strict-mode checks that need the whole file -------------------------

    def _check_includes(self):
        """MSL has no C++ standard library (B-10): a system header entered from
        shader code (flag 3 on the preprocessor's line marker) is an error at
        the #include line. The shim's own headers are empty while scanning."""
        file, line = "<input>", 1
        for text in self.text.splitlines():
            marker = SYSTEM_MARKER_RE.match(text)
            if marker:
                new_line, name, flags = int(marker.group(1)), marker.group(2), marker.group(3).split()
                if "1" in flags and "3" in flags and file not in ("<command-line>", "<built-in>", "<input>") \
                        and not os.path.abspath(name).startswith(SHIM_INCLUDE):
                    # The header's own code would only add noise: this one error says it all.
                    raise GeneratorError(f"{file}:{line}: error: '{os.path.basename(name)}' file not found: MSL "
                                         f"has no C++ standard library, only Metal's <metal_*> headers "
                                         f"[MSL rule B-10]")
                file, line = name, new_line
                continue
            line += 1

    # --- the walk -----------------------------------------------------------

    def run(self):
        tokens = self.tokens
        if self.strict:
            self._check_includes()
        self._collapse_address_space_duplicates()
        self._find_address_space_overloads()
        # One Scope per open brace: namespaces and extern "C" blocks, classes,
        # function bodies (kernels flagged) and other blocks.
        scopes: list[Scope] = []
        statement_start = 0
        i = 0
        while i < len(tokens):
            t = tokens[i]
            at_namespace_scope = all(s.kind == "namespace" for s in scopes)
            if t.kind == "directive":
                statement_start = i + 1
                i += 1
                continue
            if self.strict:
                _rules.check_tokens(self, i, self.metal_version)
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
                scopes.append(Scope("namespace", names))
                i = j + 1
                statement_start = i
                continue
            if t.text == "{":
                scopes.append(self._open_scope(scopes, statement_start, i))
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
                if self.strict and at_namespace_scope:
                    _rules.check_program_scope_statement(self, statement_start, i)
                if not scopes or scopes[-1].kind in ("namespace", "class"):
                    self.on_declaration(statement_start, i)
                i += 1
                statement_start = i
                continue
            namespace = [name for s in scopes if s.kind == "namespace" for name in s.names]
            function = next((s for s in reversed(scopes) if s.kind == "function"), None)
            if at_namespace_scope:
                if t.text == "template" and i == statement_start and tokens[i + 1].text != "<":
                    i = self._instantiation(i, namespace)
                    statement_start = i
                    continue
                if t.text == "constant" and i == statement_start:
                    self._program_constant(i, namespace)
                if (t.text == "kernel" and t.kind == "id") or (
                        self.is_attribute(i) and any(name == "kernel" for name, _ in self.attribute_items_at(i))):
                    self._kernel_definition(i, statement_start, namespace)
            elif i == statement_start and scopes[-1].kind in ("function", "block", "class"):
                i = self._statement(i, scopes, function)
                if i != statement_start:
                    statement_start = i
                    continue
            if t.kind == "id" and t.text in self.overloaded and self._is_call(i):
                self._resolve_overloaded_call(i, scopes)
            if t.text == "constant" and t.kind == "id":
                self._constant_keyword(i, at_namespace_scope, statement_start)
            if self.is_attribute(i):
                end = self.close_of(i)
                items = self.attribute_items_at(i)
                if self.strict and function is not None and any(n == "function_constant" for n, _ in items):
                    self.rule_errors.add(i, "function constants are program-scope constant variables", "E-1")
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
        if self.rule_errors.items:
            raise GeneratorError("the file breaks rules of the Metal Shading Language (strict mode; "
                                 "compile with strict=False only for code that is knowingly not MSL):\n"
                                 + self.rule_errors.report())

    # --- scopes, statements and functions -----------------------------------

    def _open_scope(self, scopes, start, brace):
        tokens = self.tokens
        first = tokens[start].text
        if first == "extern" and tokens[brace - 1].kind == "str":
            return Scope("namespace", [])
        if first in ("struct", "class", "union", "enum") or (
                first == "template" and self._has_class_key(start, brace)):
            return Scope("class", [])
        if scopes and scopes[-1].kind not in ("namespace", "class"):
            return Scope("block", [])
        head = self._function_head(start, brace)
        if head is None:
            return Scope("block", [])
        name_at, open_at, close_at = head
        self.on_function_head(start, brace)
        is_kernel = any(tokens[k].text == "kernel" and tokens[k].kind == "id" for k in range(start, open_at)) or any(
            self.is_attribute(k) and any(n == "kernel" for n, _ in self.attribute_items_at(k))
            for k in range(start, open_at))
        scope = Scope("function", [], kernel=is_kernel)
        for s, e in split_top_level(tokens, open_at + 1, close_at):
            if s == e or (e - s == 1 and tokens[s].text == "void"):
                continue
            p = _rules.parse_parameter(self, s, e)
            if self.strict:
                _rules.check_parameter(self, p, is_kernel)
            if p.name is not None:  # a value's type may be a template's pointer: unknown
                scope.variables[p.name] = p.space if p.indirect else None
        if scopes and scopes[-1].kind == "class":
            self._member_address_space(scopes[-1], start, name_at, open_at, close_at, brace)
        return scope

    def _function_head(self, start, brace):
        """(name index, '(' index, ')' index) of the function whose body opens
        at tokens[brace], or None if the statement is not a function head."""
        tokens = self.tokens
        j = start
        if tokens[j].text == "template" and j + 1 < brace and tokens[j + 1].text == "<":
            j = self.angle_close(j + 1) + 1
        while j < brace:
            t = tokens[j]
            if t.text == "=":
                return None
            if self.is_attribute(j):
                j = self.close_of(j) + 1
                continue
            if t.text == "(":
                prev = tokens[j - 1]
                close = self.close_of(j)
                if prev.text == "operator":
                    j = close + 1  # the name operator()
                    continue
                named = prev.kind == "id" and prev.text not in FUNCTION_LIKE_KEYWORDS
                operator = any(tokens[k].text == "operator" for k in range(max(start, j - 3), j))
                if named or operator or prev.text == ">":
                    tail = [tokens[k].text for k in range(close + 1, brace)]
                    if tail and tail[0] not in ("const", "->", ":", "[", "noexcept", "override", "final",
                                                "mutable", "&", "&&") + ADDRESS_SPACES:
                        return None
                    name_at = j - 1
                    if prev.text == ">" and not operator:  # not operator> or operator>>
                        name_at = self.angle_open(j - 1) - 1
                    return name_at, j, close
                j = close + 1
                continue
            j += 1
        return None

    def _statement(self, i, scopes, function):
        """Declarations at the start of a statement in a function, block or
        class: threadgroup variables (rewritten in kernels), and the address
        space rules of locals and members. Returns where the walk goes on."""
        tokens = self.tokens
        t = tokens[i]
        scope = scopes[-1]
        if t.text == "threadgroup" and scope.kind != "class":
            if self._is_threadgroup_object(i):
                if function is not None and function.kernel:
                    name = self._threadgroup_declaration(i)
                    scope.variables.update({n: "threadgroup" for n in name})
                elif self.strict:
                    self.rule_errors.add(i, "variables in the threadgroup address space cannot be declared in a "
                                            "non-qualified function (declare them in the kernel and pass "
                                            "threadgroup pointers to helpers)", "A-2")
                else:
                    self._threadgroup_declaration(i)
                return i
        if self.strict and t.text == "static" and scope.kind != "class" and tokens[i + 1].text not in (
                "constant", "constexpr", "static_assert"):
            self.rule_errors.add(i, "variables in function scope cannot be declared static", "B-11")
        end = i
        while end < len(tokens) and tokens[end].text not in (";", "{", "}", "(", ")"):
            end += 1
        declaration = _rules.local_declaration(self, i, min(end + 1, len(tokens)))
        if declaration is None:
            return i
        space, indirect, name_at = declaration
        deduced = any(tokens[k].text == "auto" for k in range(i, name_at))
        # Local objects and arrays live in thread memory unless declared otherwise.
        scope.variables[tokens[name_at].text] = space if indirect or deduced else (space or "thread")
        if not self.strict:
            return i
        if indirect and space is None:
            kind = "reference" if any(tokens[k].text in ("&", "&&") for k in range(i, name_at)) else "pointer"
            self.rule_errors.add(i, f"{kind} type must have explicit address space qualifier", "A-4")
        elif space is not None and space != "thread" and not indirect:
            if scope.kind == "class":
                if not any(tokens[k].text == "static" for k in range(i, name_at)):  # static members: constant data
                    self.rule_errors.add(i, "field may not be qualified with an address space", "A-9")
            elif space != "constant":  # constant locals: Apple's verdict unverified
                self.rule_errors.add(i, "automatic variable qualified with an address space", "A-7")
        return i

    def _statement_end(self, i):
        """Index of the ';' ending the statement that starts at tokens[i]."""
        end, depth = i, 0
        while not (self.tokens[end].text == ";" and depth == 0):
            if self.tokens[end].text in "([{":
                depth += 1
            elif self.tokens[end].text in ")]}":
                depth -= 1
            end += 1
        return end

    def _is_threadgroup_object(self, i):
        """`threadgroup T name[N];` declares storage; `threadgroup T* p` and
        `threadgroup T& r` declare pointers and references."""
        tokens = self.tokens
        end = self._statement_end(i)
        for s, e in split_top_level(tokens, i + 1, end):
            bounds = next((j for j in range(s, e) if tokens[j].text == "["), e)
            if any(tokens[j].text in ("*", "&", "&&", "(", "=") for j in range(s, bounds)):
                return False
        return True

    # --- address spaces that C++ cannot see ---------------------------------

    def _collapse_address_space_duplicates(self):
        """Definitions that differ only in address spaces (MLX's complex.h
        operators for thread, threadgroup and device operands; type_traits.h's
        pointer_element<thread T*>, <device T*>, ...) are one definition once
        C++ sees no address spaces: the first is kept, the rest dropped."""
        tokens = self.tokens
        seen = set()
        self.dropped = []
        stack = [-1]  # the '{' of each enclosing scope; a scope's definitions are compared among themselves
        start = 0
        i = 0
        while i < len(tokens):
            text = tokens[i].text
            if tokens[i].kind == "directive":
                start = i + 1
            elif text in (";", "}"):
                if text == "}" and len(stack) > 1:
                    stack.pop()
                start = i + 1
            elif text == "{":
                head = range(start, i)
                if any(tokens[k].text in ADDRESS_SPACES and tokens[k].kind == "id" for k in head) and \
                        tokens[start].text != "namespace":
                    end = self.close_of(i)
                    if end + 1 < len(tokens) and tokens[end + 1].text == ";":
                        end += 1
                    key = (stack[-1], " ".join(tokens[k].text for k in range(start, end + 1)
                                               if tokens[k].text not in ADDRESS_SPACES))
                    if key in seen:
                        self.dropped.append((start, end))
                        self.edits.replace(tokens[start].start, tokens[end].end, " ", self.text)
                        i = end + 1
                        start = i
                        continue
                    seen.add(key)
                stack.append(i)
                start = i + 1
            i += 1

    def _find_address_space_overloads(self):
        """MSL may overload a function on address spaces (`f(const device T*)`
        beside `f(const threadgroup T*)`), as Apple's own headers do; with the
        keywords compiled away the two are one C++ signature. C++ cannot carry
        an address space in a type without breaking valid MSL (MSL_RULES.md:
        real address spaces reject struct copies out of device memory), so the
        generator resolves these overloads itself: each definition of such a
        set gets a name that spells its address spaces, and each call takes
        the one whose spaces match the arguments' declared spaces (the
        variable an argument is built from, or a cast's address space). A call
        it cannot decide is an error, never a silent pick."""
        tokens = self.tokens
        groups: dict[tuple, list] = {}
        dropped = {k for s, e in self.dropped for k in range(s, e + 1)}
        for j, t in enumerate(tokens):
            if t.text != "(" or t.kind != "punct" or j == 0 or tokens[j - 1].kind != "id" or j in dropped:
                continue
            if tokens[j - 1].text in FUNCTION_LIKE_KEYWORDS or j not in self.match:
                continue
            close = self.match[j]
            k = close + 1
            while k < len(tokens) and (tokens[k].text in ("const",) + ADDRESS_SPACES):
                k += 1
            if k >= len(tokens) or tokens[k].text != "{":
                continue
            params = [_rules.parse_parameter(self, s, e) for s, e in split_top_level(tokens, j + 1, close)
                      if not (s == e or (e - s == 1 and tokens[s].text == "void"))]
            if not any(p.space for p in params):
                continue
            erased = tuple(" ".join(w for w in p.type_text.split() if w not in ADDRESS_SPACES) for p in params)
            spaces = tuple(p.space if p.indirect else None for p in params)
            groups.setdefault((tokens[j - 1].text, erased), []).append((spaces, j - 1))
        for (name, _), members in groups.items():
            if len({spaces for spaces, _ in members}) < 2:
                continue
            for spaces, name_at in members:
                self.overloaded.setdefault(name, []).append((spaces, name_at))
                self.edits.replace(tokens[name_at].start, tokens[name_at].end, overload_name(name, spaces),
                                   self.text)
        self.overload_definitions = {at for members in self.overloaded.values() for _, at in members}

    def _is_call(self, i):
        tokens = self.tokens
        if i in self.overload_definitions or i + 1 >= len(tokens):
            return False
        if tokens[i - 1].text in (".", "->"):
            return False
        j = i + 1
        if tokens[j].text == "<":
            try:
                j = self.angle_close(j) + 1
            except GeneratorError:
                return False
        return j < len(tokens) and tokens[j].text == "("

    def _resolve_overloaded_call(self, i, scopes):
        tokens = self.tokens
        j = i + 1
        if tokens[j].text == "<":
            j = self.angle_close(j) + 1
        close = self.close_of(j)
        args = [self._argument_space(s, e, scopes) for s, e in split_top_level(tokens, j + 1, close)]
        patterns = {spaces for spaces, _ in self.overloaded[tokens[i].text] if len(spaces) == len(args)}
        viable = {p for p in patterns if all(want is None or got is None or want == got
                                              for want, got in zip(p, args))}
        if len(viable) == 1:
            spaces = viable.pop()
            self.edits.replace(tokens[i].start, tokens[i].end, overload_name(tokens[i].text, spaces), self.text)
        elif patterns and not viable:
            self.error(i, f"no address-space overload of '{tokens[i].text}' takes arguments in "
                          f"({', '.join(a or 'unknown' for a in args)})")
        elif len(viable) > 1:
            self.error(i, f"the simulator cannot tell which address-space overload of '{tokens[i].text}' this call "
                          "needs: pass a variable declared with its address space (device, constant, threadgroup, "
                          "thread) or cast the argument to one")

    def _argument_space(self, s, e, scopes):
        tokens = self.tokens
        for k in range(s, e):
            if tokens[k].text in ADDRESS_SPACES and tokens[k].kind == "id":
                return tokens[k].text  # a cast names it
        for k in range(s, e):
            if tokens[k].kind == "id" and (k == s or tokens[k - 1].text not in (".", "->", "::")):
                for scope in reversed(scopes):
                    if tokens[k].text in scope.variables:
                        return scope.variables[tokens[k].text]
        return None

    def _member_address_space(self, class_scope, start, name_at, open_at, close_at, brace):
        """Member functions qualified by the address space of `this` (`S(T x)
        thread`, `S(T x) device`, as MLX's complex64_t has) lose the
        qualifier, which C++ cannot express (`constant` would read as const);
        variants that differ only in it were dropped before the walk."""
        tokens = self.tokens
        tail_end = brace
        for k in range(close_at + 1, brace):
            if tokens[k].text in (":", "->"):
                tail_end = k
                break
        qualifiers = [k for k in range(close_at + 1, tail_end) if tokens[k].text in ADDRESS_SPACES]
        if not qualifiers:
            return
        for k in qualifiers:
            self.edits.replace(tokens[k].start, tokens[k].end, " ", self.text)

    def _constant_keyword(self, i, program_scope=False, statement_start=None):
        """`constant` is read-only memory (A-6): it becomes `const`, or goes
        away where the declaration already says const (`const constant T&`,
        MLX's `static constant constexpr const`). After a member function's
        parameter list it qualifies `this` and _member_address_space drops it."""
        tokens = self.tokens
        if tokens[i - 1].text == ")" or (tokens[i - 1].text == "const" and tokens[i - 2].text == ")"):
            return
        specifiers = {"const", "volatile", "static", "constexpr", "inline", "METAL_FUNC", "typename", "thread"}
        has_const = False
        for step in (-1, 1):
            k = i + step
            while 0 <= k < len(tokens) and tokens[k].text in specifiers:
                has_const = has_const or tokens[k].text == "const"
                k += step
        self.edits.replace(tokens[i].start, tokens[i].end,
                           self.constant_keyword_text(i, " " if has_const else "const", program_scope, statement_start),
                           self.text)

    # --- hooks of other targets (qmetal.sim._cuda); the simulator's own ----

    def on_function_head(self, start, end):
        """A function definition (body at tokens[end]) at namespace or class
        scope, its declaration starting at tokens[start]."""

    def on_declaration(self, start, end):
        """A statement at namespace or class scope, tokens[start:end], ending
        at the ';' tokens[end]."""

    def constant_keyword_text(self, i, text, program_scope, statement_start):
        """What the `constant` keyword at tokens[i] becomes (`text`)."""
        return text

    def threadgroup_storage(self, type_text, name, dims):
        """The C++ of threadgroup variable `name` of `type_text` (array
        bounds `dims`), declared in a kernel."""
        self.counter += 1
        alias = f"__qmetal_tg_{self.counter}_t"
        key = f"__qmetal_tg_{self.counter}_key"
        return (f"typedef {type_text} {alias}{dims}; static const char {key} = 0; "
                f"{alias}& {name} = *static_cast<{alias}*>(::qmetal_sim::runtime->threadgroup_variable("
                f"&{key}, sizeof({alias}), alignof({alias})));")

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
        parts = [(s, e) for s, e in split_top_level(tokens, j + 1, close)
                 if not (s == e or (e - s == 1 and tokens[s].text == "void"))]
        if self.strict:
            _rules.check_kernel_signature(self, i, j - 1, [_rules.parse_parameter(self, s, e) for s, e in parts])
            if len(self.kernels.get(name, ())) and any(k.namespace == namespace for k in self.kernels[name]):
                self.rule_errors.add(j - 1, f"kernel function '{name}' cannot be overloaded", "B-18")
        for s, e in parts:
            params.append(self._param(s, e, buffer_index))
            if params[-1].kind == "buffer":
                buffer_index += 1
        is_template = tokens[statement_start].text == "template"
        kernel = KernelDef(name, namespace, params, is_template, tokens[j - 1].file, tokens[j - 1].line)
        self.kernels.setdefault(name, []).append(kernel)
        # Kernels get names of their own in the C++, so that no kernel name
        # (`div`, `ids`, ...) can collide with the library's or the entry
        # points' names; MSL forbids calling a kernel, so only the entry
        # points refer to them.
        self.edits.replace(tokens[j - 1].start, tokens[j - 1].end, kernel_symbol(name), self.text)
        # ... with internal linkage: every shader's C++ (the simulator's, each
        # CUDA chunk) defines its kernels, and two definitions of one kernel
        # name must neither clash nor be merged by the linker.
        if self.internal_kernels:
            marker_end = self.close_of(i) if self.is_attribute(i) else i
            self.edits.replace(tokens[i].start, tokens[marker_end].end, "static", self.text)
        if not is_template:
            self.entries.append(Entry(name, kernel_symbol(name), namespace, kernel))

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
                if name in ("stage_in", "grid_origin", "grid_size", "texture", "sampler", "user", "payload", "mesh", "amplification_id"):
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
        if tokens[last].text == ")":  # `name<args>(parameters);` rather than `decltype(...) name<args>;`
            last = self.close_of(last) - 1
        target_end = last + 1
        if tokens[last].text == ">":
            last = matching_angle(tokens, last, -1) - 1
        first = last
        while first - 2 > i and tokens[first - 1].text == "::" and tokens[first - 2].kind == "id":
            first -= 2
        base = tokens[last].text
        target = (source_text(self.text, tokens, first, last) + kernel_symbol(base) +
                  source_text(self.text, tokens, last + 1, target_end))
        candidates = self.kernels.get(base)
        if not candidates:
            self.error(i, f"host_name(\"{host_name}\") instantiates {base!r}, which is not a kernel defined before it")
        kernel = next((k for k in candidates if k.namespace == namespace), candidates[-1])
        if host_name in self.host_names:
            self.error(i, f"host_name(\"{host_name}\") is already the name of another kernel (line "
                          f"{self.tokens[self.host_names[host_name]].line}) [MSL rule D-7]")
        self.host_names[host_name] = i
        self.entries.append(Entry(host_name, target, namespace, kernel))
        return end + 1

    # --- threadgroup variables and function constants -----------------------

    def _threadgroup_declaration(self, i):
        tokens = self.tokens
        end = self._statement_end(i)
        declarators = split_top_level(tokens, i + 1, end)
        first_s, first_e = declarators[0]
        names = []
        name_at = self._declarator_name(first_s, first_e)
        type_text = source_text(self.text, tokens, first_s, name_at)
        out = []
        for n, (s, e) in enumerate(declarators):
            at = name_at if n == 0 else s
            if tokens[at].kind != "id":
                self.error(at, "cannot read this threadgroup declaration")
            name = tokens[at].text
            names.append(name)
            dims = source_text(self.text, tokens, at + 1, e)
            out.append(self.threadgroup_storage(type_text, name, dims))
        self.edits.replace(tokens[i].start, tokens[end].end, " ".join(out), self.text)
        return names

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
            if self.strict:
                value = _rules.evaluate_index(index)
                if tokens[name_at].text == "]":
                    self.rule_errors.add(i, "a function constant is a scalar or a vector, not an array", "E-1")
                if any(tokens[j].text == "=" for j in range(attribute, end)):
                    self.rule_errors.add(i, "a function constant cannot have an initializer", "E-1")
                if value is not None and not 0 <= value <= _rules.MAX_FUNCTION_CONSTANT_INDEX:
                    self.rule_errors.add(i, f"function constant index {value} is out of range 0.."
                                            f"{_rules.MAX_FUNCTION_CONSTANT_INDEX}", "E-1")
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

    def entry_points(self, entry_name, race_check=False):
        lines = []
        table = []
        for n, entry in enumerate(self.entries):
            kernel = entry.kernel
            args, buffers, threadgroups, positions = [], [], [], []
            for k, p in enumerate(kernel.params):
                if p.kind == "buffer":
                    args.append(f"::qmetal_sim::BufferArg{{__qmetal_buffers[{p.expr}]}}")
                    buffers.append(f"uint32_t({p.expr})")
                    positions.append(k)
                elif p.kind == "threadgroup":
                    args.append(f"::qmetal_sim::ThreadgroupArg{{__qmetal_threadgroup_args[{p.expr}]}}")
                    threadgroups.append(f"uint32_t({p.expr})")
                else:
                    args.append(f"::qmetal_sim::position({p.expr})")
            open_ns = "".join(f"namespace {name} {{ " for name in entry.namespace)
            close_ns = "}" * len(entry.namespace)
            qualifier = "".join(f"{name}::" for name in entry.namespace)
            # Names an entry point uses start with __qmetal_, so no kernel name can collide with them.
            lines.append(f"{open_ns}static void __qmetal_entry_{n}(void* const* __qmetal_buffers, "
                         f"const ::qmetal::sim::abi::ThreadIds* __qmetal_ids, "
                         f"void* const* __qmetal_threadgroup_args) {{ (void)__qmetal_buffers; (void)__qmetal_ids; "
                         f"(void)__qmetal_threadgroup_args; {entry.target}({', '.join(args)}); }}")
            if buffers:
                lines.append(f"static const uint32_t __qmetal_buffers_{n}[] = {{{', '.join(buffers)}}};")
                lines.append(f"static constexpr auto __qmetal_params_{n} = ::qmetal_sim::parameter_table(&{entry.target});")
                lines.append(f"static const uint32_t __qmetal_min_bytes_{n}[] = "
                             f"{{{', '.join(f'__qmetal_params_{n}.min_bytes[{k}]' for k in positions)}}};")
                lines.append(f"static const uint8_t __qmetal_writable_{n}[] = "
                             f"{{{', '.join(f'__qmetal_params_{n}.writable[{k}]' for k in positions)}}};")
            if threadgroups:
                lines.append(f"static const uint32_t __qmetal_threadgroups_{n}[] = {{{', '.join(threadgroups)}}};")
            lines.append(close_ns)
            def table_of(label):
                return f"{qualifier}__qmetal_{label}_{n}" if buffers else "nullptr"
            tg_table = f"{qualifier}__qmetal_threadgroups_{n}" if threadgroups else "nullptr"
            table.append(f'  {{"{entry.host_name}", &{qualifier}__qmetal_entry_{n}, {table_of("buffers")}, '
                         f'{len(buffers)}, {tg_table}, {len(threadgroups)}, {cxx_string(kernel.file)}, {kernel.line}, '
                         f'{table_of("min_bytes")}, {table_of("writable")}}},')
        if table:
            lines.append("static const ::qmetal::sim::abi::Kernel __qmetal_kernels[] = {")
            lines.extend(table)
            lines.append("};")
        kernels = "__qmetal_kernels" if table else "nullptr"
        flags = "::qmetal::sim::abi::kRaceInstrumented" if race_check else "0"
        lines.append(f'extern "C" __attribute__((visibility("default"))) const ::qmetal::sim::abi::Library* '
                     f'{entry_name}(const ::qmetal::sim::abi::Runtime* runtime) {{')
        lines.append("  ::qmetal_sim::runtime = runtime;")
        lines.append("  static const ::qmetal::sim::abi::Library library{::qmetal::sim::abi::kAbiVersion, "
                     f"{len(table)}, {kernels}, {flags}}};")
        lines.append("  return &library;")
        lines.append("}")
        return "\n".join(lines) + "\n"


LINE_MARKER_LINE_RE = re.compile(r'^[ \t]*#\s*(\d+)\s+"((?:\\.|[^"\\])*)"[^\n]*$', re.MULTILINE)


def kernel_symbol(name):
    """The C++ name of kernel `name`."""
    return f"__qmetal_kernel_{name}"


def overload_name(name, spaces):
    """The C++ name of one member of an address-space overload set."""
    return f"{name}__qmetal_as_" + "_".join(space or "value" for space in spaces)


# After the prelude, so the shim's own code may use these words: whatever
# the generator's rules miss, the compiler refuses (MSL spec 1.5.4, 2.1).
# Not noexcept, and no rule against derived classes: MSL_RULES.md lists both
# as rejected (from secondary sources), but Apple compiles MLX's
# steel/utils/integral_constant.h, which uses both.
STRICT_PRELUDE = ("#pragma GCC poison double goto typeid dynamic_cast virtual thread_local wchar_t "
                  "char16_t char32_t asm main\n")


def cxx_flags(cxx_is_clang: bool, strict: bool = True) -> list:
    """Flags for compiling generated kernels (qmetal.sim.compile and CMake
    both take them from here). Strict: the MSL features C++ has and MSL has
    not become errors, and the Mac build's -Wall -Werror applies to shader
    code; the shim comes in with -isystem so its own code is exempt."""
    flags = ["-std=c++17", "-fno-strict-aliasing", "-ffp-contract=off", "-Wno-attributes", "-Wno-unknown-pragmas"]
    if not strict:
        return flags
    # -Wno-unknown-pragmas again after -Wall, which turns it back on (`#pragma METAL internals`).
    flags += ["-fno-exceptions", "-fno-rtti", "-Wall", "-Werror", "-Werror=vla", "-Wno-unused-function",
              "-Wno-unknown-pragmas"]
    if cxx_is_clang:
        # Header constants land in the one generated file; -Wall would call them unused.
        flags += ["-Werror=register", "-Werror=zero-length-array", "-Wno-unused-const-variable",
                  "-Wno-unused-local-typedef"]
    else:
        # g++'s -Wall adds -Wsign-compare in C++ (Apple's clang -Wall does not).
        flags += ["-Wno-sign-compare", "-Wno-unused-local-typedefs", "-Werror=register"]
    return flags


# Compile-only flags of a race-checked library: the instrumentation, not its
# runtime (linking happens without them, and race_hooks.h defines the hooks).
RACE_CHECK_FLAGS = ["-fsanitize=thread"]


def cxx_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def language_version(std: str) -> int:
    """__METAL_VERSION__ of a -std= value ("metal3.1", "metal4.0", ...)."""
    if std not in LANGUAGE_VERSIONS:
        raise GeneratorError(f"std: expected one of {', '.join(LANGUAGE_VERSIONS)}, got {std!r}")
    return LANGUAGE_VERSIONS[std]


def preprocess(path: str, cxx: str, include_dirs=(), defines=None, source: str | None = None,
               metal_version: int = METAL_VERSION) -> str:
    command = [cxx, "-E", "-x", "c++", "-std=c++17", f"-D__METAL_VERSION__={metal_version}",
               "-DQMETAL_SIM_SCAN=1", "-DQMETAL_SIM=1", "-I", SHIM_INCLUDE]
    if metal_version >= TENSOR_METAL_VERSION:
        command.append("-D__HAVE_TENSOR__=1")
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


def required_headers(preprocessed: str) -> list:
    """The shim headers a scanned file asked for (REQUIRES_RE), in order."""
    return list(dict.fromkeys(REQUIRES_RE.findall(preprocessed)))


def cxx_standard_flags(preprocessed: str) -> list:
    """Extra flags for one generated file: Metal 4's tensor operations take
    their descriptor as a class-type template argument, which needs C++20."""
    return ["-std=c++20"] if "tensor_ops" in required_headers(preprocessed) else []


def generate(preprocessed: str, entry_name: str = "qmetal_sim_library", display_name: str = "",
             strict: bool = True, race_check: bool = False, metal_version: int = METAL_VERSION,
             internal_kernels: bool = True) -> str:
    """C++ for the simulator. `race_check`: the library is compiled with
    -fsanitize=thread instrumentation (RACE_CHECK_FLAGS) and defines the
    instrumentation's hooks itself (qmetal_sim/race_hooks.h), which report
    every access to the simulator's race detector; no TSan runtime.
    `internal_kernels=False`: kernels keep external linkage (Generator)."""
    generator = Generator(preprocessed, strict=strict, metal_version=metal_version, internal_kernels=internal_kernels)
    generator.run()
    extra = "".join(f'#include "qmetal_sim/{name}.h"\n' for name in required_headers(preprocessed))
    return (f"// Generated by qmetal's simulator from {display_name}; do not edit.\n"
            '#include "qmetal_sim/prelude.h"\n'
            + extra
            + ('#include "qmetal_sim/race_hooks.h"\n' if race_check else "")
            + (STRICT_PRELUDE if strict else "")
            + generator.source()
            + f'\n#line 1 "{display_name} (entry points)"\n'
            + generator.entry_points(entry_name, race_check))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?")
    parser.add_argument("output", nargs="?")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    parser.add_argument("-I", dest="include", action="append", default=[])
    parser.add_argument("-D", dest="define", action="append", default=[])
    parser.add_argument("--entry", default="qmetal_sim_library")
    parser.add_argument("--std", default="metal3.1", choices=sorted(LANGUAGE_VERSIONS),
                        help="the MSL version, as Apple's -std= (metal4.0 enables the tensor operations)")
    parser.add_argument("--print-cxxflags", action="store_true",
                        help="print the flags generated kernels compile with (CMake reads them) and exit")
    args = parser.parse_args(argv)
    if args.print_cxxflags:
        version = subprocess.run([args.cxx, "--version"], capture_output=True, text=True).stdout.lower()
        print(";".join(cxx_flags("clang" in version)))
        return 0
    if args.input is None or args.output is None:
        parser.error("input and output are required")
    defines = {}
    for item in args.define:
        name, _, value = item.partition("=")
        defines[name] = value or None
    try:
        version = language_version(args.std)
        text = preprocess(args.input, args.cxx, args.include, defines, metal_version=version)
        code = generate(text, args.entry, os.path.basename(args.input), metal_version=version)
    except GeneratorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with open(args.output + ".tmp", "w") as f:
        f.write(code)
    os.replace(args.output + ".tmp", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
