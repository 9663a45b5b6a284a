"""MLX affine quantization in NumPy, bit-exact with ``mlx.core.quantize``.

Each row of ``w`` is cut into groups of ``group_size`` values that share a
scale and a bias: ``w ~= scale * q + bias`` with ``q`` in ``[0, 2**bits)``.
The codes of a row form one little-endian, LSB-first bit stream (value i at
bits ``[i*bits, (i+1)*bits)``) stored as uint32 words.
"""

from __future__ import annotations

import numpy as np

from . import _checks

AFFINE_BITS = (2, 3, 4, 5, 6, 8)
AFFINE_GROUP_SIZES = (32, 64, 128)
# MLX's floor on the scale, so a constant group does not divide by zero.
_SCALE_EPSILON = np.float32(1e-7)


def pack_bits(codes, bits: int) -> np.ndarray:
    """Pack integer codes ``[..., K]`` (each < 2**bits) into uint32 ``[..., K*bits/32]``."""
    _checks.choice(bits, AFFINE_BITS, "bits")
    codes = _checks.integer_array(codes, "codes")
    _checks.min_ndim(codes, 1, "codes")
    count = codes.shape[-1]
    if (count * bits) % 32 != 0:
        raise ValueError(f"codes: {count} values of {bits} bits do not fill whole uint32 words")
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << bits):
        raise ValueError(f"codes: expected values in [0, {1 << bits}) for bits={bits}")
    bit_planes = (codes.astype(np.uint32)[..., None] >> np.arange(bits, dtype=np.uint32)) & 1
    stream = bit_planes.astype(np.uint8).reshape(*codes.shape[:-1], count * bits)
    packed = np.packbits(stream, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u4").astype(np.uint32, copy=False)


def unpack_bits(packed, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint32 ``[..., W]`` to uint8 codes ``[..., W*32/bits]``."""
    _checks.choice(bits, AFFINE_BITS, "bits")
    packed = _checks.array(packed, "packed")
    _checks.dtype_is(packed, ("uint32",), "packed")
    _checks.min_ndim(packed, 1, "packed")
    words = packed.shape[-1]
    raw = np.ascontiguousarray(packed, dtype="<u4").view(np.uint8)
    stream = np.unpackbits(raw, axis=-1, bitorder="little")
    count = words * 32 // bits
    planes = stream.reshape(*packed.shape[:-1], count, bits).astype(np.uint16)
    return (planes << np.arange(bits, dtype=np.uint16)).sum(axis=-1).astype(np.uint8)


def _check_layout(bits, group_size):
    _checks.choice(bits, AFFINE_BITS, "bits")
    _checks.choice(group_size, AFFINE_GROUP_SIZES, "group_size")


def affine_quantize(w, bits: int = 4, group_size: int = 64):
    """Quantize ``w [..., N, K]`` (float32/float16/bfloat16) as MLX does.

    Returns ``(packed uint32 [..., N, K*bits/32], scales [..., N, K/group_size],
    biases [..., N, K/group_size])``, scales and biases in the dtype of ``w``.
    """
    _check_layout(bits, group_size)
    w = _checks.float_array(w, "w")
    _checks.min_ndim(w, 2, "w")
    _checks.divisible(w.shape[-1], group_size, "w.shape[-1] (K) with group_size")

    # MLX computes in float32 whatever the input dtype (exact for f16/bf16).
    groups = w.astype(np.float32).reshape(*w.shape[:-1], w.shape[-1] // group_size, group_size)
    w_max = groups.max(axis=-1)
    w_min = groups.min(axis=-1)
    n_bins = np.float32((1 << bits) - 1)
    scale = np.maximum((w_max - w_min) / n_bins, _SCALE_EPSILON)
    # Pin the larger-magnitude edge to an exact code so that, when possible,
    # the bias is a multiple of the scale and 0.0 is represented exactly.
    min_is_edge = np.abs(w_min) > np.abs(w_max)
    scale = np.where(min_is_edge, scale, -scale)
    edge = np.where(min_is_edge, w_min, w_max)
    q0 = np.rint(edge / scale)
    snapped = q0 != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(snapped, edge / q0, scale)
    bias = np.where(snapped, edge, np.float32(0))

    q = np.rint((groups - bias[..., None]) / scale[..., None])
    q = np.clip(q, 0, n_bins).astype(np.uint32).reshape(w.shape)
    return pack_bits(q, bits), scale.astype(w.dtype), bias.astype(w.dtype)


def affine_dequantize(packed, scales, biases, bits: int = 4, group_size: int = 64) -> np.ndarray:
    """``scale * q + bias`` as ``[..., N, K]`` in the dtype of ``scales``.

    Arithmetic is in that dtype, rounding after the product and after the
    sum, as ``mlx.core.dequantize`` does.
    """
    _check_layout(bits, group_size)
    packed = _checks.array(packed, "packed")
    _checks.dtype_is(packed, ("uint32",), "packed")
    _checks.min_ndim(packed, 2, "packed")
    scales = _checks.float_array(scales, "scales")
    biases = _checks.float_array(biases, "biases")
    if biases.dtype != scales.dtype:
        raise TypeError(f"biases: expected dtype {scales.dtype} (the dtype of scales), got {biases.dtype}")
    k = packed.shape[-1] * 32 // bits
    _checks.divisible(k, group_size, f"K ({k}, from packed.shape[-1]) with group_size")
    groups_shape = (*packed.shape[:-1], k // group_size)
    _checks.shape_is(scales, groups_shape, "scales")
    _checks.shape_is(biases, groups_shape, "biases")

    dtype = scales.dtype
    q = unpack_bits(packed, bits).astype(np.float32).reshape(*groups_shape, group_size)
    # MLX's half and bfloat16 arithmetic computes each op in float32 and
    # rounds the result to the type; so do we.
    product = (scales.astype(np.float32)[..., None] * q).astype(dtype)
    w = (product.astype(np.float32) + biases.astype(np.float32)[..., None]).astype(dtype)
    return w.reshape(*packed.shape[:-1], k)
