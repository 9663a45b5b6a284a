"""``python -m qmetal selftest``: every kernel route once on a device, checked
against the float64 reference, plus what only a real GPU can show (zero-copy
at any alignment, a stream longer than a command buffer) and a few timings.
The output is a report to paste into an issue from a first Mac."""

from __future__ import annotations

import platform
import sys
import traceback

import numpy as np

import qmetal
from . import _bench
from . import reference as ref
from ._dtypes import numpy_dtype

# Routes of the affine kernels: (route, M, N, K, transpose).
AFFINE_CASES = [
    ("qmv", 1, 13, 192, True), ("qmv_fast", 1, 16, 512, True), ("qmv_wide", 5, 13, 192, True),
    ("qmm", 40, 13, 192, True), ("qmm_split_k", 40, 13, 1024, True), ("qvm", 2, 128, 37, False),
    ("qvm_split_k", 2, 128, 600, False), ("qmm", 40, 128, 37, False),
    # Few rows over a long K: 8 K slices, 512-thread threadgroups (shaders/mat_vec.h).
    ("qmv", 1, 13, 8192, True), ("qmv_wide", 4, 13, 8192, True),
]
# GGML: rows of x per route, and the types (one per block family).
GGML_ROUTES = {"mv": 1, "mv_ext": 5, "mm": 33, "mm_split_k": 40}
GGML_TYPES = ["Q4_0", "Q8_0", "Q4_K", "Q6_K", "F16"]
# More dependent ops than one command buffer holds (the Metal backend
# commits every 64), so consumers read producers of earlier command buffers.
CHAIN_OPS = 130
TOLERANCE = 1e-2


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, ok: bool, what: str, detail: str = ""):
        self.failures += not ok
        print(f"{'ok' if ok else 'FAILED':<7}{what}" + (f"  {detail}" if detail else ""))

    def error(self, what: str, error: BaseException):
        self.failures += 1
        print(f"{'FAILED':<7}{what}  {type(error).__name__}: {error}")

    def close_to(self, what: str, actual, expected, tolerance=TOLERANCE):
        error = relative_error(actual, expected)
        self.check(bool(error < tolerance), what, f"relative error {error:.1e} (limit {tolerance:.0e})")


def relative_error(actual, expected) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-300))


def header(device):
    print("qmetal selftest report (paste all of it into an issue)")
    print(f"qmetal {qmetal.__version__}; Python {platform.python_version()}; numpy {np.__version__}; "
          f"{platform.platform()}; {platform.machine()}")
    print(f"metal backend: {qmetal._core.backend_status('metal')}")
    print(f"device: {device.name} (backend {device.backend}, architecture {device.architecture})")
    if device.details:
        print(f"details: {device.details}")
    caps = device.capabilities
    print("capabilities: " + ", ".join(f"{key}={value}" for key, value in caps.items()))
    if device.backend == "sim":
        print("note: this is the CPU simulator, not a GPU: it proves the kernels' logic, nothing about Metal")


def affine_routes(report, device, rng):
    for dtype in ("float32", "float16"):
        for bits in (3, 4, 8):
            for route, m, n, k, transpose in AFFINE_CASES:
                what = f"affine {route:<12} {dtype:<8} {bits}-bit K={k}"
                try:
                    rows, cols = (n, k) if transpose else (k, n)
                    w_dense = (rng.standard_normal((rows, cols)) * 0.1).astype(numpy_dtype(dtype))
                    w = qmetal.quantize(w_dense, bits, 64, device=device)
                    x = rng.standard_normal((m, k)).astype(numpy_dtype(dtype))
                    y = qmetal.matmul(x, w, transpose=transpose, route=route, device=device)
                    expected = ref.affine_matmul(x, w.packed, w.scales, w.biases, bits, 64, transpose=transpose)
                    report.close_to(what, y, expected)
                except Exception as error:  # noqa: BLE001 - a report lists every failure
                    report.error(what, error)
    experts = 4
    w = qmetal.quantize((rng.standard_normal((experts, 40, 256)) * 0.1).astype(np.float16), 4, 64, device=device)
    x = rng.standard_normal((24, 1, 1, 256)).astype(np.float16)
    ids = rng.integers(0, experts, (24, 2)).astype(np.uint32)
    expected = ref.affine_gather_matmul(x[:, 0, 0], w.packed, w.scales, w.biases, ids, 4, 64)[:, :, None]
    for route in ("qmv", "qmm", "qmm_sorted"):
        what = f"affine gather {route:<12} float16  4-bit"
        try:
            report.close_to(what, qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, device=device), expected)
        except Exception as error:  # noqa: BLE001
            report.error(what, error)
        what += ", ids read on the device"  # qmm_sorted: sorted there by gather_sort
        try:
            with qmetal.Stream(device) as stream:
                y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, stream=stream)
            report.close_to(what, y, expected)
        except Exception as error:  # noqa: BLE001
            report.error(what, error)


