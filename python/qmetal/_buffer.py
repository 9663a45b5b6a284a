"""Turning arrays into qmetal Buffers, without copying where alignment allows."""

from __future__ import annotations

import numpy as np

from . import _core
from ._dtypes import dtype_name, numpy_dtype


def asbuffer(array, dtype=None, device=None) -> _core.Buffer:
    """A Buffer over ``array``'s memory.

    The buffer aliases the array (writes through either are seen by both)
    when the array is C-contiguous and its data is aligned to the device's
    ``wrap_alignment``; otherwise the data is copied and ``buffer.copied`` is
    True. A Buffer is returned unchanged. The array stays alive as long as
    the buffer does.
    """
    if isinstance(array, _core.Buffer):
        if dtype is not None and dtype_name(dtype) != array.dtype:
            raise TypeError(f"array: buffer has dtype {array.dtype}, expected {dtype_name(dtype)}")
        return array
    if device is None:
        device = _core.default_device()
    source = np.asarray(array)
    name = dtype_name(source.dtype, "array") if dtype is None else dtype_name(dtype)
    if numpy_dtype(name) != source.dtype:
        raise TypeError(f"array: dtype {source.dtype} does not match dtype={name}")
    contiguous = np.ascontiguousarray(source)
    made_copy = contiguous is not source and not np.shares_memory(contiguous, source)
    raw = contiguous.reshape(-1).view(np.uint8)
    return _core.Buffer._wrap_bytes(
        raw, name, list(source.shape), device.capabilities["wrap_alignment"],
        readonly=not source.flags.writeable and not made_copy, source_is_copy=made_copy)


def empty(shape, dtype="float32") -> _core.Buffer:
    """A new page-aligned, uninitialised buffer."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return _core.Buffer.empty(list(shape), dtype_name(dtype))


def zeros(shape, dtype="float32") -> _core.Buffer:
    buffer = empty(shape, dtype)
    buffer.numpy()[...] = 0
    return buffer
