"""qmetal.reference GGML blocks against llama.cpp's gguf.quants: the type
table, dequantization bit-exact for every type, legacy quantizers bit-exact,
K-type quantizers within their provable error bound, and the matmuls."""

import numpy as np
import pytest

from conftest import relative_error
from qmetal.reference import (GGML_QUANTIZABLE_TYPES, GGML_QUANTIZED_TYPES, GGML_TYPES, ggml_dequantize,
                              ggml_gather_matmul, ggml_matmul, ggml_nbytes, ggml_quantize, ggml_type)

gguf = pytest.importorskip("gguf")
gq = pytest.importorskip("gguf.quants")

LEGACY = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
K_QUANTIZED = ["Q4_K", "Q5_K", "Q6_K"]


def gguf_type(name):
    return gguf.GGMLQuantizationType[name]


def random_blocks(rng, name, rows, blocks_per_row):
    """Random codes with real-looking scales: fp16 fields drawn from
    magnitudes weights have (1e-4 .. 1e-1), never zero, sometimes negative."""
    t = GGML_TYPES[name]
    count = rows * blocks_per_row
    if not t.is_quantized:
        values = rng.standard_normal(count).astype(np.float32)
        return ggml_quantize(values.reshape(rows, blocks_per_row), name)
    structs = rng.integers(0, 256, count * t.block_bytes, dtype=np.uint8).view(t.block)
    for field in t.block.names:
        if t.block[field] == np.dtype("<f2"):
            magnitude = 10.0 ** rng.uniform(-4, -1, count)
            sign = rng.choice([-1.0, 1.0], count) if field in ("d", "m") else 1.0
            structs[field] = (sign * magnitude).astype(np.float16)
    return structs.view(np.uint8).reshape(rows, -1)


