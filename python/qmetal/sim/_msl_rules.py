"""MSL's own rules, which C++ does not enforce: the generator's strict mode.

The simulator compiles MSL as C++, where address spaces are macros that
vanish, so C++ alone accepts code Apple's compiler rejects (round 1 shipped
threadgroup arrays in helper functions that way). These checks run on the
generator's token walk, which knows kernels, functions, scopes and parameter
lists; each reports Apple's own wording where it is known, the rule's id in
``../shared/design/MSL_RULES.md`` and the ``.metal`` line. What a token walk
cannot see reliably (casts between address spaces, address spaces of member
functions called on device objects, ``auto&``) is left to Apple's compiler in
the macOS CI job; the README lists both sides.

Real clang address spaces (``__attribute__((address_space(N)))``) were tried
and rejected: they make hundreds of lines of valid MSL fail (copies of structs
out of device memory, methods called on device objects), see MSL_RULES.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ADDRESS_SPACES = ("device", "constant", "threadgroup", "thread", "threadgroup_imageblock", "object_data",
                  "ray_data")
KERNEL_POINTER_SPACES = ("device", "constant", "threadgroup", "threadgroup_imageblock", "object_data", "ray_data")
MAX_BINDING_INDEX = 30  # 31 buffer and 31 threadgroup slots (air.max_device_buffers)
MAX_FUNCTION_CONSTANT_INDEX = 65535
LAMBDAS_SINCE = 320  # MSL 3.2

# Built-in kernel inputs: the types Apple allows (MSL spec 5.2.3.6, Table 5.8).
_GRID_TYPES = {"ushort", "ushort2", "ushort3", "uint", "uint2", "uint3", "uint16_t", "uint32_t"}
_INDEX_TYPES = {"ushort", "uint", "uint16_t", "uint32_t"}
BUILTIN_TYPES = {
    "thread_position_in_grid": _GRID_TYPES,
    "thread_position_in_threadgroup": _GRID_TYPES,
    "threadgroup_position_in_grid": _GRID_TYPES,
    "threads_per_grid": _GRID_TYPES,
    "threads_per_threadgroup": _GRID_TYPES,
    "threadgroups_per_grid": _GRID_TYPES,
    "dispatch_threads_per_threadgroup": _GRID_TYPES,
    "grid_origin": _GRID_TYPES,
    "grid_size": _GRID_TYPES,
    "thread_index_in_threadgroup": _INDEX_TYPES,
    "thread_index_in_simdgroup": _INDEX_TYPES,
    "simdgroup_index_in_threadgroup": _INDEX_TYPES,
    "threads_per_simdgroup": _INDEX_TYPES,
    "thread_execution_width": _INDEX_TYPES,
    "simdgroups_per_threadgroup": _INDEX_TYPES,
    "dispatch_simdgroups_per_threadgroup": _INDEX_TYPES,
    "thread_index_in_quadgroup": _INDEX_TYPES,
    "quadgroup_index_in_threadgroup": _INDEX_TYPES,
    "quadgroups_per_threadgroup": _INDEX_TYPES,
}
# Attributes that name one value twice (MSL spec 5.2.3.6: "aliases of one another").
BUILTIN_ALIASES = {"thread_execution_width": "threads_per_simdgroup"}

# Words no MSL program may use; the prelude also poisons most of them, these
# give Apple's message at the .metal line instead of a compiler's.
BANNED_WORDS = {
    "goto": ("'goto' is not supported in Metal", "B-5"),
    "thread_local": ("'thread_local' is not supported in Metal", "B-6"),
    "register": ("Metal does not support the 'register' storage class specifier", "B-6"),
    "virtual": ("virtual member functions are not supported in Metal", "B-7"),
    "typeid": ("type identification (typeid) is not supported in Metal", "B-2"),
    "dynamic_cast": ("dynamic_cast is not supported in Metal", "B-2"),
    "try": ("'try' is not supported in Metal", "B-9"),
    "catch": ("'catch' is not supported in Metal", "B-9"),
    "throw": ("'throw' is not supported in Metal", "B-9"),
    "double": ("'double' is not supported in Metal", "C-1"),
    "wchar_t": ("'wchar_t' is not a Metal type", "C-5"),
    "char16_t": ("'char16_t' is not a Metal type", "C-5"),
    "char32_t": ("'char32_t' is not a Metal type", "C-5"),
    "asm": ("illegal asm statement", "B-16"),
    "__asm__": ("illegal asm statement", "B-16"),
}
# Statement-start words that begin something other than a variable declaration.
NOT_DECLARATION = {"return", "if", "else", "for", "while", "do", "switch", "case", "default", "break", "continue",
                   "using", "typedef", "template", "namespace", "static_assert", "struct", "class", "union", "enum",
                   "public", "private", "protected", "friend", "operator", "delete", "new", "sizeof", "co_return",
                   "extern", "goto", "throw", "this"}
DECL_SPECIFIERS = {"const", "volatile", "static", "constexpr", "inline", "mutable", "typename", "unsigned", "signed",
                   "METAL_FUNC"} | set(ADDRESS_SPACES)


@dataclass
class Parameter:
    """One declared parameter (or variable), as the token walk sees it."""
    space: str | None      # its address-space keyword, if any
    indirect: bool         # a pointer or a reference (at the top level of the declarator)
    name: str | None
    name_at: int | None
    type_text: str         # the declared type with attributes and any default value removed
    attributes: list       # [(name, argument text or None, token index)]
    first: int


class RuleErrors:
    """Collects violations so one compile reports all of them, in line order."""

    def __init__(self, generator):
        self.generator = generator
        self.items: list[tuple[str, int, str]] = []

    def add(self, i, message, rule):
        t = self.generator.tokens[i]
        self.items.append((t.file, t.line, f"{t.file}:{t.line}: error: {message} [MSL rule {rule}]"))

    def report(self):
        seen, lines = set(), []
        for _, _, text in sorted(self.items, key=lambda e: (e[0], e[1])):
            if text not in seen:
                seen.add(text)
                lines.append(text)
        return "\n".join(lines)


def parse_parameter(gen, s, e) -> Parameter:
    """Reads tokens[s:e] as one parameter declaration."""
    tokens = gen.tokens
    attributes, kept = [], []
    j = s
    while j < e:
        if gen.is_attribute(j):
            close = gen.close_of(j)
            for name, arg in gen.attribute_items_at(j):
                attributes.append((name, arg, j))
            j = close + 1
            continue
        if tokens[j].text == "=" and gen.angle_depth_zero(s, j):
            break  # a default value
        kept.append(j)
        j += 1
    space = next((tokens[k].text for k in kept if tokens[k].text in ADDRESS_SPACES and tokens[k].kind == "id"), None)
    indirect = False
    angle = 0
    for k in kept:
        text = tokens[k].text
        if text == "<":
            angle += 1
        elif text == ">" and angle:
            angle -= 1
        elif angle == 0 and text in ("*", "&", "&&"):
            indirect = True
    # The name: the last identifier before any array bounds. An array
    # parameter is a pointer (`constant const int64_t strides[2]`, MLX's utils.h).
    bounds = next((k for k in kept if tokens[k].text == "["), None)
    indirect = indirect or bounds is not None
    candidates = [k for k in kept if (bounds is None or k < bounds) and tokens[k].kind == "id"]
    name_at = candidates[-1] if len(candidates) >= 2 else None
    if name_at is not None and tokens[name_at].text in DECL_SPECIFIERS | {"void", "float", "int", "uint", "half",
                                                                             "bool", "short", "ushort", "char"}:
        name_at = None
    type_end = name_at if name_at is not None else (kept[-1] + 1 if kept else s)
    type_text = " ".join(tokens[k].text for k in kept if k < type_end)
    return Parameter(space, indirect, tokens[name_at].text if name_at is not None else None, name_at, type_text,
                     attributes, s)


def check_parameter(gen, p: Parameter, in_kernel: bool):
    """Address-space rules for one parameter of any function (A-3, A-4, A-8)."""
    errors = gen.rule_errors
    if p.indirect and p.space is None:
        kind = "reference" if "&" in p.type_text.split() or p.type_text.endswith("&") else "pointer"
        errors.add(p.first, f"{kind} type must have explicit address space qualifier", "A-4")
    elif p.space is not None and not p.indirect:
        errors.add(p.first, "parameter may not be qualified with an address space", "A-8")
    if in_kernel and p.indirect and p.space == "thread":
        errors.add(p.first, f"invalid address space 'thread' for a kernel parameter: pointers and references "
                            f"passed to a kernel are device, constant or threadgroup", "A-3")


def check_kernel_signature(gen, kernel_at, name_at, params: list[Parameter]):
    """The rules of a kernel's declaration (D-1..D-5, C-4, A-3, B-17)."""
    tokens = gen.tokens
    errors = gen.rule_errors
    head = [tokens[k].text for k in range(kernel_at, name_at)]
    if "void" not in head:
        returned = next((t for t in reversed(head) if t not in ("kernel", "[", "]", "inline")), "?")
        errors.add(name_at, f"invalid return type '{returned}' for kernel function", "D-1")
    used = {"buffer": {}, "threadgroup": {}}
    builtins = {}
    for p in params:
        names = [a[0] for a in p.attributes]
        if "..." in p.type_text.replace(" ", "") or p.type_text.replace(" ", "") == "..":
            errors.add(p.first, "invalid prototype; variadic arguments are not allowed in Metal qualified "
                                "functions", "B-17")
            continue
        for word in ("size_t", "ptrdiff_t"):
            if re.search(rf"\b{word}\b", p.type_text):
                errors.add(p.first, f"'{word}' cannot be used as the type of a kernel parameter", "C-4")
        for name, arg, at in p.attributes:
            if name in ("buffer", "threadgroup"):
                index = evaluate_index(arg)
                if index is None:
                    continue
                if not 0 <= index <= MAX_BINDING_INDEX:
                    errors.add(at, f"'{name}' attribute parameter is out of bounds: must be between 0 and "
                                   f"{MAX_BINDING_INDEX}", "D-2")
                elif index in used[name]:
                    errors.add(at, f"cannot reserve '{name}' resource location at index {index}", "D-2")
                used[name][index] = at
                if name == "buffer" and p.indirect and p.space not in ("device", "constant", None):
                    errors.add(at, f"invalid address space qualification for buffer pointee type "
                                   f"'{p.space}': valid address space qualifications are device and constant", "A-3")
                if name == "threadgroup" and not (p.indirect and p.space == "threadgroup"):
                    errors.add(at, f"type '{p.type_text}' is not valid for attribute 'threadgroup'", "A-3")
            elif name in BUILTIN_TYPES:
                base = p.type_text.replace("const", "").replace("metal ::", "").replace("metal::", "").split()
                base_type = base[-1] if base else ""
                if base_type not in BUILTIN_TYPES[name] or p.indirect:
                    errors.add(at, f"type '{p.type_text}' is not valid for attribute '{name}'", "D-3")
                canonical = BUILTIN_ALIASES.get(name, name)
                if canonical in builtins:
                    other = builtins[canonical]
                    if other == name:
                        errors.add(at, f"declaration with attribute '{name}' already specified", "D-4")
                    else:
                        errors.add(at, f"kernel function cannot have input declarations with '{other}' and "
                                       f"'{name}' attributes", "D-4")
                builtins[canonical] = name
        resource = any(n in ("buffer", "threadgroup", "texture", "sampler", "stage_in") or n in BUILTIN_TYPES
                       for n in names)
        if not resource and not p.indirect and p.type_text not in ("", "void"):
            errors.add(p.first, f"invalid type '{p.type_text}' for input declaration in a kernel function", "D-5")


