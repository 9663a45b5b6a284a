"""MLX affine quantized weights and the ops on them, with MLX's semantics.

Arrays are shared with the device without copies where their memory allows
(see ``qmetal.asbuffer``); all argument checks happen in the C++ core and
raise before any work is queued.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._buffer import asbuffer
from . import _ggml
from ._dtypes import dense_dtype, dtype_name, float_activations, float_array, numpy_dtype

__all__ = ["QuantizedWeight", "Stream", "dequantize", "gather_matmul", "matmul", "quantize"]


class Stream:
    """Queues ops so a whole layer is encoded before waiting once::

        stream = qmetal.Stream()
        h = qmetal.matmul(x, w_up, stream=stream)
        y = qmetal.matmul(h, w_down, stream=stream)   # h is read on the device
        stream.synchronize()                          # now h and y hold results

    On Metal the queued work runs while more is encoded; the simulator and
    the CUDA backend run it at ``synchronize()``. Arrays returned by ops on
    a stream must not be read before ``synchronize()``. Also a context
    manager that synchronizes on exit. ``queued_kernels`` names the kernels
    queued since the last ``synchronize()`` (the routes the ops took).
    """

    def __init__(self, device=None):
        self.device = _device(device)
        self._native = _core.Stream(self.device)

    def synchronize(self):
        self._native.synchronize()

    @property
    def queued_kernels(self) -> list:
        return list(self._native.queued_kernels)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.synchronize()
        return False


class QuantizedWeight:
    """A weight ``[..., rows, cols]`` quantized along ``cols`` as MLX does:
    ``packed`` uint32 ``[..., rows, cols * bits / 32]``, ``scales`` and
    ``biases`` ``[..., rows, cols / group_size]`` (float32, float16 or
    bfloat16). For ``matmul(x, w)`` rows are the outputs (N) and cols the
    inputs (K); with ``transpose=False`` the other way round.

    Unpacked (``from_codes``, ``qmetal.dwq.init``): one ``uint8`` code per
    value, ``codes [..., rows, cols]``. MLX's 8-bit packing puts code i of a
    row in byte i, so these bytes are an 8-bit packed weight and every op
    runs them on the 8-bit kernels, without a copy; ``bits`` stays the
    codes' true width."""

    def __init__(self, native):
        self._native = native

    @classmethod
    def from_arrays(cls, packed, scales, biases, bits=4, group_size=64, *, device=None):
        """Wrap arrays MLX or a safetensors file already hold, without copying
        where they are aligned for the device (``.copied`` says if not)."""
        device = _device(device)
        packed = np.asarray(packed)
        if packed.dtype != np.uint32:
            raise TypeError(f"packed: expected uint32 codes, got {packed.dtype}")
        scales, biases = float_array(scales, "scales"), float_array(biases, "biases")
        bits, group_size = _format_argument(bits, "bits"), _format_argument(group_size, "group_size")
        buffers = [asbuffer(a, device=device) for a in (packed, scales, biases)]
        return cls(_core.QuantizedWeight.from_buffers(*buffers, bits, group_size))

    @classmethod
    def from_codes(cls, codes, scales, biases, bits=4, group_size=64, *, device=None):
        """Wrap unpacked codes (``uint8 [..., rows, cols]``, each below
        ``2**bits``, checked once here) and their scales and biases
        (``[..., rows, cols / group_size]``), without copying where they are
        aligned for the device. ``bits`` 1..8; ``group_size`` a power of two
        from 2 to 1024 dividing cols (``matmul``, ``dequantize`` and
        ``matmul_vjp`` take 32, 64 and 128, as MLX; ``qmetal.dwq.init`` and
        ``grads`` any)."""
        device = _device(device)
        codes = np.asarray(codes)
        if codes.dtype != np.uint8:
            raise TypeError(f"codes: expected uint8 (one unpacked code per value), got {codes.dtype}")
        scales, biases = float_array(scales, "scales"), float_array(biases, "biases")
        bits, group_size = _format_argument(bits, "bits"), _format_argument(group_size, "group_size")
        buffers = [asbuffer(a, device=device) for a in (codes, scales, biases)]
        return cls(_core.quantized_weight_from_codes(*buffers, bits, group_size))

    @property
    def unpacked(self) -> bool:
        """One uint8 code per value (``from_codes``), not MLX's bit stream."""
        return _core.quantized_weight_unpacked(self._native)

    @property
    def codes(self) -> np.ndarray:
        """The codes as ``uint8 [..., rows, cols]``: the array itself when
        unpacked, else unpacked from the bit stream (a new array)."""
        if self.unpacked:
            return np.asarray(self._native.packed)
        from .reference import unpack_bits
        return unpack_bits(self.packed, self.bits).astype(np.uint8)

    @property
    def packed(self) -> np.ndarray:
        return np.asarray(self._native.packed)

    @property
    def scales(self) -> np.ndarray:
        return np.asarray(self._native.scales)

    @property
    def biases(self) -> np.ndarray:
        return np.asarray(self._native.biases)

    @property
    def bits(self) -> int:
        return self._native.bits

    @property
    def group_size(self) -> int:
        return self._native.group_size

    @property
    def shape(self) -> tuple:
        return tuple(self._native.shape)

    @property
    def dtype(self) -> np.dtype:
        return numpy_dtype(self._native.dtype)

    @property
    def copied(self) -> bool:
        """Whether wrapping the arrays had to copy any of them."""
        return any(b.copied for b in (self._native.packed, self._native.scales, self._native.biases))

    def __repr__(self):
        return (f"QuantizedWeight(shape={self.shape}, bits={self.bits}, group_size={self.group_size}, "
                f"dtype={self._native.dtype}{', unpacked' if self.unpacked else ''})")

    def _with_dtype(self, name, device):
        """The same codes with scales and biases in another float dtype (as
        MLX casts them for mixed-dtype matmuls). Converted on every call, as
        MLX does: a cached copy would go stale when the shared arrays are
        updated in place (reloads, LoRA merges); the scales are 1/group_size
        of the weight, so the conversion is small next to the matmul."""
        if name == self._native.dtype:
            return self._native
        scales = asbuffer(self.scales.astype(numpy_dtype(name)), device=device)
        biases = asbuffer(self.biases.astype(numpy_dtype(name)), device=device)
        return _core.quantized_weight_with_scales(self._native, scales, biases)