def test_type_table_matches_gguf():
    for name, t in GGML_TYPES.items():
        assert t.gguf_id == gguf_type(name).value, name
        assert (t.block_values, t.block_bytes) == gguf.GGML_QUANT_SIZES[gguf_type(name)], name
        assert t.block.itemsize == t.block_bytes
    assert ggml_type("q4_k") is GGML_TYPES["Q4_K"]
    assert set(GGML_QUANTIZED_TYPES) == {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


@pytest.mark.parametrize("name", list(GGML_TYPES))
def test_dequantize_matches_gguf_bit_for_bit(rng, name):
    t = GGML_TYPES[name]
    rows, blocks_per_row = 7, 3 if t.block_values > 1 else 45
    raw = random_blocks(rng, name, rows, blocks_per_row)
    shape = (rows, blocks_per_row * t.block_values)
    ours = ggml_dequantize(raw, name, shape)
    theirs = gq.dequantize(raw, gguf_type(name))
    assert ours.dtype == np.float32 and ours.shape == shape == theirs.shape
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def legacy_inputs(rng, t):
    w = rng.standard_normal((9, 3 * t.block_values)).astype(np.float32)
    w[0, :32] = 0.25        # a constant block
    w[1] = 0.0              # an all-zero row
    w[2] *= 1e4             # large magnitudes (fp16 scales stay finite)
    w[3] *= 1e-5            # small ones
    w[4, 32:64] = -np.abs(w[4, 32:64])  # a one-signed block
    return w


@pytest.mark.parametrize("name", LEGACY + ["F32", "F16", "BF16"])
def test_legacy_quantize_matches_gguf_bit_for_bit(rng, name):
    t = GGML_TYPES[name]
    w = legacy_inputs(rng, GGML_TYPES["Q4_0"]) if t.is_quantized else rng.standard_normal((5, 33)).astype(np.float32)
    ours = ggml_quantize(w, name)
    theirs = np.asarray(gq.quantize(w, gguf_type(name)))
    assert ours.dtype == np.uint8
    assert ours.shape == (w.shape[0], ggml_nbytes(name, w.shape) // w.shape[0])
    assert np.array_equal(ours, theirs.view(np.uint8).reshape(ours.shape))


def k_error_bound(w, name):
    """Per value, half the largest step our K quantizer can choose.

    A sub-block's step is the least multiple of the fp16 super-scale d that
    spans the sub-block without clipping; d and dmin are rounded up to fp16
    (by less than 2**-10 relative, or 2**-24 absolute among subnormals), so
    the step exceeds the exact span by at most one d, and the offset by at
    most one dmin.
    """
    def fp16_up(v):
        return np.maximum(v * (1 + 2.0 ** -10), v + 2.0 ** -24)
    if name == "Q6_K":
        sub = w.reshape(-1, 16, 16).astype(np.float64)
        need = np.abs(sub).max(axis=2) / 31
        d = fp16_up(need.max(axis=1, keepdims=True) / 127)
        step = need + d
        size = 16
    else:
        levels = 16 if name == "Q4_K" else 32
        sub = w.reshape(-1, 8, 32).astype(np.float64)
        below_zero = -np.minimum(sub.min(axis=2), 0)
        dmin = fp16_up(below_zero.max(axis=1, keepdims=True) / 63)
        need = (sub.max(axis=2) + below_zero + dmin) / (levels - 1)
        d = fp16_up(need.max(axis=1, keepdims=True) / 63)
        step = need + d
        size = 32
    return np.repeat(step / 2, size, axis=1).reshape(w.shape)


# RMS error / RMS value for unit Gaussian rows, measured with this quantizer
# (Q4_K 0.079, Q5_K 0.039, Q6_K 0.019; uniform steps of range/levels predict
# the same); the limits leave 15% for the spread between draws.
MEASURED_RELATIVE_RMS = {"Q4_K": 0.079, "Q5_K": 0.039, "Q6_K": 0.019}


@pytest.mark.parametrize("name", K_QUANTIZED)
def test_k_quantize_reads_back_in_gguf_within_the_bound(rng, name):
    w = rng.standard_normal((6, 3 * 256)).astype(np.float32)
    w[1, :256] = 0.0          # an all-zero super-block
    w[2, :256] = 0.75         # a constant super-block
    w[3] *= 1e3               # large magnitudes
    w[4] *= 1e-4              # small ones
    w[5, 256:] = np.abs(w[5, 256:])  # all-positive super-blocks
    blocks = ggml_quantize(w, name)
    back = gq.dequantize(blocks, gguf_type(name)).astype(np.float64)
    err = np.abs(back - w)
    assert np.all(err <= k_error_bound(w, name) * (1 + 1e-5) + 1e-12)
    assert np.all(back[1, :256] == 0.0)

    gaussian = rng.standard_normal((16, 1024)).astype(np.float32)
    back = gq.dequantize(ggml_quantize(gaussian, name), gguf_type(name))
    rms = np.sqrt(np.mean((back - gaussian) ** 2)) / np.sqrt(np.mean(gaussian ** 2))
    print(f"{name}: relative RMS error {rms:.4f}")
    assert rms < MEASURED_RELATIVE_RMS[name] * 1.15


@pytest.mark.parametrize("name", LEGACY + K_QUANTIZED)
def test_quantize_then_dequantize_round_trip_in_our_reader(rng, name):
    w = rng.standard_normal((3, 512)).astype(np.float32)
    blocks = ggml_quantize(w, name)
    assert np.array_equal(ggml_dequantize(blocks, name, w.shape), gq.dequantize(blocks, gguf_type(name)))


@pytest.mark.parametrize("name", ["Q4_0", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q6_K", "F16"])
def test_ggml_matmul_is_float64_product_of_gguf_weights(rng, name):
    t = GGML_TYPES[name]
    n, k = 13, 2 * max(t.block_values, 32)
    blocks = random_blocks(rng, name, n, k // t.block_values)
    x = rng.standard_normal((5, k)).astype(np.float32)
    expected = x.astype(np.float64) @ gq.dequantize(blocks, gguf_type(name)).astype(np.float64).T
    ours = ggml_matmul(x, blocks, name, (n, k))
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    stacked = np.stack([blocks, blocks[::-1]])
    batched = ggml_matmul(x, stacked, name, (2, n, k))
    np.testing.assert_allclose(batched[1], expected[:, ::-1], rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["Q4_0", "Q6_K"])
def test_ggml_gather_matmul_selects_experts(rng, name):
    t = GGML_TYPES[name]
    experts, n, k, tokens, slots = 5, 7, 2 * t.block_values, 8, 2
    blocks = np.stack([random_blocks(rng, name, n, k // t.block_values) for _ in range(experts)])
    ids = rng.integers(0, experts, (tokens, slots))
    x = rng.standard_normal((tokens, k)).astype(np.float32)
    ours = ggml_gather_matmul(x, blocks, name, (experts, n, k), ids)
    weights = gq.dequantize(blocks.reshape(experts * n, -1), gguf_type(name)).reshape(experts, n, k)
    expected = np.einsum("tk,tsnk->tsn", x.astype(np.float64), weights[ids].astype(np.float64))
    assert relative_error(ours, expected) < 1e-12


# --- bad input ---------------------------------------------------------------

def test_ggml_functions_reject_bad_input(rng):
    blocks = ggml_quantize(rng.standard_normal((2, 64)).astype(np.float32), "Q4_0")
    with pytest.raises(ValueError, match="type: expected one of F32, F16, BF16, Q4_0"):
        ggml_dequantize(blocks, "Q4_2", (2, 64))
    with pytest.raises(ValueError, match=r"shape\[-1\] \(K\) with the Q4_0 block size: 48 is not a multiple of 32"):
        ggml_dequantize(blocks, "Q4_0", (2, 48))
    with pytest.raises(ValueError, match=r"blocks: Q4_0 \(3, 64\) needs 108 bytes, got 72"):
        ggml_dequantize(blocks, "Q4_0", (3, 64))
    with pytest.raises(TypeError, match="blocks: expected dtype uint8, got int8"):
        ggml_dequantize(blocks.view(np.int8), "Q4_0", (2, 64))
    with pytest.raises(ValueError, match="type: Q2_K can be dequantized but not quantized"):
        ggml_quantize(np.ones((1, 256), np.float32), "Q2_K")
    with pytest.raises(ValueError, match=r"shape\[-1\] \(K\) with the Q4_K block size: 64 is not a multiple of 256"):
        ggml_quantize(np.ones((1, 64), np.float32), "Q4_K")
    with pytest.raises(ValueError, match="w: expected finite values"):
        ggml_quantize(np.full((1, 32), np.nan, np.float32), "Q8_0")
    with pytest.raises(TypeError, match="w: expected dtype"):
        ggml_quantize(np.ones((1, 32), np.int32), "Q8_0")
    with pytest.raises(ValueError, match="x: expected last dimension 64"):
        ggml_matmul(np.ones((1, 32), np.float32), blocks, "Q4_0", (2, 64))
    with pytest.raises(ValueError, match=r"shape: expected experts stacked as \[E, N, K\]"):
        ggml_gather_matmul(np.ones((1, 64), np.float32), blocks, "Q4_0", (2, 64), np.zeros((1, 1), np.int32))
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 1\), got \[0, 3\]"):
        ggml_gather_matmul(np.ones((1, 64), np.float32), blocks, "Q4_0", (1, 2, 64), np.array([[0, 3]]))
    assert "Q2_K" not in GGML_QUANTIZABLE_TYPES and "Q6_K" in GGML_QUANTIZABLE_TYPES