def evaluate_index(text):
    """A binding index written as an integer expression, or None if it is not
    one the generator can evaluate (Apple's compiler then checks it)."""
    if text is None:
        return None
    expr = re.sub(r"(?<=\d)[uUlL]+\b", "", text)
    if not re.fullmatch(r"[\d\s+\-*/()]+", expr):
        return None
    try:
        return int(eval(expr, {"__builtins__": {}}, {}))  # digits and arithmetic only
    except Exception:
        return None


def check_tokens(gen, i, metal_version):
    """Rules a single token position decides (banned words, lambdas, new/delete, long long)."""
    tokens = gen.tokens
    t = tokens[i]
    errors = gen.rule_errors
    if t.kind != "id" and t.text != "[":
        return
    if t.kind == "id" and t.text in BANNED_WORDS:
        message, rule = BANNED_WORDS[t.text]
        errors.add(i, message, rule)
    elif t.text == "long" and i + 1 < len(tokens) and tokens[i + 1].text in ("long", "double"):
        errors.add(i, f"'long {tokens[i + 1].text}' is not supported in Metal", "C-2")
    elif t.text == "new" and tokens[i - 1].text != "operator":
        errors.add(i, "'new' is not supported in Metal", "B-3")
    elif t.text == "delete" and tokens[i - 1].text not in ("operator", "="):
        errors.add(i, "'delete' is not supported in Metal", "B-3")
    elif t.text == "main" and i + 1 < len(tokens) and tokens[i + 1].text == "(" and tokens[i - 1].kind == "id" \
            and tokens[i - 1].text not in ("return",):
        errors.add(i, "non-qualified function cannot be called 'main'", "B-13")
    elif t.text == "[" and metal_version < LAMBDAS_SINCE and not gen.is_attribute(i) and \
            (i == 0 or tokens[i - 1].text in ("=", "(", ",", "return", "{", ";", "?", ":")):
        close = gen.close_of(i)
        if close + 1 < len(tokens) and tokens[close + 1].text in ("(", "{", "mutable", "->"):
            errors.add(i, "lambda expressions are not supported in Metal (before MSL 3.2; qmetal builds "
                          "with -std=metal3.1)", "B-1")


