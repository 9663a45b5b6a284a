"""GGML block formats (as stored in GGUF files) in NumPy.

Dequantization is bit-exact with llama.cpp's ``gguf.quants.dequantize``:
float32 arithmetic in the same order. Quantization of the legacy types
(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) is bit-exact with ``gguf.quants.quantize``;
the K-types use our own quantizer whose error is bounded by half a step of
each sub-block's (quantized) scale.

Every type is described by data, not code paths: a block struct (a NumPy
structured dtype, the same layout as the C struct), where each value's code
bits live in it (bit-fields), and how sub-block scales are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _checks

QK_K = 256  # values per super-block of the K-types


@dataclass(frozen=True)
class BitField:
    """Bits of each value's code held in one byte array of the block.

    Value ``e`` takes ``bits`` bits from ``block[name][byte[e]] >> shift[e]``,
    placed at bit ``offset`` of its code.
    """

    name: str
    bits: int
    offset: int
    byte: np.ndarray
    shift: np.ndarray


@dataclass(frozen=True)
class GGMLType:
    name: str
    gguf_id: int  # GGMLQuantizationType in GGUF files
    block_values: int
    block_bytes: int
    block: np.dtype  # one block, laid out as the C struct
    fields: tuple[BitField, ...] = ()
    zero_point: int = 0  # stored code minus zero_point is the signed value
    sub_block: int = 0  # values sharing one scale (0: the whole block)
    # Per sub-block (multiplier, addend) float32 arrays [n_blocks, n_sub]:
    # value = multiplier * code_value + addend, in that order.
    scales: Callable | None = field(default=None, compare=False)
    quantize_blocks: Callable | None = field(default=None, compare=False)
    signed: bool = False  # codes are two's complement (Q8_0's int8)

    @property
    def is_quantized(self) -> bool:
        return bool(self.fields)


def _f16(name):
    return (name, "<f2")


def _bytes(name, count, kind="u1"):
    return (name, kind, count)


def _field(name, bits, offset, byte, shift):
    return BitField(name, bits, offset, np.asarray(byte, dtype=np.intp), np.asarray(shift, dtype=np.uint8))


# --- bit-field layouts -------------------------------------------------------

def _nibbles_32(e):
    """Q4_0/Q4_1 order: value j in the low nibble of byte j, j+16 in the high."""
    return e % 16, 4 * (e // 16)


def _high_bit_32(e):
    """Q5_0/Q5_1: bit 4 of value j is bit j of the little-endian qh[4]."""
    return e // 8, e % 8


def _k_two_bit(e):
    """Q2_K/Q3_K low bits: each half of 128 values reads 32 bytes, 2 bits at a time."""
    half, quarter, lane = e // 128, (e % 128) // 32, e % 32
    return 32 * half + lane, 2 * quarter


def _k_nibble(e):
    """Q4_K/Q5_K low bits: each 64 values read 32 bytes, low then high nibble."""
    chunk, high, lane = e // 64, (e % 64) // 32, e % 32
    return 32 * chunk + lane, 4 * high


def _k_mask_bit(e):
    """Q3_K hmask / Q5_K qh: bit (e // 32) of byte (e % 32)."""
    return e % 32, e // 32


def _q6_low(e):
    half, quarter, lane = e // 128, (e % 128) // 32, e % 32
    return 64 * half + lane + 32 * (quarter % 2), 4 * (quarter // 2)


def _q6_high(e):
    half, quarter, lane = e // 128, (e % 128) // 32, e % 32
    return 32 * half + lane, 2 * quarter


# --- sub-block scales (float32, in gguf's order of operations) ---------------

def _scale_d(blocks):
    return blocks["d"].astype(np.float32)[:, None], None


def _scale_d_m(blocks):
    return blocks["d"].astype(np.float32)[:, None], blocks["m"].astype(np.float32)[:, None]


def _scale_q2_k(blocks):
    d = blocks["d"].astype(np.float32)[:, None]
    dmin = blocks["dmin"].astype(np.float32)[:, None]
    sc = blocks["scales"]
    return d * (sc & 0xF).astype(np.float32), -(dmin * (sc >> 4).astype(np.float32))


def _q3_k_scale_codes(packed):
    """Sixteen 6-bit scales: low nibbles in bytes 0..7, high 2-bit pairs in 8..11."""
    i = np.arange(16)
    low = (packed[:, i % 8] >> (4 * (i // 8))) & 0xF
    high = (packed[:, 8 + i % 4] >> (2 * (i // 4))) & 0x3
    return (low | (high << 4)).astype(np.int8) - np.int8(32)


def _pack_q3_k_scales(codes):
    stored = (codes + 32).astype(np.uint8)
    out = np.zeros((codes.shape[0], 12), dtype=np.uint8)
    for i in range(16):
        out[:, i % 8] |= (stored[:, i] & 0xF) << (4 * (i // 8))
        out[:, 8 + i % 4] |= (stored[:, i] >> 4) << (2 * (i // 4))
    return out


def _scale_q3_k(blocks):
    d = blocks["d"].astype(np.float32)[:, None]
    return d * _q3_k_scale_codes(blocks["scales"]).astype(np.float32), None


def _k4_scale_min_codes(packed):
    """Eight 6-bit (scale, min) pairs in 12 bytes, as llama.cpp's get_scale_min_k4."""
    s = packed.astype(np.uint8)
    low_sc, low_m = s[:, 0:4] & 63, s[:, 4:8] & 63
    high_sc = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
    high_m = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return np.concatenate([low_sc, high_sc], axis=1), np.concatenate([low_m, high_m], axis=1)


def _pack_k4_scale_min(sc, m):
    sc, m = sc.astype(np.uint8), m.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return out


def _scale_k4(blocks):
    d = blocks["d"].astype(np.float32)[:, None]
    dmin = blocks["dmin"].astype(np.float32)[:, None]
    sc, m = _k4_scale_min_codes(blocks["scales"])
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))


def _scale_q6_k(blocks):
    d = blocks["d"].astype(np.float32)[:, None]
    return d * blocks["scales"].astype(np.float32), None


# --- codes <-> bit-fields ----------------------------------------------------

def _read_codes(t: GGMLType, blocks) -> np.ndarray:
    codes = np.zeros((blocks.shape[0], t.block_values), dtype=np.int32)
    for f in t.fields:
        raw = blocks[f.name].view(np.uint8)[:, f.byte].astype(np.int32)
        codes |= ((raw >> f.shift) & ((1 << f.bits) - 1)) << f.offset
    if t.signed:
        width = sum(f.bits for f in t.fields)
        codes -= ((codes >> (width - 1)) & 1) << width
    return codes - t.zero_point


def _write_codes(t: GGMLType, blocks, values) -> None:
    # Negative values wrap to two's complement; the field masks keep the bits.
    codes = (values + t.zero_point).astype(np.int64).astype(np.uint32)
    for f in t.fields:
        out = np.zeros((blocks.shape[0], blocks[f.name].shape[1]), dtype=np.uint8)
        bits = ((codes >> f.offset) & ((1 << f.bits) - 1)).astype(np.uint8)
        # Within one shift the bytes are distinct, so plain fancy-index OR works.
        for shift in np.unique(f.shift):
            sel = f.shift == shift
            out[:, f.byte[sel]] |= bits[:, sel] << shift
        blocks[f.name] = out.view(blocks[f.name].dtype)


# --- quantizers --------------------------------------------------------------
# Legacy types: the same float32 operations as ggml-quants.c / gguf.quants.

def _round_half_away(x):
    """C roundf: halves away from zero (exact, unlike floor(x + 0.5))."""
    a = np.abs(x)
    whole = np.floor(a)
    return np.sign(x) * (whole + (a - whole >= np.float32(0.5)))


def _reciprocal(d):
    with np.errstate(divide="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _quantize_symmetric(levels):
    """Q4_0 (levels 16) / Q5_0 (32): the largest-magnitude value maps to code 0."""
    half = levels // 2

    def quantize(x, blocks):
        largest = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)
        d = largest / np.float32(-half)
        q = np.trunc(x * _reciprocal(d) + np.float32(half + 0.5))
        blocks["d"] = d[:, 0]
        return np.clip(q, 0, levels - 1).astype(np.int32) - half

    return quantize


def _quantize_min_max(levels):
    """Q4_1 / Q5_1: the block's range mapped onto [0, levels - 1]."""

    def quantize(x, blocks):
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        d = (hi - lo) / np.float32(levels - 1)
        q = np.trunc((x - lo) * _reciprocal(d) + np.float32(0.5))
        blocks["d"], blocks["m"] = d[:, 0], lo[:, 0]
        return np.clip(q, 0, levels - 1).astype(np.int32)

    return quantize


def _quantize_q8_0(x, blocks):
    d = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
    blocks["d"] = d[:, 0]
    return _round_half_away(x * _reciprocal(d)).astype(np.int32)


# K-types: sub-block scales are 6-bit (8-bit for Q6_K) multiples of an fp16
# super-scale. Scales are rounded up, never down, so no value clips and each
# value is within half a step of its sub-block scale.

def _f16_ceil(v):
    """The smallest float16 >= v (v >= 0, float64)."""
    h = v.astype(np.float16)
    return np.where(h.astype(np.float64) < v, np.nextafter(h, np.float16(np.inf)), h)


def _super_scale(needed, max_code):
    """fp16 super-scale d and integer codes c <= max_code with d * c >= needed."""
    d = _f16_ceil(needed.max(axis=1, keepdims=True) / max_code)
    d64 = d.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = np.where(d64 > 0, np.ceil(needed / d64), 0)
    return d[:, 0], np.minimum(codes, max_code).astype(np.int32)


def _divide_or_zero(x, step):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(step > 0, x / step, np.float32(0))


def _quantize_k_affine(levels):
    """Q4_K (levels 16) / Q5_K (32): 8 sub-blocks of 32, x = d*sc*q - dmin*m."""

    def quantize(x, blocks):
        sub = x.reshape(x.shape[0], 8, 32).astype(np.float64)
        below_zero = -np.minimum(sub.min(axis=2), 0)  # min is stored as m >= 0
        dmin, m = _super_scale(below_zero, 63)
        offset = dmin.astype(np.float64)[:, None] * m
        d, sc = _super_scale((sub.max(axis=2) + offset) / (levels - 1), 63)
        blocks["d"], blocks["dmin"] = d, dmin
        blocks["scales"] = _pack_k4_scale_min(sc, m)
        step, addend = _scale_k4(blocks)
        q = np.rint(_divide_or_zero(sub.astype(np.float32) - addend[:, :, None], step[:, :, None]))
        return np.clip(q, 0, levels - 1).astype(np.int32).reshape(x.shape)

    return quantize


def _quantize_q6_k(x, blocks):
    sub = x.reshape(x.shape[0], 16, 16)
    d, sc = _super_scale(np.abs(sub).max(axis=2).astype(np.float64) / 31, 127)
    blocks["d"], blocks["scales"] = d, sc.astype(np.int8)
    step, _ = _scale_q6_k(blocks)
    q = np.rint(_divide_or_zero(sub, step[:, :, None]))
    return np.clip(q, -32, 31).astype(np.int32).reshape(x.shape)


# --- the type table ----------------------------------------------------------

def _make_types() -> dict[str, GGMLType]:
    e32, e256 = np.arange(32), np.arange(QK_K)  # value index within a block
    low4 = _field("qs", 4, 0, *_nibbles_32(e32))
    high5 = _field("qh", 1, 4, *_high_bit_32(e32))
    types = [
        GGMLType("F32", 0, 1, 4, np.dtype([("x", "<f4")])),
        GGMLType("F16", 1, 1, 2, np.dtype([("x", "<f2")])),
        GGMLType("BF16", 30, 1, 2, np.dtype([("x", "<u2")])),
        GGMLType("Q4_0", 2, 32, 18, np.dtype([_f16("d"), _bytes("qs", 16)]),
                 (low4,), 8, 32, _scale_d, _quantize_symmetric(16)),
        GGMLType("Q4_1", 3, 32, 20, np.dtype([_f16("d"), _f16("m"), _bytes("qs", 16)]),
                 (low4,), 0, 32, _scale_d_m, _quantize_min_max(16)),
        GGMLType("Q5_0", 6, 32, 22, np.dtype([_f16("d"), _bytes("qh", 4), _bytes("qs", 16)]),
                 (low4, high5), 16, 32, _scale_d, _quantize_symmetric(32)),
        GGMLType("Q5_1", 7, 32, 24, np.dtype([_f16("d"), _f16("m"), _bytes("qh", 4), _bytes("qs", 16)]),
                 (low4, high5), 0, 32, _scale_d_m, _quantize_min_max(32)),
        GGMLType("Q8_0", 8, 32, 34, np.dtype([_f16("d"), _bytes("qs", 32, "i1")]),
                 (_field("qs", 8, 0, e32, np.zeros(32)),), 0, 32, _scale_d, _quantize_q8_0, signed=True),
        GGMLType("Q2_K", 10, QK_K, 84,
                 np.dtype([_bytes("scales", 16), _bytes("qs", 64), _f16("d"), _f16("dmin")]),
                 (_field("qs", 2, 0, *_k_two_bit(e256)),), 0, 16, _scale_q2_k),
        GGMLType("Q3_K", 11, QK_K, 110,
                 np.dtype([_bytes("hmask", 32), _bytes("qs", 64), _bytes("scales", 12), _f16("d")]),
                 (_field("qs", 2, 0, *_k_two_bit(e256)), _field("hmask", 1, 2, *_k_mask_bit(e256))),
                 4, 16, _scale_q3_k),
        GGMLType("Q4_K", 12, QK_K, 144,
                 np.dtype([_f16("d"), _f16("dmin"), _bytes("scales", 12), _bytes("qs", 128)]),
                 (_field("qs", 4, 0, *_k_nibble(e256)),), 0, 32, _scale_k4, _quantize_k_affine(16)),
        GGMLType("Q5_K", 13, QK_K, 176,
                 np.dtype([_f16("d"), _f16("dmin"), _bytes("scales", 12), _bytes("qh", 32), _bytes("qs", 128)]),
                 (_field("qs", 4, 0, *_k_nibble(e256)), _field("qh", 1, 4, *_k_mask_bit(e256))),
                 0, 32, _scale_k4, _quantize_k_affine(32)),
        GGMLType("Q6_K", 14, QK_K, 210,
                 np.dtype([_bytes("ql", 128), _bytes("qh", 64), _bytes("scales", 16, "i1"), _f16("d")]),
                 (_field("ql", 4, 0, *_q6_low(e256)), _field("qh", 2, 4, *_q6_high(e256))),
                 32, 16, _scale_q6_k, _quantize_q6_k),
    ]
    for t in types:
        assert t.block.itemsize == t.block_bytes, t.name
    return {t.name: t for t in types}


GGML_TYPES: dict[str, GGMLType] = _make_types()
GGML_QUANTIZED_TYPES = tuple(name for name, t in GGML_TYPES.items() if t.is_quantized)
GGML_QUANTIZABLE_TYPES = tuple(
    name for name, t in GGML_TYPES.items() if not t.is_quantized or t.quantize_blocks is not None)


def ggml_type(name) -> GGMLType:
    """The table row of a type named as in GGUF (``"Q4_K"``; case-insensitive)."""
    if isinstance(name, GGMLType):
        return name
    key = str(name).upper() if isinstance(name, str) else None
    if key not in GGML_TYPES:
        raise ValueError(f"type: expected one of {', '.join(GGML_TYPES)}, got {name!r}")
    return GGML_TYPES[key]


def ggml_nbytes(type, shape) -> int:
    """Bytes of a tensor of logical ``shape`` (the last axis holds whole blocks)."""
    t = ggml_type(type)
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("shape: expected at least one dimension")
    if any(s < 0 for s in shape):
        raise ValueError(f"shape: extents must be >= 0, got {shape}")
    _checks.divisible(shape[-1], t.block_values, f"shape[-1] (K) with the {t.name} block size")
    return int(np.prod(shape, dtype=np.int64)) // t.block_values * t.block_bytes


def ggml_dequantize(blocks, type, shape) -> np.ndarray:
    """float32 values of logical ``shape`` from raw GGML ``blocks`` (uint8)."""
    t = ggml_type(type)
    shape = tuple(int(s) for s in shape)
    nbytes = ggml_nbytes(t, shape)
    raw = _checks.array(blocks, "blocks")
    _checks.dtype_is(raw, ("uint8",), "blocks")
    if raw.nbytes != nbytes:
        raise ValueError(f"blocks: {t.name} {shape} needs {nbytes} bytes, got {raw.nbytes}")
    structs = np.ascontiguousarray(raw).reshape(-1).view(t.block)
    if t.name == "BF16":
        return (structs["x"].astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if not t.is_quantized:
        return structs["x"].astype(np.float32).reshape(shape)
    if structs.shape[0] == 0:  # an empty weight (reshape cannot infer -1 from zero elements)
        return np.zeros(shape, np.float32)
    values = _read_codes(t, structs).astype(np.float32)
    multiplier, addend = t.scales(structs)
    n = structs.shape[0]
    values = values.reshape(n, -1, t.sub_block) * multiplier[:, :, None]
    if addend is not None:
        values = values + addend[:, :, None]
    return values.reshape(shape)


def ggml_quantize(w, type) -> np.ndarray:
    """Quantize ``w [..., K]`` into GGML blocks: uint8 ``[..., K / block_values * block_bytes]``."""
    t = ggml_type(type)
    if t.name not in GGML_QUANTIZABLE_TYPES:
        raise ValueError(f"type: {t.name} can be dequantized but not quantized; "
                         f"quantizable: {', '.join(GGML_QUANTIZABLE_TYPES)}")
    w = _checks.float_array(w, "w")
    _checks.min_ndim(w, 1, "w")
    nbytes = ggml_nbytes(t, w.shape)
    x = np.ascontiguousarray(w, dtype=np.float32).reshape(-1, t.block_values)
    if not np.isfinite(x).all():
        raise ValueError("w: expected finite values (found NaN or infinity)")
    out_shape = (*w.shape[:-1], w.shape[-1] // t.block_values * t.block_bytes)
    if t.name == "BF16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16).view(np.uint8).reshape(out_shape)
    if not t.is_quantized:
        return x.astype(t.block["x"]).view(np.uint8).reshape(out_shape)
    structs = np.zeros(x.shape[0], dtype=t.block)
    with np.errstate(over="ignore"):
        values = t.quantize_blocks(x, structs)
    _write_codes(t, structs, values)
    assert structs.nbytes == nbytes
    return structs.view(np.uint8).reshape(out_shape)
