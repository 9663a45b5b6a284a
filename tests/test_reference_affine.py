"""qmetal.reference MLX affine format against mlx (CPU): quantize, dequantize
and packing bit-exact; matmuls within the rounding error of mlx's own
low-precision accumulation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BFLOAT16, FLOAT_DTYPES, from_mx, relative_error, to_mx, unit_roundoff, random_weights
from qmetal.reference import (AFFINE_BITS, AFFINE_GROUP_SIZES, affine_dequantize, affine_gather_matmul,
                              affine_matmul, affine_quantize, pack_bits, unpack_bits)

mx = pytest.importorskip("mlx.core")


def matmul_tolerance(dtype, k):
    """mlx's CPU kernels accumulate in the activation dtype: K rounding errors
    of random sign grow as sqrt(K) unit roundoffs; 2x covers the output's own
    rounding and the spread between random draws."""
    return 2 * unit_roundoff(dtype) * np.sqrt(k)


def weights_with_edge_cases(rng, n, k, group_size, dtype):
    w = random_weights(rng, (n, k), np.float32)
    big = 3e4 if dtype == np.float16 else 1e30
    w[0, :group_size] = 0.37          # a constant group
    w[1] = 0.0                        # an all-zero row
    w[2] *= big / np.abs(w[2]).max()  # magnitudes near the top of the dtype
    w[3] *= 1e-6                      # and tiny ones
    w[4, group_size:2 * group_size] = -np.abs(w[4, group_size:2 * group_size])  # min is the edge
    return w.astype(dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("group_size", AFFINE_GROUP_SIZES)
@pytest.mark.parametrize("bits", AFFINE_BITS)
def test_quantize_and_dequantize_match_mlx_bit_for_bit(rng, bits, group_size, dtype):
    w = weights_with_edge_cases(rng, 13, 3 * group_size, group_size, dtype)
    packed, scales, biases = affine_quantize(w, bits, group_size)
    mx_packed, mx_scales, mx_biases = mx.quantize(to_mx(w), group_size=group_size, bits=bits)
    assert same_bits(packed, np.array(mx_packed))
    assert same_bits(scales, from_mx(mx_scales))
    assert same_bits(biases, from_mx(mx_biases))

    ours = affine_dequantize(packed, scales, biases, bits, group_size)
    theirs = from_mx(mx.dequantize(mx_packed, mx_scales, mx_biases, group_size=group_size, bits=bits))
    assert same_bits(ours, theirs)


def test_quantize_keeps_leading_dimensions(rng):
    w = rng.standard_normal((2, 3, 5, 64)).astype(np.float32)
    packed, scales, biases = affine_quantize(w, 4, 32)
    assert packed.shape == (2, 3, 5, 8) and scales.shape == biases.shape == (2, 3, 5, 2)
    mx_packed, _, _ = mx.quantize(mx.array(w), group_size=32, bits=4)
    assert np.array_equal(packed, np.array(mx_packed))


def test_zero_lands_on_a_code(rng):
    # The bias is a whole number of scales, so 0.0 has a code of its own and
    # comes back as 0 up to the float32 rounding of scale * q + bias.
    w = rng.standard_normal((9, 128)).astype(np.float32)
    w[:, ::7] = 0.0
    for bits in AFFINE_BITS:
        packed, scales, biases = affine_quantize(w, bits, 64)
        back = affine_dequantize(packed, scales, biases, bits, 64)
        bound = 4 * unit_roundoff(np.float32) * np.abs(np.repeat(biases, 64, axis=1))[:, ::7]
        assert np.all(np.abs(back[:, ::7]) <= bound), bits


@pytest.mark.parametrize("bits", AFFINE_BITS)
def test_pack_bits_is_one_lsb_first_stream_per_row(rng, bits):
    codes = rng.integers(0, 1 << bits, size=(3, 96))
    packed = pack_bits(codes, bits)
    assert packed.dtype == np.uint32 and packed.shape == (3, 96 * bits // 32)
    for row, words in zip(codes, packed):
        stream = sum(int(c) << (i * bits) for i, c in enumerate(row))
        expected = [(stream >> (32 * j)) & 0xFFFFFFFF for j in range(len(words))]
        assert words.tolist() == expected
    assert np.array_equal(unpack_bits(packed, bits), codes)


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from(AFFINE_BITS), words=st.integers(0, 12), rows=st.integers(1, 3), data=st.data())
def test_unpack_inverts_pack(bits, words, rows, data):
    count = words * 32 // math.gcd(bits, 32)  # codes that fill whole uint32 words
    codes = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=rows * count,
                                        max_size=rows * count)), dtype=np.int64).reshape(rows, count)
    assert np.array_equal(unpack_bits(pack_bits(codes, bits), bits), codes)


CASES = [(bits, 64, dtype) for bits in AFFINE_BITS for dtype in FLOAT_DTYPES] + \
        [(4, 32, np.dtype(np.float32)), (3, 128, np.dtype(np.float16)), (6, 32, BFLOAT16), (8, 128, BFLOAT16)]


@pytest.mark.parametrize("bits, group_size, dtype", CASES, ids=lambda v: str(v))
def test_affine_matmul_matches_mlx_quantized_matmul(rng, bits, group_size, dtype):
    m, n, k = 5, 13, 3 * group_size
    w = random_weights(rng, (n, k), dtype)
    x = rng.standard_normal((m, k)).astype(dtype)
    packed, scales, biases = affine_quantize(w, bits, group_size)
    ours = affine_matmul(x, packed, scales, biases, bits, group_size)
    assert ours.dtype == np.float64 and ours.shape == (m, n)
    theirs = mx.quantized_matmul(to_mx(x), mx.array(packed), to_mx(scales), to_mx(biases),
                                 transpose=True, group_size=group_size, bits=bits)
    assert relative_error(from_mx(theirs), ours) < matmul_tolerance(dtype, k)


def test_affine_matmul_without_transpose_matches_mlx(rng):
    k, n = 96, 64  # w is [K, N], quantized along N
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((3, k)).astype(np.float32)
    packed, scales, biases = affine_quantize(w, 5, 32)
    ours = affine_matmul(x, packed, scales, biases, 5, 32, transpose=False)
    theirs = mx.quantized_matmul(mx.array(x), mx.array(packed), mx.array(scales), mx.array(biases),
                                 transpose=False, group_size=32, bits=5)
    assert ours.shape == (3, n)
    assert relative_error(np.array(theirs), ours) < matmul_tolerance(np.float32, k)


def test_batched_and_broadcast_weights_match_mlx(rng):
    w = rng.standard_normal((3, 7, 64)).astype(np.float32)
    packed, scales, biases = affine_quantize(w, 4, 64)
    args = (mx.array(packed), mx.array(scales), mx.array(biases))
    # (mlx's CPU path reads only w[0] for a 2-d x and a 3-d w, so that case is
    # checked against NumPy broadcasting alone, below.)
    for x in (rng.standard_normal((3, 2, 64)), rng.standard_normal((4, 1, 2, 64))):
        x = x.astype(np.float32)
        ours = affine_matmul(x, packed, scales, biases, 4, 64)
        theirs = np.array(mx.quantized_matmul(mx.array(x), *args, transpose=True, group_size=64, bits=4))
        assert ours.shape == theirs.shape
        assert relative_error(theirs, ours) < matmul_tolerance(np.float32, 64)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    ours = affine_matmul(x, packed, scales, biases, 4, 64)
    for i in range(3):
        single = affine_matmul(x, packed[i], scales[i], biases[i], 4, 64)
        assert np.array_equal(ours[i], single)


@pytest.mark.parametrize("per_slot_x", [False, True])
def test_gather_matmul_matches_mlx_gather_qmm(rng, per_slot_x):
    experts, tokens, slots, n, k = 6, 9, 3, 13, 128
    w = random_weights(rng, (experts, n, k))
    packed, scales, biases = affine_quantize(w, 4, 64)
    ids = np.stack([rng.permutation(experts)[:slots] for _ in range(tokens)]).astype(np.uint32)
    x_shape = (tokens, slots, k) if per_slot_x else (tokens, k)
    x = rng.standard_normal(x_shape).astype(np.float32)
    ours = affine_gather_matmul(x, packed, scales, biases, ids, 4, 64)
    assert ours.shape == (tokens, slots, n)
    mx_x = mx.array(x.reshape(tokens, slots, 1, k) if per_slot_x else x.reshape(tokens, 1, 1, k))
    theirs = mx.gather_qmm(mx_x, mx.array(packed), mx.array(scales), mx.array(biases),
                           rhs_indices=mx.array(ids), transpose=True, group_size=64, bits=4)
    assert relative_error(np.array(theirs).reshape(tokens, slots, n), ours) < matmul_tolerance(np.float32, k)


# --- bad input ---------------------------------------------------------------

def quantized(rng, n=4, k=64, bits=4, group_size=32):
    return affine_quantize(rng.standard_normal((n, k)).astype(np.float32), bits, group_size)


@pytest.mark.parametrize("call, error, message", [
    (lambda w: affine_quantize(w, 7, 32), ValueError, "bits: expected one of 2, 3, 4, 5, 6, 8, got 7"),
    (lambda w: affine_quantize(w, True, 32), ValueError, "bits: expected one of"),
    (lambda w: affine_quantize(w, 4, 16), ValueError, "group_size: expected one of 32, 64, 128, got 16"),
    (lambda w: affine_quantize(w.astype(np.int32), 4, 32), TypeError, "w: expected dtype float32, float16, bfloat16, got int32"),
    (lambda w: affine_quantize(w[0], 4, 32), ValueError, r"w: expected at least 2 dimensions, got shape \(96,\)"),
    (lambda w: affine_quantize(w, 4, 64), ValueError, r"w.shape\[-1\] \(K\) with group_size: 96 is not a multiple of 64"),
    (lambda w: affine_quantize("weights", 4, 32), TypeError, "w: expected dtype"),
])
def test_quantize_rejects_bad_input(rng, call, error, message):
    w = rng.standard_normal((4, 96)).astype(np.float32)
    with pytest.raises(error, match=message):
        call(w)


def test_dequantize_rejects_bad_input(rng):
    packed, scales, biases = quantized(rng)
    with pytest.raises(TypeError, match="packed: expected dtype uint32, got int32"):
        affine_dequantize(packed.astype(np.int32), scales, biases, 4, 32)
    with pytest.raises(ValueError, match=r"scales: expected shape \(4, 2\), got \(4, 1\)"):
        affine_dequantize(packed, scales[:, :1], biases, 4, 32)
    with pytest.raises(TypeError, match="biases: expected dtype float32 \\(the dtype of scales\\), got float16"):
        affine_dequantize(packed, scales, biases.astype(np.float16), 4, 32)
    with pytest.raises(ValueError, match=r"K \(64, from packed.shape\[-1\]\) with group_size: 64 is not a multiple of 128"):
        affine_dequantize(packed, scales, biases, 4, 128)
    with pytest.raises(ValueError, match="bits: expected one of"):
        affine_dequantize(packed, scales, biases, 1, 32)


def test_pack_bits_rejects_bad_codes():
    with pytest.raises(ValueError, match=r"codes: expected values in \[0, 16\) for bits=4"):
        pack_bits(np.full((1, 8), 16), 4)
    with pytest.raises(ValueError, match="do not fill whole uint32 words"):
        pack_bits(np.zeros((1, 7), np.int64), 4)
    with pytest.raises(TypeError, match="codes: expected an integer array"):
        pack_bits(np.zeros((1, 8)), 4)


def test_matmuls_reject_bad_input(rng):
    packed, scales, biases = quantized(rng)
    with pytest.raises(ValueError, match="x: expected last dimension 64"):
        affine_matmul(np.ones((2, 63), np.float32), packed, scales, biases, 4, 32)
    with pytest.raises(TypeError, match="x: expected dtype"):
        affine_matmul(np.ones((2, 64), np.int64), packed, scales, biases, 4, 32)
    stacked = [np.stack([a, a]) for a in (packed, scales, biases)]
    x = np.ones((3, 64), np.float32)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 2\), got \[0, 2\]"):
        affine_gather_matmul(x, *stacked, np.array([[0], [1], [2]]), 4, 32)
    with pytest.raises(TypeError, match="ids: expected an integer array"):
        affine_gather_matmul(x, *stacked, np.zeros((3, 1)), 4, 32)
    with pytest.raises(ValueError, match="packed: expected experts stacked"):
        affine_gather_matmul(x, packed, scales, biases, np.zeros((3, 1), np.int32), 4, 32)
    with pytest.raises(ValueError, match=r"x: expected shape \(3, 2, 64\) or \(3, 64\)"):
        affine_gather_matmul(np.ones((4, 64), np.float32), *stacked, np.zeros((3, 2), np.int32), 4, 32)