def check_program_scope_statement(gen, start, end):
    """Program-scope variables live in `constant` (A-1)."""
    tokens = gen.tokens
    if start >= end:
        return
    first = tokens[start]
    words = [tokens[k].text for k in range(start, end)]
    if first.kind != "id" or first.text in NOT_DECLARATION or first.text in ("constant", "constexpr", "static"):
        if first.text == "static" and "constant" not in words and "constexpr" not in words and "(" not in words:
            gen.rule_errors.add(start, "program scope variable must reside in constant address space", "A-1")
        return
    if "constant" in words or "constexpr" in words or "(" in words or "operator" in words:
        return  # constant data, a function declaration, or a deduction guide
    if first.text in ("device", "threadgroup", "thread") or any(
            w in ("=", "[") for w in words) or (len(words) >= 2 and tokens[end - 1].kind == "id"):
        gen.rule_errors.add(start, "program scope variable must reside in constant address space", "A-1")


def local_declaration(gen, start, end_limit):
    """A simple declaration at tokens[start] (`[specifiers] Type[<...>][::...] [*|&]... name (=|;|,|[|{)`),
    as (specifiers' address space or None, indirect, name index), or None if the statement is not one."""
    tokens = gen.tokens
    j = start
    space = None
    seen_type = False
    while j < end_limit:
        t = tokens[j]
        if t.kind != "id":
            break
        if t.text in NOT_DECLARATION:
            return None
        if t.text in DECL_SPECIFIERS:
            if t.text in ADDRESS_SPACES:
                space = t.text
            j += 1
            continue
        if seen_type:
            break
        seen_type = True
        j += 1
        while j < end_limit:
            if tokens[j].text == "<":
                try:
                    j = gen.angle_close(j) + 1
                except Exception:  # a comparison (`i < n;` in a for header), not template arguments
                    return None
            elif tokens[j].text == "::" and j + 1 < end_limit and tokens[j + 1].kind == "id":
                j += 2
            else:
                break
        while j < end_limit and tokens[j].text in ("const", "volatile") or (
                j < end_limit and tokens[j].text in ADDRESS_SPACES):
            if tokens[j].text in ADDRESS_SPACES:
                space = tokens[j].text
            j += 1
    if not seen_type:
        return None
    indirect = False
    while j < end_limit and tokens[j].text in ("*", "&", "&&", "const", "volatile"):
        if tokens[j].text in ("*", "&", "&&"):
            indirect = True
        j += 1
    if j >= end_limit or tokens[j].kind != "id":
        return None
    name_at = j
    if name_at + 1 >= len(tokens) or tokens[name_at + 1].text not in ("=", ";", ",", "[", "{"):
        return None
    return space, indirect, name_at