def _device(device):
    if device is None:
        return _core.default_device()
    if not isinstance(device, _core.Device):
        raise TypeError(f"device: expected a qmetal.Device (qmetal.default_device(), qmetal.get_device(...)), "
                        f"got {type(device).__name__}")
    return device


def _flag(value, what):
    """bool or np.bool_ (as NumPy code passes), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _route(route):
    if not isinstance(route, str):
        raise TypeError(f"route: expected a route name (str), got {type(route).__name__}")
    return route


def _format_argument(value, what):
    """bits / group_size: an int the core checks against the formats."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: expected an int, got {type(value).__name__}")
    if not -2**31 <= int(value) < 2**31:
        raise ValueError(f"{what}: {value} is not a supported value")
    return int(value)


def quantize(w, bits: int = 4, group_size: int = 64, *, device=None) -> QuantizedWeight:
    """Quantize ``w [..., rows, cols]`` (float32/float16/bfloat16) on the
    device; bit-exact with ``mlx.core.quantize`` on CPU."""
    device = _device(device)
    w = float_array(w, "w")
    bits, group_size = _format_argument(bits, "bits"), _format_argument(group_size, "group_size")
    return QuantizedWeight(_core.affine_quantize(device, asbuffer(w, device=device), bits, group_size))


def dequantize(w, dtype=None, *, device=None) -> np.ndarray:
    """The dense weight. Affine: ``scale * q + bias`` as ``[..., rows, cols]``
    in the scales' dtype (rounded as ``mlx.core.dequantize`` rounds), then
    cast to ``dtype``. GGML: bit-exact with ``gguf.quants.dequantize``, in
    ``dtype`` (float32 by default)."""
    dtype = dense_dtype(dtype)
    if isinstance(w, _ggml.GGMLWeight):
        kernel_dtype = None if dtype is None or dtype == np.float64 else dtype
        result = _ggml.dequantize(w, _device(device), kernel_dtype)
        return result if dtype is None else result.astype(dtype, copy=False)
    _check_weight(w)
    result = np.asarray(_core.affine_dequantize(_device(device), w._native))
    return result if dtype is None else result.astype(dtype, copy=False)


