"""The one mapping between NumPy dtypes and qmetal dtype names."""

from __future__ import annotations

import ml_dtypes
import numpy as np

bfloat16 = np.dtype(ml_dtypes.bfloat16)

_BY_NAME = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": bfloat16,
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
}
_BY_DTYPE = {dtype: name for name, dtype in _BY_NAME.items()}

FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def dtype_name(dtype, what: str = "dtype") -> str:
    """The qmetal name of a NumPy dtype (or of a name), or TypeError."""
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return dtype
    try:
        key = np.dtype(dtype)
    except TypeError:
        key = None
    if key is not None and key.newbyteorder("=") == key and key in _BY_DTYPE:
        return _BY_DTYPE[key]
    raise TypeError(f"{what}: expected one of {', '.join(_BY_NAME)} in native byte order, got {dtype!r}")


def numpy_dtype(name: str) -> np.dtype:
    return _BY_NAME[dtype_name(name)]


def float_array(array, what: str):
    """`array` as a NumPy array of one of the kernels' float dtypes, or a
    TypeError naming `what`."""
    array = np.asarray(array)
    key = array.dtype
    name = _BY_DTYPE.get(key) if key.newbyteorder("=") == key else None
    if name not in FLOAT_DTYPES:
        raise TypeError(f"{what}: expected float32, float16 or bfloat16, got {array.dtype}")
    return array


def dense_dtype(dtype):
    """The dtype a dequantized weight may be asked for, in both formats:
    the kernels' float dtypes or float64 (an exact widening); None keeps the
    format's default."""
    if dtype is None:
        return None
    try:
        key = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a float dtype (float32, float16, bfloat16 or float64), got {dtype!r}") \
            from None
    if key == np.float64:
        return key
    name = _BY_DTYPE.get(key)
    if name not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected a float dtype (float32, float16, bfloat16 or float64), got {key}")
    return key


def float_activations(x):
    """x as a NumPy array, and its dtype name, which must be one the kernels take."""
    x = np.asarray(x)
    name = dtype_name(x.dtype, "x")
    if name not in FLOAT_DTYPES:
        raise TypeError(f"x: expected float32, float16 or bfloat16, got {name}")
    return x, name
