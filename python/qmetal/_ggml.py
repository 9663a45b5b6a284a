"""GGML block weights (GGUF's Q4_0 ... Q6_K, F16/BF16/F32) and their ops.

``qmetal.matmul``, ``gather_matmul`` and ``dequantize`` dispatch here for a
``GGMLWeight``; semantics are those of the affine ops (MLX's), with
llama.cpp's output convention: float32 unless ``dtype`` asks for the
activations' dtype.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _core
from ._buffer import asbuffer
from ._dtypes import dtype_name, float_activations

__all__ = ["GGML_TYPE_NAMES", "GGMLWeight"]

GGML_TYPE_NAMES = tuple(row[0] for row in _core.ggml_type_table())


def _integers(values, what):
    """Integral values (Python or NumPy integers); 64.7 is refused, not truncated."""
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{what}: expected a sequence of integers, got {values.__class__.__name__}") from None
    out = []
    for value in items:
        try:
            out.append(operator.index(value))
        except TypeError:
            raise TypeError(f"{what}: expected integers, got {value!r}") from None
    return tuple(out)


class GGMLWeight:
    """A weight of logical ``shape [..., N, K]`` as raw GGML blocks, exactly
    as a GGUF file stores them: ``data`` is a NumPy uint8 array, ``bytes``,
    or an ``mmap`` region, wrapped without copying where its memory allows.
    ``offset`` points into ``data`` (a whole mapped file can back many
    weights). Stacked experts are ``[E, N, K]``.
    """

    def __init__(self, data, type: str, shape, offset: int = 0, *, device=None):
        device = device or _core.default_device()
        if isinstance(data, np.ndarray):
            if data.dtype != np.uint8:
                raise TypeError(f"data: expected the raw blocks as uint8, got {data.dtype}")
            raw = data.reshape(-1) if data.flags.c_contiguous else data
        else:
            try:
                raw = np.frombuffer(data, dtype=np.uint8)
            except TypeError:
                raise TypeError(f"data: expected a uint8 array, bytes or an mmap, got {data.__class__.__name__}") \
                    from None
        if not isinstance(type, str):
            raise TypeError(f"type: expected a GGML type name such as 'Q4_K', got {type.__class__.__name__}")
        shape = _integers(shape, "shape")
        (offset,) = _integers([offset], "offset")
        if offset < 0:
            raise ValueError(f"offset: expected a byte offset >= 0, got {offset}")
        self._native = _core.GGMLWeight.from_buffer(asbuffer(raw, device=device), type, list(shape), offset)
        self._device = device

    @classmethod
    def _from_native(cls, native, device):
        weight = cls.__new__(cls)
        weight._native, weight._device = native, device
        return weight

    @property
    def type(self) -> str:
        return self._native.type

    @property
    def shape(self) -> tuple:
        return tuple(self._native.shape)

    @property
    def data(self) -> np.ndarray:
        return np.asarray(self._native.data)

    @property
    def copied(self) -> bool:
        return self._native.data.copied

    def __repr__(self):
        return f"GGMLWeight(type={self.type}, shape={self.shape})"


def _output(dtype):
    """llama.cpp's convention: float32 results unless asked otherwise."""
    return "float32" if dtype is None else dtype_name(dtype, "dtype")


def matmul(x, w, device, native_stream, out_buffer, route, dtype=None, heads_first=False):
    x, _ = float_activations(x)
    return _core.ggml_matmul(device, asbuffer(x, device=device), w._native, _output(dtype), bool(heads_first),
                             out_buffer, route, native_stream)


def gather_matmul(x, w, indices, device, native_stream, out_buffer, route, dtype=None):
    x, _ = float_activations(x)
    return _core.ggml_gather_matmul(device, asbuffer(x, device=device), w._native, *indices, _output(dtype),
                                    out_buffer, route, native_stream)


def dequantize(w, device, dtype=None):
    return np.asarray(_core.ggml_dequantize(device, w._native, _output(dtype)))