def _result_dtype(x_name, w_name):
    # MLX's promotion among float types: equal stays, anything else is float32.
    return x_name if x_name == w_name else "float32"


def matmul(x, w, transpose: bool = True, out=None, stream=None, *, device=None, route: str = "automatic",
           dtype=None, heads_first: bool = False) -> np.ndarray:
    """``x @ dequant(w).T`` (``transpose=False``: ``x @ dequant(w)``), as
    ``mlx.core.quantized_matmul``: ``x [..., M, K]``; a batched ``w
    [..., rows, cols]`` broadcasts against x's leading dimensions; the result
    has the promoted dtype of x and the scales.

    ``out`` receives the result when given (it must have the result's shape
    and dtype). With ``stream`` (a ``qmetal.Stream``) the work is queued and
    the result is ready after ``stream.synchronize()``. ``route`` forces a
    kernel for tests and benchmarks (affine: ``qmv``, ``qmv_fast``,
    ``qmv_wide``, ``qvm``, ``qvm_split_k``, ``qmm``, ``qmm_split_k``,
    ``qmm_tensor``; GGML: ``mv``, ``mv_ext``, ``mm``, ``mm_split_k``, ``mv_id``, ``mm_id``,
    ``mm_tensor``, ``mm_id_tensor``; the ``*_tensor`` routes run Metal 4
    tensor operations, on the simulator or a GPU that reports them).

    For a ``GGMLWeight`` (always ``transpose=True``, as GGUF stores weights):
    the result is float32 unless ``dtype`` is the activations' dtype, and
    ``heads_first=True`` reads an attention output ``x [heads, M, head_dim]``
    as ``[M, heads * head_dim]`` without copying it (the O-projection).
    """
    transpose, route = _flag(transpose, "transpose"), _route(route)
    heads_first = _flag(heads_first, "heads_first")
    if isinstance(w, _ggml.GGMLWeight):
        if not transpose:
            raise ValueError("transpose: GGML weights are stored [N, K]; only transpose=True applies")
        device, native_stream = _stream_device(stream, device)
        out_buffer = _out_buffer(out, device, native_stream, [("x", x), ("w", w.data)])
        result = _ggml.matmul(x, w, device, native_stream, out_buffer, route, dtype, heads_first)
        return _finish(result, out, out_buffer)
    if dtype is not None or heads_first:
        raise ValueError("dtype and heads_first apply to GGML weights; affine results have MLX's promoted dtype")
    _check_weight(w)
    device, native_stream = _stream_device(stream, device)
    out_buffer = _out_buffer(out, device, native_stream, [("x", x), *_weight_arrays(w)])
    x_buffer, native = _promoted(x, w, device)
    result = _core.affine_matmul(device, x_buffer, native, transpose, out_buffer, route, native_stream)
    return _finish(result, out, out_buffer)


def _promoted(x, w, device):
    """x and w's scales in MLX's promoted dtype of the two (as MLX casts them)."""
    x_array, x_name = float_activations(x)
    name = _result_dtype(x_name, w._native.dtype)
    if x_name != name:
        x_array = x_array.astype(numpy_dtype(name))
    return asbuffer(x_array, device=device), w._with_dtype(name, device)


def _stream_device(stream, device):
    if stream is None:
        return _device(device), None
    if not isinstance(stream, Stream):
        raise TypeError(f"stream: expected a qmetal.Stream, got {type(stream).__name__}")
    if device is not None and device is not stream.device and device.name != stream.device.name:
        raise ValueError(f"stream: it belongs to {stream.device.name}, the op was asked to run on {device.name}")
    return stream.device, stream._native