def ggml_routes(report, device, rng):
    # K = 512 for every route, and 8192 for the mat-vecs: 8 K slices,
    # 512-thread threadgroups (shaders/mat_vec.h).
    n = 13
    for type_name, k, routes in [(t, 512, GGML_ROUTES) for t in GGML_TYPES] + \
            [(t, 8192, {"mv": 1, "mv_ext": 5}) for t in GGML_TYPES]:
        blocks = ref.ggml_quantize((rng.standard_normal((n, k)) * 0.1).astype(np.float32), type_name)
        w = qmetal.GGMLWeight(blocks, type_name, (n, k), device=device)
        dense = ref.ggml_dequantize(blocks, type_name, (n, k)).astype(np.float64)
        for route, m in routes.items():
            what = f"ggml {route:<10} {type_name:<5} float32 K={k}"
            try:
                x = rng.standard_normal((m, k)).astype(np.float32)
                report.close_to(what, qmetal.matmul(x, w, route=route, device=device), x.astype(np.float64) @ dense.T)
            except Exception as error:  # noqa: BLE001
                report.error(what, error)
    experts, tokens, top_k, k = 4, 40, 2, 512
    blocks = ref.ggml_quantize((rng.standard_normal((experts * n, k)) * 0.1).astype(np.float32), "Q4_K")
    w = qmetal.GGMLWeight(blocks, "Q4_K", (experts, n, k), device=device)
    dense = ref.ggml_dequantize(blocks, "Q4_K", (experts, n, k)).astype(np.float64)
    x = rng.standard_normal((tokens, 1, 1, k)).astype(np.float16)
    ids = np.stack([rng.choice(experts, top_k, replace=False) for _ in range(tokens)]).astype(np.int32)
    expected = np.einsum("tk,tsnk->tsn", x[:, 0, 0].astype(np.float64), dense[ids])[:, :, None]
    for route in ("mv_id", "mm_id"):
        what = f"ggml gather {route:<6} Q4_K  float16"
        try:
            report.close_to(what, qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, device=device), expected)
        except Exception as error:  # noqa: BLE001
            report.error(what, error)
        # On a stream the ids are read by the GPU (gather_rows / gather_sort
        # make the row lists there), and a bad one fails at synchronize.
        what = f"ggml gather {route:<6} Q4_K  float16, ids read on the device"
        try:
            with qmetal.Stream(device) as stream:
                y = qmetal.gather_matmul(x, w, rhs_indices=ids, route=route, stream=stream)
            report.close_to(what, y, expected)
            bad = ids.copy()
            bad[3, 1] = experts
            stream = qmetal.Stream(device)
            y = qmetal.gather_matmul(x, w, rhs_indices=bad, route=route, stream=stream)
            try:
                stream.synchronize()
                report.check(False, what + ", an out-of-range id", "no error at synchronize")
            except ValueError as error:
                report.check("rhs_indices" in str(error) and bool(np.isnan(y[3, 1]).all()),
                             what + ", an out-of-range id", str(error))
        except Exception as error:  # noqa: BLE001
            report.error(what, error)


