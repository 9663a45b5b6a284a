"""Run under AddressSanitizer + UBSan by tests/test_sim_kernels.py: a few
instantiations of qmetal's own affine and GGML kernels, compiled from the
installed shaders with sanitizers, executed through the planner's plans on
edge shapes (partial tiles, tails), checked against the references. An
out-of-bounds access in a kernel aborts with the report."""

import os

import numpy as np

import qmetal
import qmetal.sim as sim
from qmetal import _core
from qmetal import reference as ref

SHADERS = os.path.join(os.path.dirname(qmetal.__file__), "shaders")
SOURCE = """
#include "affine.h"
#include "ggml.h"
QMETAL_AFFINE_ONE(qmv, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qmv_fast, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qmv_wide_r4, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qvm, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qmm_t, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qmm_n, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qmm_t_split, float, float32, 32, 3)
QMETAL_AFFINE_ONE(qvm_split, float, float32, 32, 3)
QMETAL_AFFINE_ONE(quantize, float, float32, 32, 3)
template [[host_name("affine_sum_partials_float32")]] [[kernel]]
decltype(affine_sum_partials<float>) affine_sum_partials<float>;
QMETAL_GGML_ONE(mul_mv, block_q6_K, q6_k, float, float32, float, float32)
QMETAL_GGML_ONE(mul_mv_ext_r3, block_q6_K, q6_k, float, float32, float, float32)
QMETAL_GGML_ONE(mul_mm, block_q6_K, q6_k, float, float32, float, float32)
"""


def check(y, expected):
    error = np.linalg.norm(y - expected) / np.linalg.norm(expected)
    assert error < 1e-5, error


def main():
    library = sim.compile(SOURCE, include_dirs=[SHADERS])
    device = qmetal.get_device("sim")
    rng = np.random.default_rng(0)
    # Affine, 3-bit, group size 32: shapes off every tile and pack.
    for route, m, n, k, transpose in [("qmv", 1, 13, 96, True), ("qmv_fast", 1, 16, 512, True),
                                      ("qmv_wide", 5, 13, 96, True), ("qmm", 33, 13, 96, True),
                                      ("qmm_split_k", 33, 13, 1024, True), ("qvm", 2, 96, 37, False),
                                      ("qvm_split_k", 2, 96, 300, False), ("qmm", 33, 96, 37, False)]:
        rows, cols = (n, k) if transpose else (k, n)
        w_dense = rng.standard_normal((rows, cols)).astype(np.float32)
        packed, scales, biases = ref.affine_quantize(w_dense, 3, 32)
        w = _core.QuantizedWeight.from_buffers(qmetal.asbuffer(packed), qmetal.asbuffer(scales),
                                               qmetal.asbuffer(biases), 3, 32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        y = qmetal.empty((m, n), "float32")
        for plan in _core.plan_affine_matmul(device, qmetal.asbuffer(x), w, transpose, y, route):
            library.execute(plan)
        check(np.asarray(y), ref.affine_matmul(x, packed, scales, biases, 3, 32, transpose=transpose))
    # GGML Q6_K on every dense route, N past one 64-row tile.
    n, k = 70, 512
    blocks = ref.ggml_quantize(rng.standard_normal((n, k)).astype(np.float32), "Q6_K")
    w = _core.GGMLWeight.from_buffer(qmetal.asbuffer(blocks.reshape(-1)), "Q6_K", [n, k])
    for route, m in [("mv", 1), ("mv_ext", 5), ("mm", 33)]:
        x = rng.standard_normal((m, k)).astype(np.float32)
        y = qmetal.empty((m, n), "float32")
        for plan in _core.plan_ggml_matmul(device, qmetal.asbuffer(x), w, y, m, route):
            library.execute(plan)
        check(np.asarray(y), ref.ggml_matmul(x, blocks, "Q6_K", (n, k)))
    print("production kernels clean under the sanitizers")


if __name__ == "__main__":
    main()