def _out_buffer(out, device, native_stream, inputs=()):
    """``out`` as a Buffer, checked first. ``inputs`` are (name, array) the
    op reads: an ``out`` sharing memory with any of them is refused (the
    kernels would read what they write, or a weight would be overwritten)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if not out.flags.writeable:
        raise ValueError("out: the array is read-only")
    for name, value in inputs:
        if isinstance(value, _core.Buffer):
            value = np.asarray(value)
        if isinstance(value, np.ndarray) and np.may_share_memory(out, value):
            raise ValueError(f"out: shares memory with {name}; pass a separate array")
    buffer = asbuffer(out, device=device)
    if buffer.copied and native_stream is not None:
        raise ValueError("out: with a stream, out must be shareable without a copy (C-contiguous and aligned to "
                         f"{device.capabilities['wrap_alignment']} bytes)")
    return buffer


def _finish(result, out, out_buffer):
    if out is None:
        return np.asarray(result)
    if out_buffer.copied:  # out could not be shared: copy the result back
        out[...] = np.asarray(out_buffer)
    return out


def gather_matmul(x, w, lhs_indices=None, rhs_indices=None, transpose: bool = True,
                  sorted_indices: bool = False, out=None, stream=None, *, device=None,
                  route: str = "automatic", dtype=None) -> np.ndarray:
    """Mixture of experts, as ``mlx.core.gather_qmm``: experts stacked in
    ``w [E, ..., N, K]``, ``x [..., M, K]``; ``lhs_indices`` pick x's batch
    matrices and ``rhs_indices`` the experts (``None``: every one in order);
    they broadcast to a shape I and the result is ``I + (M, N)``. For top-k
    routing: ``x [tokens, 1, 1, K]`` and ``rhs_indices [tokens, k]`` give
    ``[tokens, k, 1, N]``. With one row per matrix and many of them, rows
    are sorted by expert so each expert's weights are decoded once for all
    its rows; ``sorted_indices=True`` says ``rhs_indices`` is sorted already
    (as in mlx; it is checked) and skips the sort.
    """
    transpose, route = _flag(transpose, "transpose"), _route(route)
    sorted_indices = _flag(sorted_indices, "sorted_indices")
    device, native_stream = _stream_device(stream, device)
    index_arrays = [(label, value) for label, value in (("lhs_indices", lhs_indices), ("rhs_indices", rhs_indices))]
    indices = []
    for label, value in (("lhs_indices", lhs_indices), ("rhs_indices", rhs_indices)):
        if value is None:
            indices.append(None)
            continue
        value = np.asarray(value)
        if value.dtype.kind not in "iu":
            raise TypeError(f"{label}: expected an integer dtype (uint32, as mlx uses), got {value.dtype}")
        indices.append(asbuffer(value, device=device))
    if isinstance(w, _ggml.GGMLWeight):
        if not transpose:
            raise ValueError("transpose: GGML weights are stored [N, K]; only transpose=True applies")
        out_buffer = _out_buffer(out, device, native_stream, [("x", x), ("w", w.data), *index_arrays])
        result = _ggml.gather_matmul(x, w, indices, device, native_stream, out_buffer, route, dtype)
        return _finish(result, out, out_buffer)
    if dtype is not None:
        raise ValueError("dtype applies to GGML weights; affine results have MLX's promoted dtype")
    _check_weight(w)
    out_buffer = _out_buffer(out, device, native_stream, [("x", x), *_weight_arrays(w), *index_arrays])
    x_buffer, native = _promoted(x, w, device)
    result = _core.affine_gather_matmul(device, x_buffer, native, *indices, transpose, bool(sorted_indices),
                                        out_buffer, route, native_stream)
    return _finish(result, out, out_buffer)


def _weight_arrays(w):
    return [("w.packed", w.packed), ("w.scales", w.scales), ("w.biases", w.biases)]


def _check_weight(w):
    if not isinstance(w, QuantizedWeight):
        raise TypeError("w: expected a qmetal.QuantizedWeight (see qmetal.quantize) or a qmetal.GGMLWeight, "
                        f"got {type(w).__name__}")
