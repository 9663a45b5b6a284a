"""Reading GGUF files without copying their tensors: the file is mapped
once, one qmetal Buffer wraps the whole mapping, and every weight is a
GGMLWeight at its offset in it.

GGUF files come from the internet, so the parser treats them as untrusted:
every read is bounds-checked, counts are checked against the bytes left
before anything is allocated, nested arrays are read without recursion,
and the layout is validated as the specification requires (version,
alignment, tensor offsets aligned and inside the file, no overlaps, unique
names). A bad file gives a ValueError naming the file, the byte offset and
the field or tensor; never a crash."""

from __future__ import annotations

import mmap
import struct

import numpy as np

from . import _core
from ._ggml import GGMLWeight

__all__ = ["GGUFFile", "load_gguf"]

_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
_DEFAULT_ALIGNMENT = 32
_ALIGNMENT_MULTIPLE = 8  # GGUF spec: general.alignment is a multiple of 8
_MAX_DIMS = 4            # GGML_MAX_DIMS
# GGUF metadata value types: struct format of the scalars.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_INTEGERS = {0, 1, 2, 3, 4, 5, 10, 11}
_STRING, _ARRAY = 8, 9
_STRING_MIN_BYTES = 8  # its length
_ARRAY_MIN_BYTES = 12  # element type and count
# Dense types qmetal reads as plain NumPy arrays when they are not matrices.
_DENSE = {0: np.float32, 1: np.float16}