def _aligned_not_page_aligned(shape, dtype, page):
    """An array at 16-byte alignment that is not page-aligned (Metal wraps
    whole pages around it and binds it at an offset)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.zeros(count * dtype.itemsize + 2 * page, np.uint8)
    start = (-raw.ctypes.data) % page + 48  # 48 bytes past a page boundary
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def zero_copy(report, device, rng):
    what = "zero-copy: 16-byte-aligned arrays (not page-aligned) used in place, out= on a stream"
    try:
        page = qmetal._core.page_size()
        k, n = 512, 64
        w = qmetal.quantize((rng.standard_normal((n, k)) * 0.1).astype(np.float32), 4, 64, device=device)
        x = _aligned_not_page_aligned((3, k), np.float32, page)
        x[...] = rng.standard_normal(x.shape)
        out = _aligned_not_page_aligned((3, n), np.float32, page)
        shared = [qmetal.asbuffer(a, device=device) for a in (x, out)]
        copied = [b.copied for b in shared]
        with qmetal.Stream(device) as stream:
            result = qmetal.matmul(x, w, out=out, stream=stream)
        expected = ref.affine_matmul(x, w.packed, w.scales, w.biases, 4, 64)
        error = relative_error(out, expected)
        ok = not any(copied) and result is out and error < TOLERANCE
        report.check(ok, what, f"copied={copied}, wrap_alignment={device.capabilities['wrap_alignment']}, "
                               f"page={page}, relative error {error:.1e}")
    except Exception as error:  # noqa: BLE001
        report.error(what, error)


def stream_chain(device, ops=CHAIN_OPS, k=512, seed=0):
    """``ops`` dependent matmuls on one stream (each reads the previous
    output, re-wrapped as the next op's input) and the same ops run one at
    a time: the two must be identical, bit for bit."""
    rng = np.random.default_rng(seed)
    # Entries of scale 1/sqrt(K) keep the vector's norm about constant.
    w = qmetal.quantize((rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32), 4, 64, device=device)
    x = rng.standard_normal((1, k)).astype(np.float32)
    expected = x
    for _ in range(ops):
        expected = qmetal.matmul(expected, w, device=device)
    with qmetal.Stream(device) as stream:
        h = x
        for _ in range(ops):
            h = qmetal.matmul(h, w, stream=stream)
    return h, expected


def chain(report, device):
    what = f"stream: {CHAIN_OPS} dependent ops (past 64 per command buffer) equal the same ops one at a time"
    try:
        h, expected = stream_chain(device)
        differ = int(np.count_nonzero(h != expected))
        report.check(differ == 0 and bool(np.isfinite(expected).all()), what, f"{differ} of {h.size} values differ")
    except Exception as error:  # noqa: BLE001
        report.error(what, error)


def bench(device, rng):
    simulated = device.backend == "sim"
    n, k = (512, 512) if simulated else (4096, 4096)
    print(f"timings (best of 3, ms; {'simulator: says nothing about a GPU' if simulated else 'GPU'}):")
    w_dense = (rng.standard_normal((n, k)) * 0.02).astype(np.float16)
    affine = qmetal.quantize(w_dense, 4, 64, device=device)
    affine_bytes = affine.packed.nbytes + affine.scales.nbytes + affine.biases.nbytes
    blocks = ref.ggml_quantize(w_dense.astype(np.float32), "Q4_K")
    ggml = qmetal.GGMLWeight(blocks, "Q4_K", (n, k), device=device)
    for label, w, weight_bytes in (("affine 4-bit", affine, affine_bytes), ("ggml Q4_K", ggml, blocks.nbytes)):
        for m in (1, 64 if simulated else 512):
            x = rng.standard_normal((m, k)).astype(np.float16)
            try:
                seconds = _bench._time(lambda: qmetal.matmul(x, w, device=device), 3)  # noqa: B023
                moved = weight_bytes + x.nbytes + m * n * 4
                print(f"  {label:<13} M={m:<4} N={n} K={k}: {seconds * 1e3:9.3f} ms  {moved / seconds / 1e9:7.2f} GB/s"
                      f"  {2 * m * n * k / seconds / 1e9:8.1f} GFLOP/s")
            except Exception as error:  # noqa: BLE001 - timings are information, not checks
                print(f"  {label:<13} M={m:<4}: {type(error).__name__}: {error}")


def run(args) -> int:
    device = qmetal.get_device(args.backend) if args.backend else qmetal.default_device()
    header(device)
    report = Report()
    rng = np.random.default_rng(0)
    for section in (affine_routes, ggml_routes, zero_copy):
        try:
            section(report, device, rng)
        except Exception as error:  # noqa: BLE001
            report.error(section.__name__, error)
            traceback.print_exc(file=sys.stdout)
    chain(report, device)
    bench(device, rng)
    print("all kernels agree with the reference" if not report.failures else f"{report.failures} check(s) FAILED")
    return 1 if report.failures else 0
