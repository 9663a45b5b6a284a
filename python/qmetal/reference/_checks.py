"""Argument checks shared by the reference functions. Every failure names the
argument and what was expected."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .._dtypes import FLOAT_DTYPES, dtype_name


def array(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except Exception as error:  # noqa: BLE001 - anything NumPy cannot read is a TypeError here
        raise TypeError(f"{what}: expected an array, got {type(value).__name__}") from error


def float_array(value, what: str) -> np.ndarray:
    out = array(value, what)
    name = _name_or_none(out.dtype)
    if name not in FLOAT_DTYPES:
        raise TypeError(f"{what}: expected dtype {', '.join(FLOAT_DTYPES)}, got {out.dtype}")
    return out


def dtype_is(value: np.ndarray, allowed: Iterable[str], what: str) -> str:
    allowed = tuple(allowed)
    name = _name_or_none(value.dtype)
    if name not in allowed:
        raise TypeError(f"{what}: expected dtype {' or '.join(allowed)}, got {value.dtype}")
    return name


def integer_array(value, what: str) -> np.ndarray:
    out = array(value, what)
    if out.dtype.kind not in "iu":
        raise TypeError(f"{what}: expected an integer array, got dtype {out.dtype}")
    return out


def choice(value, allowed: Iterable, what: str):
    allowed = tuple(allowed)
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{what}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def min_ndim(value: np.ndarray, ndim: int, what: str) -> None:
    if value.ndim < ndim:
        raise ValueError(f"{what}: expected at least {ndim} dimensions, got shape {value.shape}")


def shape_is(value: np.ndarray, expected: tuple, what: str) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{what}: expected shape {tuple(expected)}, got {tuple(value.shape)}")


def divisible(extent: int, by: int, what: str) -> None:
    if extent % by != 0:
        raise ValueError(f"{what}: {extent} is not a multiple of {by}")


def ids_in_range(ids: np.ndarray, count: int, what: str) -> None:
    if ids.size and (ids.min() < 0 or ids.max() >= count):
        raise ValueError(f"{what}: expected values in [0, {count}), got [{ids.min()}, {ids.max()}]")


def _name_or_none(dtype) -> str | None:
    try:
        return dtype_name(dtype)
    except TypeError:
        return None
