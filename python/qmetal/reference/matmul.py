"""Float64 reference matmuls over quantized weights, and their MoE forms.

``*_matmul``: ``y = x @ dequant(w).T`` (``transpose=False``: ``x @ dequant(w)``).
``*_gather_matmul``: experts stacked as ``w [E, N, K]``; ``ids [...]`` names the
expert of each (token, slot); ``x`` is ``ids.shape + (K,)`` (one activation
row per slot) or ``ids.shape[:-1] + (K,)`` (a token's row shared by its
slots); the result is ``ids.shape + (N,)``.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .affine import affine_dequantize
from .ggml import ggml_dequantize


def _activations(x) -> np.ndarray:
    x = _checks.float_array(x, "x")
    _checks.min_ndim(x, 1, "x")
    return x.astype(np.float64)


def _matmul(x, w, transpose: bool) -> np.ndarray:
    x = _activations(x)
    w = np.swapaxes(w, -1, -2) if transpose else w
    if x.shape[-1] != w.shape[-2]:
        raise ValueError(f"x: expected last dimension {w.shape[-2]} (K of the weight), got {x.shape[-1]}")
    return np.matmul(x, w)


def _gather_matmul(x, experts: np.ndarray, ids) -> np.ndarray:
    x = _activations(x)
    ids = _checks.integer_array(ids, "ids")
    _checks.min_ndim(ids, 1, "ids")
    count, n, k = experts.shape
    _checks.ids_in_range(ids, count, "ids")
    if x.shape[-1] != k:
        raise ValueError(f"x: expected last dimension {k} (K of the experts), got {x.shape[-1]}")
    if x.shape[:-1] == ids.shape[:-1]:
        x = np.broadcast_to(x[..., None, :], ids.shape + (k,))
    elif x.shape[:-1] != ids.shape:
        raise ValueError(f"x: expected shape {ids.shape + (k,)} or {ids.shape[:-1] + (k,)} "
                         f"for ids of shape {ids.shape}, got {x.shape}")
    y = np.empty(ids.shape + (n,), dtype=np.float64)
    for expert in np.unique(ids):
        rows = ids == expert
        y[rows] = x[rows] @ experts[expert].T
    return y


def affine_matmul(x, packed, scales, biases, bits: int = 4, group_size: int = 64, transpose: bool = True):
    """``x @ dequant(w).T`` in float64; a batched ``w [..., N, K]`` broadcasts as in NumPy."""
    w = affine_dequantize(packed, scales, biases, bits, group_size).astype(np.float64)
    return _matmul(x, w, transpose)


def affine_gather_matmul(x, packed, scales, biases, ids, bits: int = 4, group_size: int = 64):
    """MoE: ``y[..., s, :] = x[..., s, :] @ dequant(w[ids[..., s]]).T`` in float64."""
    packed = _checks.array(packed, "packed")
    if packed.ndim != 3:
        raise ValueError(f"packed: expected experts stacked as [E, N, K*bits/32], got shape {packed.shape}")
    experts = affine_dequantize(packed, scales, biases, bits, group_size).astype(np.float64)
    return _gather_matmul(x, experts, ids)


def ggml_matmul(x, blocks, type, shape, transpose: bool = True):
    """``x @ dequant(w).T`` in float64 for GGML blocks of logical ``shape [..., N, K]``."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"shape: expected [..., N, K], got {shape}")
    w = ggml_dequantize(blocks, type, shape).astype(np.float64)
    return _matmul(x, w, transpose)


def ggml_gather_matmul(x, blocks, type, shape, ids):
    """MoE over GGML experts of logical ``shape [E, N, K]`` (see the module doc)."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"shape: expected experts stacked as [E, N, K], got {shape}")
    experts = ggml_dequantize(blocks, type, shape).astype(np.float64)
    return _gather_matmul(x, experts, ids)