class _Cursor:
    """Bounds-checked reads; `context` names what is being read for errors."""

    def __init__(self, view, path):
        self.view, self.pos, self.path = view, 0, path
        self.size = len(view)
        self.context = "the header"

    def fail(self, message, at=None):
        raise ValueError(f"{self.path}: {message} at byte {self.pos if at is None else at} ({self.context})")

    def need(self, count):
        if count < 0 or count > self.size - self.pos:
            self.fail(f"truncated: {count} more bytes needed, {self.size - self.pos} left")

    def read(self, fmt):
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.view, self.pos)
        self.pos += size
        return value

    def count(self, what, min_bytes):
        """A uint64 count of items of at least `min_bytes` each, checked
        against the bytes left before anything is allocated for them."""
        at = self.pos
        value = self.read("<Q")
        if value * min_bytes > self.size - self.pos:
            self.fail(f"{what} count {value} cannot fit in the {self.size - self.pos} bytes left", at)
        return value

    def string(self):
        length = self.count("string length", 1)
        value = bytes(self.view[self.pos:self.pos + length])
        self.pos += length
        return value.decode("utf-8", errors="replace")

    def value(self, kind):
        """One metadata value; arrays (nested to any depth) are read with an
        explicit stack, not recursion."""
        if kind != _ARRAY:
            return self._scalar_or_string(kind)
        root: list = []
        stack = [self._array_frame(root)]
        while stack:
            element, remaining, out = stack[-1]
            if remaining == 0:
                stack.pop()
                continue
            stack[-1][1] -= 1
            if element == _ARRAY:
                child: list = []
                out.append(child)
                stack.append(self._array_frame(child))
            elif element in _SCALARS and element != 7 and remaining > 1:
                # A run of scalars at once (tokenizer scores, token types).
                fmt = _SCALARS[element]
                size = struct.calcsize(fmt)
                self.need(remaining * size)
                out.extend(np.frombuffer(self.view, dtype=np.dtype(fmt), count=remaining, offset=self.pos).tolist())
                self.pos += remaining * size
                stack[-1][1] = 0
            else:
                out.append(self._scalar_or_string(element))
        return root

    def _array_frame(self, out):
        at = self.pos
        element = self.read("<I")
        if element not in _SCALARS and element not in (_STRING, _ARRAY):
            self.fail(f"unknown array element type {element}", at)
        min_bytes = _ARRAY_MIN_BYTES if element == _ARRAY else (
            _STRING_MIN_BYTES if element == _STRING else struct.calcsize(_SCALARS[element]))
        return [element, self.count("array element", min_bytes), out]

    def _scalar_or_string(self, kind):
        if kind in _SCALARS:
            return self.read(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        self.fail(f"unknown metadata value type {kind}", self.pos - 4)


class GGUFFile:
    """``metadata``: the key-value pairs. ``tensors``: name -> GGMLWeight
    (matrices and stacks of them, shape [..., N, K]) or a NumPy view
    (vectors in F32/F16, such as norms). ``unsupported``: names of tensors in
    types qmetal has no kernels for, with their GGUF type ids."""

    def __init__(self, path, device=None):
        with open(path, "rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                raise ValueError(f"{path}: not a GGUF file (empty)") from None
        raw = np.frombuffer(self._map, dtype=np.uint8)
        cursor = _Cursor(memoryview(self._map), path)
        cursor.need(4)
        if bytes(cursor.view[:4]) != _MAGIC:
            raise ValueError(f"{path}: not a GGUF file (no GGUF magic)")
        cursor.pos = 4
        version = cursor.read("<I")
        if version not in _VERSIONS:
            cursor.fail(f"GGUF version {version} is not supported (2 or 3)", 4)
        tensor_count = cursor.count("tensor", _STRING_MIN_BYTES + 4 + 4 + 8)
        kv_count = cursor.count("metadata key-value", _STRING_MIN_BYTES + 4)
        self.metadata = {}
        for n in range(kv_count):
            cursor.context = f"metadata key-value {n}"
            key = cursor.string()
            cursor.context = f"metadata key-value {n} {key!r}"
            kind = cursor.read("<I")
            if key in self.metadata:
                cursor.fail(f"duplicate metadata key {key!r}")
            self.metadata[key] = cursor.value(kind)
            if key == "general.alignment":
                alignment_kind = kind
        alignment = self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
        if "general.alignment" in self.metadata and (
                alignment_kind not in _INTEGERS or alignment <= 0 or alignment % _ALIGNMENT_MULTIPLE):
            raise ValueError(f"{path}: general.alignment must be a positive integer multiple of "
                             f"{_ALIGNMENT_MULTIPLE}, got {alignment!r}")
        infos = []
        names = set()
        for n in range(tensor_count):
            cursor.context = f"tensor info {n}"
            name = cursor.string()
            cursor.context = f"tensor info {n} {name!r}"
            if name in names:
                cursor.fail(f"duplicate tensor name {name!r}")
            names.add(name)
            at = cursor.pos
            n_dims = cursor.read("<I")
            if not 1 <= n_dims <= _MAX_DIMS:
                cursor.fail(f"{n_dims} dimensions (GGML tensors have 1 to {_MAX_DIMS})", at)
            dims = [cursor.read("<Q") for _ in range(n_dims)]
            type_id, offset = cursor.read("<I"), cursor.read("<Q")
            if offset % alignment:
                cursor.fail(f"data offset {offset} is not a multiple of the alignment {alignment}", cursor.pos - 8)
            infos.append((name, tuple(reversed(dims)), type_id, offset))
        data_start = -(-cursor.pos // alignment) * alignment
        types = {row[1]: row for row in _core.ggml_type_table()}
        device = device or _core.default_device()
        buffer = None
        self.tensors, self.unsupported = {}, {}
        extents = []
        for name, shape, type_id, offset in infos:
            where = f"{path}: tensor {name!r}"
            count = 1
            for extent in shape:
                count *= extent
            if count >= 2**63:
                raise ValueError(f"{where}: shape {shape} has too many elements")
            start = data_start + offset
            if type_id in _DENSE:
                nbytes = count * np.dtype(_DENSE[type_id]).itemsize
            elif type_id in types:
                _, _, block_values, block_bytes, *_ = types[type_id]
                if shape[-1] % block_values:
                    raise ValueError(f"{where}: its rows ({shape[-1]} values) are not whole {types[type_id][0]} "
                                     f"blocks of {block_values}")
                nbytes = count // block_values * block_bytes
            else:
                self.unsupported[name] = type_id
                continue
            if start > len(raw) or nbytes > len(raw) - start:
                raise ValueError(f"{where}: data [{start}, {start + nbytes}) lies past the end of the file "
                                 f"({len(raw)} bytes)")
            extents.append((start, start + nbytes, name))
            if type_id in _DENSE and len(shape) < 2:
                self.tensors[name] = raw[start:start + nbytes].view(_DENSE[type_id]).reshape(shape)
            elif type_id in types and len(shape) >= 2:
                if buffer is None:
                    from ._buffer import asbuffer

                    buffer = asbuffer(raw, device=device)  # the whole file, once
                try:
                    native = _core.GGMLWeight.from_buffer(buffer, types[type_id][0], list(shape), start)
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
                self.tensors[name] = GGMLWeight._from_native(native, device)
            else:
                self.unsupported[name] = type_id
        extents.sort()
        for (_, end, first), (start, _, second) in zip(extents, extents[1:]):
            if start < end:
                raise ValueError(f"{path}: the data of tensors {first!r} and {second!r} overlap (at byte {start})")

    def __repr__(self):
        return f"<GGUFFile {len(self.tensors)} tensors, {len(self.metadata)} metadata keys>"


def load_gguf(path, *, device=None) -> GGUFFile:
    """Map a GGUF file and expose its tensors without copying them."""
    return GGUFFile(path, device)
