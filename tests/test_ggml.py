"""GGML block kernels through the simulator, against llama.cpp's own NumPy
code (gguf.quants) and float64 matmuls: every type x route x activation
dtype, shapes on and off the tiles, MoE routing, the head-major
O-projection input, and bad input."""

from __future__ import annotations

import gguf
import gguf.quants
import numpy as np
import pytest

import qmetal
import qmetal.sim
from qmetal import reference as ref
from qmetal.reference import ggml as ggml_reference
from conftest import BFLOAT16, ggml_tolerance, relative_error, unit_roundoff

QUANTIZED = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
DENSE = ["F32", "F16", "BF16"]
ACTIVATIONS = [np.dtype(np.float32), np.dtype(np.float16), BFLOAT16]
MV_PARTS = {row[0]: row[6] for row in qmetal._core.ggml_type_table()}  # values per mul_mv lane step


def random_blocks(rng, type_name, rows, k):
    """Blocks with real-looking content: our quantizer where there is one,
    else random codes with fp16 scales of weights' usual size (a few 1e-3)."""
    t = ref.ggml_type(type_name)
    if type_name in DENSE or type_name not in ("Q2_K", "Q3_K"):
        w = rng.standard_normal((rows, k)) * 10.0 ** rng.uniform(-2, 0, (rows, 1))
        return ref.ggml_quantize(w.astype(np.float32), type_name)
    blocks = rng.integers(0, 256, (rows * k // t.block_values, t.block_bytes), dtype=np.uint8)
    structured = blocks.view(t.block).reshape(-1)
    structured["d"] = (rng.uniform(0.5, 2.0, structured.shape) * 1e-2).astype(np.float16)
    if "dmin" in t.block.names:
        structured["dmin"] = (rng.uniform(0.5, 2.0, structured.shape) * 1e-2).astype(np.float16)
    return blocks.reshape(rows, -1)


def oracle_dense(blocks, type_name, shape):
    """gguf.quants.dequantize, llama.cpp's reference, as float64 [..., N, K]."""
    qtype = gguf.GGMLQuantizationType[type_name]
    return gguf.quants.dequantize(blocks.reshape(-1), qtype).astype(np.float64).reshape(shape)


def term_magnitudes(blocks, type_name, shape):
    """Per weight, the magnitudes of the terms the mat-vec kernels sum:
    |scale * stored code| + |scale * zero point| + |min|. Those kernels (as
    llama.cpp's) factor each run's scale out of the sum and apply the zero
    point or min once through the sum of x, so their rounding scales with
    these terms, not with |w| (Q4_0's 0 = d * (8 - 8) is summed as
    d * 8 * x - d * 8 * x). Signed codes (Q8_0) are biased to unsigned by
    2^(bits - 1) the same way. For dense types, |w|."""
    t = ref.ggml_type(type_name)
    if not t.is_quantized:
        return np.abs(oracle_dense(blocks, type_name, shape))
    structs = np.ascontiguousarray(blocks).reshape(-1).view(t.block)
    n = structs.shape[0]
    sub = t.sub_block or t.block_values
    offset = t.zero_point + (2 ** (sum(f.bits for f in t.fields) - 1) if t.signed else 0)
    stored = (ggml_reference._read_codes(t, structs) + offset).reshape(n, -1, sub)
    multiplier, addend = t.scales(structs)
    magnitude = np.abs(multiplier[:, :, None].astype(np.float64)) * (np.abs(stored) + offset)
    if addend is not None:
        magnitude = magnitude + np.abs(addend[:, :, None].astype(np.float64))
    return magnitude.reshape(shape)


def assert_close(y, x, dense, what="", magnitude=None):
    """y ~ x @ dense.T, element by element, with a bound that holds for any
    summation order: K u_f32 times the sum of the magnitudes of the terms
    (|x| times term_magnitudes, or |w| where given none), plus one rounding
    to y's dtype. K bounds the depth of every kernel's float32 sums: a part's
    16 products, its scale and offset, a lane's K / 512 parts, the 32-lane
    reduction (mat-vec), or K products (tiles); the activations' pre-scaling
    by powers of two is exact."""
    x64 = x.astype(np.float64)
    expected = x64 @ np.swapaxes(dense, -1, -2)
    magnitude = np.abs(dense) if magnitude is None else magnitude
    bound = x.shape[-1] * unit_roundoff(np.float32) * (np.abs(x64) @ np.swapaxes(magnitude, -1, -2))
    bound = bound + unit_roundoff(y.dtype) * np.abs(expected) + 1e-30
    excess = np.abs(y.astype(np.float64) - expected) / bound
    assert y.shape == expected.shape, what
    assert excess.max() <= 1, f"{what}: error {excess.max():.2f} times the bound"


def test_type_table_matches_gguf():
    table = {row[0]: row for row in qmetal._core.ggml_type_table()}
    assert set(table) == set(QUANTIZED + DENSE)
    for name in QUANTIZED:
        _, gguf_id, values, size, _, alignment, part = table[name]
        qtype = gguf.GGMLQuantizationType[name]
        assert gguf_id == qtype.value
        assert (values, size) == gguf.GGML_QUANT_SIZES[qtype]
        # Blocks keep their code bytes on the kernels' word loads (kGGMLWord*):
        # the block size and every code field's offset (llama.cpp's layout, as
        # the reference's block dtype has it) are multiples of the alignment.
        assert alignment in (2, 4) and size % alignment == 0
        # A mul_mv part is whole 16-value runs of a block, and a multiple of
        # the 16 values mul_mv_ext's parts take.
        assert part % 16 == 0 and values % part == 0, (name, part)
        fields = ref.ggml_type(name).block.fields
        for field in ("qs", "qh", "ql", "hmask"):
            assert field not in fields or fields[field][1] % alignment == 0, (name, field)


@pytest.mark.parametrize("type_name", QUANTIZED + DENSE)
def test_dequantize_is_bit_exact_with_gguf(rng, type_name):
    k = max(ref.ggml_type(type_name).block_values, 32) * 3
    blocks = random_blocks(rng, type_name, 7, k)
    w = qmetal.GGMLWeight(blocks, type_name, (7, k))
    dense = qmetal.dequantize(w)
    assert dense.dtype == np.float32
    expected = gguf.quants.dequantize(blocks.reshape(-1), gguf.GGMLQuantizationType[type_name]).reshape(7, k)
    np.testing.assert_array_equal(dense.view(np.uint32), expected.astype(np.float32).view(np.uint32))
    half = qmetal.dequantize(w, np.float16)
    np.testing.assert_array_equal(half, expected.astype(np.float16))


ROUTE_ROWS = {"mv": 1, "mv_ext": 5, "mm": 33, "mm_split_k": 40}


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("type_name", QUANTIZED + DENSE)
@pytest.mark.parametrize("route", ROUTE_ROWS)
def test_every_type_route_and_activation(rng, route, type_name, activation):
    block = max(ref.ggml_type(type_name).block_values, 32)
    n = 13  # not a multiple of any kernel's rows per threadgroup
    for k in (block, 3 * block):  # one block per row, and several
        blocks = random_blocks(rng, type_name, n, k)
        w = qmetal.GGMLWeight(blocks, type_name, (n, k))
        x = rng.standard_normal((ROUTE_ROWS[route], k)).astype(activation)
        y = qmetal.matmul(x, w, route=route)
        assert y.dtype == np.float32
        assert_close(y, x, oracle_dense(blocks, type_name, (n, k)), f"{type_name} K={k}",
                     term_magnitudes(blocks, type_name, (n, k)))


@pytest.mark.parametrize("type_name, m, route", [("Q4_0", 1, "automatic"), ("Q4_K", 3, "automatic"),
                                                  ("Q6_K", 1, "automatic"), ("Q8_0", 2, "automatic"),
                                                  ("Q4_K", 5, "mv_ext"), ("Q5_1", 7, "mv_ext")])
def test_mat_vecs_share_k_over_simdgroups_when_rows_are_few(rng, type_name, m, route):
    """K slices (shaders/mat_vec.h), as for the affine mat-vecs: 13 rows over
    K = 2304 (144 parts of 16 values, 5 per lane; Q4_K's mul_mv: 72 parts
    of 32, 3 per lane) take one slice of simdgroups per lane step, the last
    step of a lane partly filled; mul_mv_ext (16-value parts) too."""
    device = qmetal.default_device()
    n, k = 13, 2304
    blocks = random_blocks(rng, type_name, n, k)
    w = qmetal.GGMLWeight(blocks, type_name, (n, k))
    x = rng.standard_normal((m, k)).astype(np.float16)
    y = qmetal.matmul(x, w, route=route)
    plan = qmetal._core.plan_ggml_matmul(device, qmetal.asbuffer(x), w._native, qmetal.asbuffer(y), m, route)
    part = 16 if plan[0].kernel.startswith("ggml_mul_mv_ext") else MV_PARTS[type_name]
    lane_steps = -(-(k // part) // 32)
    # A slice per lane step, as many as the kernel's registers allow (on the
    # H200, the translation of mul_mv_ext_r4 for Q5_1 takes 256 threads).
    fitting = device.max_threads_per_threadgroup(plan[0].kernel) // 64
    assert plan[0].kernel.startswith("ggml_mul_mv") and plan[0].threadgroup == (64 * min(lane_steps, fitting), 1, 1)
    assert fitting >= 2  # the case splits K whatever the device
    assert_close(y, x, oracle_dense(blocks, type_name, (n, k)), type_name, term_magnitudes(blocks, type_name, (n, k)))


@pytest.mark.parametrize("limit", [128, 192, 384])
@pytest.mark.parametrize("type_name, m, route", [("Q4_K", 1, "mv"), ("Q4_0", 5, "mv_ext")])
def test_mat_vec_slices_fit_the_kernels_thread_limit(rng, type_name, m, route, limit):
    """K slices stop where a kernel's threadgroups are full (on the H200,
    registers held the CUDA translation of a 5-row mul_mv_ext to 384 threads,
    below the 512 of 8 slices): limit / 64 slices, the same result."""
    device = qmetal.sim.device(max_threads_per_threadgroup=limit)
    n, k = 13, 8192
    blocks = random_blocks(rng, type_name, n, k)
    w = qmetal.GGMLWeight(blocks, type_name, (n, k), device=device)
    x = rng.standard_normal((m, k)).astype(np.float16)
    y = qmetal.matmul(x, w, route=route)
    plan = qmetal._core.plan_ggml_matmul(device, qmetal.asbuffer(x, device=device), w._native,
                                         qmetal.asbuffer(y, device=device), m, route)
    assert plan[0].threadgroup == (limit // 64 * 64, 1, 1)
    assert_close(y, x, oracle_dense(blocks, type_name, (n, k)), type_name, term_magnitudes(blocks, type_name, (n, k)))


def test_prefill_splits_k_when_tiles_are_few(rng):
    """Split-K for mul_mm (planning::k_partitions, as affine's qmm_split_k):
    a grid of few 64 x 32 tiles sums K in partitions (float partials, then
    affine_sum_partials); one that fills the GPU does not."""
    device = qmetal.default_device()
    n, k, m = 70, 1024, 40
    blocks = random_blocks(rng, "Q4_K", n, k)
    w = qmetal.GGMLWeight(blocks, "Q4_K", (n, k))
    x = rng.standard_normal((m, k)).astype(np.float16)
    for dtype in (np.float32, np.float16):
        y = qmetal.matmul(x, w, dtype=dtype)
        plan = qmetal._core.plan_ggml_matmul(device, qmetal.asbuffer(x), w._native, qmetal.asbuffer(y), m,
                                             "automatic")
        assert [p.kernel for p in plan] == ["ggml_mul_mm_split_q4_k_float16_float32",
                                            f"affine_sum_partials_{np.dtype(dtype).name}"]
        assert plan[0].grid[2] == 4  # K / 256: partitions of whole blocks
        assert_close(y, x, oracle_dense(blocks, "Q4_K", (n, k)), f"split {dtype}", term_magnitudes(blocks, "Q4_K", (n, k)))
    big = qmetal.GGMLWeight(np.zeros((4096, 1024 // 256 * 144), np.uint8), "Q4_K", (4096, 1024))
    plan = qmetal._core.plan_ggml_matmul(device, qmetal.empty((512, 1024), "float16"), big._native,
                                         qmetal.empty((512, 4096), "float32"), 512, "automatic")
    assert [p.kernel for p in plan] == ["ggml_mul_mm_q4_k_float16_float32"]


def test_moe_mat_vecs_share_k(rng):
    """mul_mv_id with K slices: a few rows per expert over a long K."""
    experts, n, k = 3, 13, 2304
    blocks = random_blocks(rng, "Q4_K", experts * n, k)
    w = qmetal.GGMLWeight(blocks, "Q4_K", (experts, n, k))
    x = rng.standard_normal((2, 1, 1, k)).astype(np.float16)
    ids = np.array([[0, 2], [1, 0]], np.int32)
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route="mv_id")
    expected = reference_gather(x, oracle_dense(blocks, "Q4_K", (experts, n, k)), ids)
    assert relative_error(y, expected) < ggml_tolerance(k)


@pytest.mark.parametrize("m", [1, 2, 5, 8, 9, 33, 100])
def test_rows_on_and_off_the_tiles(rng, m):
    n, k = 70, 512  # N past one 64-row tile
    blocks = random_blocks(rng, "Q4_K", n, k)
    w = qmetal.GGMLWeight(blocks, "Q4_K", (n, k))
    x = rng.standard_normal((m, k)).astype(np.float16)
    dense, magnitude = oracle_dense(blocks, "Q4_K", (n, k)), term_magnitudes(blocks, "Q4_K", (n, k))
    assert_close(qmetal.matmul(x, w), x, dense, "automatic", magnitude)
    y16 = qmetal.matmul(x, w, dtype=np.float16)
    assert y16.dtype == np.float16
    assert_close(y16, x, dense, "float16 output", magnitude)


def test_routing_follows_llama_cpp(rng):
    """Mat-vecs up to 8 rows, tiles beyond, as llama.cpp; small batches as M
    mat-vecs in one grid while that grid is small (as MLX), else mul_mv_ext,
    for the types whose mul_mv_ext pays (llama.cpp gates it by type too);
    the others always as M mat-vecs (Q2_K, Q3_K, Q6_K, Q5_0, Q5_1: their
    mul_mv_ext ran 1.1-2x slower on the H100)."""
    device = qmetal.default_device()
    wide_n = 64 * qmetal._core.affine_target_threadgroups(device)
    cases = [(16, 1, "mul_mv"), (wide_n, 1, "mul_mv"), (16, 2, "mul_mv"), (16, 8, "mul_mv"),
             (wide_n, 2, "mul_mv_ext_r2"),
             (wide_n, 4, "mul_mv_ext_r4"), (wide_n, 5, "mul_mv_ext_r3"), (wide_n, 8, "mul_mv_ext_r4"),
             (16, 9, "mul_mm")]
    for type_name in ("Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q2_K", "Q3_K", "Q6_K", "Q5_1"):
        ext = type_name in ("Q8_0", "Q4_0", "Q4_K", "Q5_K")
        t = ref.ggml_type(type_name)
        k = max(t.block_values, 64)
        for n, m, kernel in cases:
            w = qmetal.GGMLWeight(np.zeros(n * k // t.block_values * t.block_bytes, np.uint8), type_name, (n, k))
            x = qmetal.empty((m, k), "float32")
            plan = qmetal._core.plan_ggml_matmul(device, x, w._native, qmetal.empty((m, n), "float32"), m,
                                                 "automatic")
            expected = kernel if ext or not kernel.startswith("mul_mv_ext") else "mul_mv"
            assert plan[0].kernel == f"ggml_{expected}_{type_name.lower()}_float32_float32", (type_name, n, m)


MV_EXT_MAX_ROWS = 4  # x rows one mul_mv_ext threadgroup holds (csrc/core/ggml.cpp)


@pytest.mark.parametrize("m", range(2, 9))
def test_small_batches_read_the_weights_in_fewest_passes(rng, m):
    # Each threadgroup row of the grid reads all of w once: M = 4 must read it
    # once (not 2 + 2), and rows spread evenly over the passes (6 = 3 + 3).
    device = qmetal.default_device()
    n = 13  # not a multiple of any kernel's rows per threadgroup
    for type_name in ["Q4_0", "Q5_1", "Q8_0", "Q3_K", "Q5_K", "Q6_K", "BF16"]:
        k = 2 * max(ref.ggml_type(type_name).block_values, 32)
        blocks = random_blocks(rng, type_name, n, k)
        w = qmetal.GGMLWeight(blocks, type_name, (n, k))
        x = rng.standard_normal((m, k)).astype(np.float32)
        plan = qmetal._core.plan_ggml_matmul(device, qmetal.asbuffer(x), w._native, qmetal.empty((m, n), "float32"),
                                             m, "mv_ext")[0]
        rows = int(plan.kernel.split("mul_mv_ext_r")[1].split("_")[0])
        passes = plan.grid[1]
        assert passes == -(-m // MV_EXT_MAX_ROWS) and rows <= MV_EXT_MAX_ROWS, (m, plan.kernel, plan.grid)
        assert 0 <= rows * passes - m < passes, (m, rows, passes)
        for route in ("mv_ext", "automatic"):
            assert_close(qmetal.matmul(x, w, route=route), x, oracle_dense(blocks, type_name, (n, k)),
                         f"{type_name} M={m} {route}", term_magnitudes(blocks, type_name, (n, k)))


# head_dim 14 is a multiple of none of the kernels' activation runs (4, 8
# and 16 values), so runs cross from one head into the next; 64 is the usual.
@pytest.mark.parametrize("type_name, head_dim", [("Q6_K", 64), ("Q4_0", 14), ("Q5_1", 14), ("Q8_0", 14),
                                                 ("Q2_K", 14), ("Q4_K", 14), ("F16", 14)])
def test_head_major_attention_output(rng, type_name, head_dim):
    n = 40
    k = 7 * max(ref.ggml_type(type_name).block_values, 32) if head_dim == 14 else 512
    heads = k // head_dim
    blocks = random_blocks(rng, type_name, n, k)
    w = qmetal.GGMLWeight(blocks, type_name, (n, k))
    dense, magnitude = oracle_dense(blocks, type_name, (n, k)), term_magnitudes(blocks, type_name, (n, k))
    for m, route in [(1, "mv"), (1, "mv_ext"), (2, "mv_ext"), (3, "automatic"), (7, "automatic"), (5, "mm"),
                     (33, "automatic")]:
        x = rng.standard_normal((heads, m, head_dim)).astype(np.float16)
        y = qmetal.matmul(x, w, heads_first=True, route=route)
        contiguous = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(m, k)
        # The same kernel on the same values in the same order: bit for bit.
        np.testing.assert_array_equal(y, qmetal.matmul(contiguous, w, route=route))
        assert_close(y, contiguous, dense, f"{type_name} M={m} {route}", magnitude)


def test_stacked_weights_broadcast(rng):
    e, n, k = 3, 24, 256
    blocks = random_blocks(rng, "Q4_0", e * n, k)
    w = qmetal.GGMLWeight(blocks, "Q4_0", (e, n, k))
    dense, magnitude = oracle_dense(blocks, "Q4_0", (e, n, k)), term_magnitudes(blocks, "Q4_0", (e, n, k))
    for x_shape in [(e, 4, k), (2, 1, 40, k)]:
        x = rng.standard_normal(x_shape).astype(np.float32)
        assert_close(qmetal.matmul(x, w), x, dense, str(x_shape), magnitude)


def reference_gather(x, dense, ids):
    """x [tokens, 1, 1, K], experts dense [E, N, K], ids [tokens, slots]."""
    return np.stack([np.stack([x[t, 0, 0].astype(np.float64) @ dense[e].T for e in row]) for t, row in
                     enumerate(ids)])[:, :, None]


@pytest.mark.parametrize("tokens, experts, top_k", [(1, 4, 1), (5, 8, 2), (16, 16, 4), (33, 64, 6), (64, 32, 8)])
@pytest.mark.parametrize("routing", ["random", "skewed"])
def test_moe_routing(rng, tokens, experts, top_k, routing):
    n, k = 24, 256
    type_name = "Q4_K"
    blocks = random_blocks(rng, type_name, experts * n, k)
    w = qmetal.GGMLWeight(blocks, type_name, (experts, n, k))
    dense = oracle_dense(blocks, type_name, (experts, n, k))
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float16)
    if routing == "random":
        ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.int32)
    else:  # every token to the same experts
        ids = np.tile(np.arange(top_k, dtype=np.int32), (tokens, 1))
    expected = reference_gather(x, dense, ids)
    for route in ("automatic", "mv_id", "mm_id"):
        y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route)
        assert y.shape == (tokens, top_k, 1, n)
        assert relative_error(y, expected) < ggml_tolerance(k)


@pytest.mark.parametrize("type_name", QUANTIZED)
def test_moe_every_type(rng, type_name):
    experts, tokens, top_k, n = 4, 12, 2, 13
    k = max(ref.ggml_type(type_name).block_values, 32) * 2
    blocks = random_blocks(rng, type_name, experts * n, k)
    w = qmetal.GGMLWeight(blocks, type_name, (experts, n, k))
    dense = oracle_dense(blocks, type_name, (experts, n, k))
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float32)
    ids = rng.integers(0, experts, (tokens, top_k))
    expected = reference_gather(x, dense, ids)
    for route in ("mv_id", "mm_id"):
        y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route)
        assert relative_error(y, expected) < 4 * unit_roundoff(np.float32) * np.sqrt(k)


def reference_gather_rows(x, dense, ids):
    """x [tokens, 1, M, K], experts dense [E, N, K], ids [tokens, slots]:
    y [tokens, slots, M, N] in float64."""
    return np.stack([np.stack([x[t, 0].astype(np.float64) @ dense[e].T for e in row]) for t, row in enumerate(ids)])


@pytest.mark.parametrize("tokens, m, route, first, kernel", [
    (3, 1, "automatic", "gather_rows", "mul_mv_id"),
    (40, 1, "automatic", "gather_sort", "mul_mm_id"),  # 80 rows over 4 experts: sorted
    (5, 3, "mv_id", "gather_rows", "mul_mv_id"),
    (5, 3, "mm_id", "gather_sort", "mul_mm_id"),
])
def test_moe_ids_on_a_stream_are_read_by_the_kernels(rng, tokens, m, route, first, kernel):
    """With a stream, routing ids may come from an earlier op still queued:
    here they are out of range when the op is called and written only
    afterwards, before synchronize (no host round trip). The device makes
    the row list (sorted by expert for mul_mm_id) that the host would have
    made, so the results are the host path's, bit for bit."""
    experts, top_k, n, k = 4, 2, 13, 256
    blocks = random_blocks(rng, "Q4_K", experts * n, k)
    w = qmetal.GGMLWeight(blocks, "Q4_K", (experts, n, k))
    dense = oracle_dense(blocks, "Q4_K", (experts, n, k))
    x = rng.standard_normal((tokens, 1, m, k)).astype(np.float16)
    ids = qmetal.empty((tokens, top_k), "int32").numpy()
    ids[...] = experts + 7
    stream = qmetal.Stream()
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, stream=stream)
    kernels = stream.queued_kernels
    assert kernels[0] == first and kernels[1].startswith(f"ggml_{kernel}_q4_k") and kernels[2].startswith("gather_check")
    routing = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.int32)
    ids[...] = routing
    stream.synchronize()
    assert relative_error(y, reference_gather_rows(x, dense, routing)) < ggml_tolerance(k)
    np.testing.assert_array_equal(y, qmetal.gather_matmul(x, w, rhs_indices=routing, route=route))


@pytest.mark.parametrize("route", ["mv_id", "mm_id"])
def test_moe_ids_out_of_range_on_a_stream_fail_at_synchronize(rng, route):
    experts, tokens, top_k, n, k = 4, 3, 2, 13, 64
    blocks = random_blocks(rng, "Q8_0", experts * n, k)
    w = qmetal.GGMLWeight(blocks, "Q8_0", (experts, n, k))
    dense = oracle_dense(blocks, "Q8_0", (experts, n, k))
    x = rng.standard_normal((tokens, 1, 2, k)).astype(np.float32)
    ids = np.array([[0, 1], [2, -1], [3, experts]], np.int32)
    stream = qmetal.Stream()
    y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, stream=stream)  # nothing read yet
    with pytest.raises(ValueError, match=r"rhs_indices: an index read on the device is out of range \[0, 4\)"):
        stream.synchronize()
    good = (ids >= 0) & (ids < experts)
    assert np.isnan(y[~good]).all() and not np.isnan(y[good]).any()
    expected = reference_gather_rows(x, dense, np.where(good, ids, 0))
    assert relative_error(y[good], expected[good]) < 4 * unit_roundoff(np.float32) * np.sqrt(k)
    lhs = np.array([[0], [tokens]], np.uint32)  # x matrix 3 of 3
    y = qmetal.gather_matmul(x, w, lhs_indices=lhs, rhs_indices=np.zeros((2, 1), np.uint32), route=route, stream=stream)
    with pytest.raises(ValueError, match=r"lhs_indices: an index read on the device is out of range \[0, 3\)"):
        stream.synchronize()
    assert np.isnan(y[1]).all() and not np.isnan(y[0]).any()


def test_weights_share_one_mapped_buffer(rng):
    # Two tensors in one file-like buffer, at GGUF's 32-byte alignment.
    a = random_blocks(rng, "Q8_0", 8, 64)
    b = random_blocks(rng, "Q4_0", 16, 128)
    data = np.zeros(4096, np.uint8)
    data[32:32 + a.nbytes] = a.reshape(-1)
    data[1024:1024 + b.nbytes] = b.reshape(-1)
    wa = qmetal.GGMLWeight(data, "Q8_0", (8, 64), offset=32)
    wb = qmetal.GGMLWeight(data, "Q4_0", (16, 128), offset=1024)
    assert not wa.copied and np.shares_memory(wa.data, data)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    assert_close(qmetal.matmul(x, wb), x, oracle_dense(b, "Q4_0", (16, 128)), "Q4_0",
                 term_magnitudes(b, "Q4_0", (16, 128)))
    x = rng.standard_normal((3, 64)).astype(np.float32)
    assert_close(qmetal.matmul(x, wa), x, oracle_dense(a, "Q8_0", (8, 64)), "Q8_0",
                 term_magnitudes(a, "Q8_0", (8, 64)))


@pytest.mark.parametrize("call, error, message", [
    (lambda b: qmetal.GGMLWeight(b, "Q4_K", (8, 384)), ValueError, r"K \(384\) must be a positive multiple of 256"),
    (lambda b: qmetal.GGMLWeight(b[:-1], "Q4_K", (8, 512)), ValueError,
     r"takes 2304 bytes from offset 0, but the buffer has 2303 bytes \(short\)"),
    (lambda b: qmetal.GGMLWeight(b.view(np.int8), "Q4_K", (8, 512)), TypeError, r"data: expected the raw blocks"),
    (lambda b: qmetal.GGMLWeight(b, "Q7_K", (8, 512)), ValueError, r"type: expected one of Q4_0"),
    (lambda b: qmetal.matmul(np.zeros((2, 500), np.float32), qmetal.GGMLWeight(b, "Q4_K", (8, 512))), ValueError,
     r"x: expected last dimension 512"),
    (lambda b: qmetal.matmul(np.zeros((2, 512), np.float32), qmetal.GGMLWeight(b, "Q4_K", (8, 512)),
                             dtype=np.float16), TypeError, r"dtype: the output is float32 or the activations' dtype"),
    (lambda b: qmetal.matmul(np.zeros((2, 512), np.float32), qmetal.GGMLWeight(b, "Q4_K", (8, 512)),
                             transpose=False), ValueError, r"only transpose=True"),
    (lambda b: qmetal.gather_matmul(np.zeros((2, 1, 1, 512), np.float32),
                                    qmetal.GGMLWeight(b, "Q4_K", (2, 4, 512)), rhs_indices=[[0, 2]]),
     ValueError, r"rhs_indices: index 2 at position 1 is out of range \[0, 2\)"),
    (lambda b: qmetal.gather_matmul(np.zeros((2, 1, 1, 512), np.float32),
                                    qmetal.GGMLWeight(b, "Q4_K", (2, 4, 512)), rhs_indices=np.zeros((2, 1), np.float32)),
     TypeError, r"rhs_indices: expected an integer dtype"),
    (lambda b: qmetal.matmul(np.zeros((3, 8, 64), np.float16), qmetal.GGMLWeight(b, "Q4_K", (8, 512)),
                             heads_first=True), ValueError, r"heads \* head_dim = K \(512\)"),
])
def test_bad_input_is_rejected(rng, call, error, message):
    blocks = random_blocks(rng, "Q4_K", 8, 512).reshape(-1)
    with pytest.raises(error, match=message):
        call(blocks)


def test_bad_out_is_left_untouched(rng):
    blocks = random_blocks(rng, "Q8_0", 8, 64)
    w = qmetal.GGMLWeight(blocks, "Q8_0", (8, 64))
    out = np.full((3, 8), 5.0, np.float32)
    with pytest.raises(ValueError):
        qmetal.matmul(np.zeros((3, 60), np.float32), w, out=out)
    assert (out == 5.0).all()
    qmetal.matmul(np.ones((3, 64), np.float32), w, out=out)
    assert_close(out, np.ones((3, 64), np.float32), oracle_dense(blocks, "Q8_0", (8, 64)), "out",
                 term_magnitudes(blocks, "Q8_0", (8, 64)))


def test_bench_runs_ggml_formats():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "qmetal", "bench", "--format", "q8_0", "--shapes", "40x128",
                             "--rows", "1,3,9", "--repeat", "1", "--no-peers"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GGML Q8_0" in result.stdout and "all results checked" in result.stdout
    kernels = {line.split()[4] for line in result.stdout.splitlines() if line.startswith("40x128")}
    assert kernels == {"mul_mv", "mul_mm"}  # M = 3: three mat-vecs in one grid


def test_gguf_file_tensors_without_copies(rng, tmp_path):
    # A file written by llama.cpp's own Python writer, read by qmetal.
    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    tensors = {
        "blk.0.attn_q.weight": ("Q4_K", (40, 256)),
        "blk.0.ffn_down.weight": ("Q8_0", (24, 96)),
        "blk.0.ffn_gate_exps.weight": ("Q6_K", (4, 16, 256)),
        "blk.0.attn_v.weight": ("F16", (8, 64)),
    }
    stored = {}
    for name, (type_name, shape) in tensors.items():
        blocks = random_blocks(rng, type_name, int(np.prod(shape[:-1])), shape[-1])
        stored[name] = blocks
        qtype = gguf.GGMLQuantizationType[type_name]
        writer.add_tensor(name, blocks.reshape(*shape[:-1], -1), raw_dtype=qtype)  # bytes; gguf infers the shape
    norm = rng.standard_normal(64).astype(np.float32)
    writer.add_tensor("blk.0.attn_norm.weight", norm)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    model = qmetal.load_gguf(path)
    assert model.metadata["general.architecture"] == "llama"
    np.testing.assert_array_equal(model.tensors["blk.0.attn_norm.weight"], norm)
    for name, (type_name, shape) in tensors.items():
        w = model.tensors[name]
        assert (w.type, w.shape) == (type_name, shape) and not w.copied
        dense = oracle_dense(stored[name], type_name, shape)
        np.testing.assert_array_equal(qmetal.dequantize(w), dense.astype(np.float32))
        x = rng.standard_normal((3, shape[-1])).astype(np.float32)
        if len(shape) == 2:
            assert_close(qmetal.matmul(x, w), x, dense, name, term_magnitudes(stored[name], type_name, shape))
        else:
            ids = rng.integers(0, shape[0], (3, 2))
            y = qmetal.gather_matmul(x[:, None, None], w, rhs_indices=ids)
            expected = reference_gather(x[:, None, None], dense, ids)
            assert relative_error(y, expected) < 4 * unit_roundoff(np.float32) * np.sqrt(shape[-1])
