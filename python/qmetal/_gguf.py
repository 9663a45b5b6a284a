"""Reading GGUF files without copying their tensors: the file is mapped
once, one qmetal Buffer wraps the whole mapping, and every weight is a
GGMLWeight at its offset in it (GGUF aligns tensor data to 32 bytes)."""

from __future__ import annotations

import mmap
import struct

import numpy as np

from . import _core
from ._ggml import GGMLWeight

__all__ = ["GGUFFile", "load_gguf"]

_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
# GGUF metadata value types: struct format of the scalars.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Dense types qmetal reads as plain NumPy arrays when they are not matrices.
_DENSE = {0: np.float32, 1: np.float16}


class _Cursor:
    def __init__(self, view):
        self.view, self.pos = view, 0

    def read(self, fmt):
        (value,) = struct.unpack_from(fmt, self.view, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self):
        length = self.read("<Q")
        value = bytes(self.view[self.pos:self.pos + length]).decode("utf-8", errors="replace")
        self.pos += length
        return value

    def value(self, kind):
        if kind in _SCALARS:
            return self.read(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            element, count = self.read("<I"), self.read("<Q")
            return [self.value(element) for _ in range(count)]
        raise ValueError(f"GGUF: unknown metadata value type {kind} at byte {self.pos}")


class GGUFFile:
    """``metadata``: the key-value pairs. ``tensors``: name -> GGMLWeight
    (matrices and stacks of them, shape [..., N, K]) or a NumPy view
    (vectors in F32/F16, such as norms). ``unsupported``: names of tensors in
    types qmetal has no kernels for, with their GGUF type ids."""

    def __init__(self, path, device=None):
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        raw = np.frombuffer(self._map, dtype=np.uint8)
        cursor = _Cursor(memoryview(self._map))
        if bytes(cursor.view[:4]) != _MAGIC:
            raise ValueError(f"{path}: not a GGUF file (no GGUF magic)")
        cursor.pos = 4
        version = cursor.read("<I")
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is not supported (2 or later)")
        tensor_count, kv_count = cursor.read("<Q"), cursor.read("<Q")
        self.metadata = {}
        for _ in range(kv_count):
            key = cursor.string()
            self.metadata[key] = cursor.value(cursor.read("<I"))
        infos = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = [cursor.read("<Q") for _ in range(cursor.read("<I"))]
            infos.append((name, tuple(reversed(dims)), cursor.read("<I"), cursor.read("<Q")))
        alignment = int(self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT))
        data_start = -(-cursor.pos // alignment) * alignment
        types = {row[1]: row[0] for row in _core.ggml_type_table()}
        device = device or _core.default_device()
        buffer = None
        self.tensors, self.unsupported = {}, {}
        for name, shape, type_id, offset in infos:
            start = data_start + offset
            if type_id in _DENSE and len(shape) < 2:
                count = int(np.prod(shape))
                self.tensors[name] = raw[start:start + count * np.dtype(_DENSE[type_id]).itemsize].view(
                    _DENSE[type_id]).reshape(shape)
            elif type_id in types and len(shape) >= 2:
                if buffer is None:
                    from ._buffer import asbuffer

                    buffer = asbuffer(raw, device=device)  # the whole file, once
                self.tensors[name] = GGMLWeight._from_native(
                    _core.GGMLWeight.from_buffer(buffer, types[type_id], list(shape), start), device)
            else:
                self.unsupported[name] = type_id

    def __repr__(self):
        return f"<GGUFFile {len(self.tensors)} tensors, {len(self.metadata)} metadata keys>"


def load_gguf(path, *, device=None) -> GGUFFile:
    """Map a GGUF file and expose its tensors without copying them."""
    return GGUFFile(path, device)
