"""DWQ (distilled weight quantization): the GPU primitives to train a
quantized layer's scales and biases with its integer codes frozen, as
mlx-lm's ``dwq.py`` does.

- ``init(w, bits, group_size)``: per-group min/max initialisation, unpacked
  ``uint8`` codes and float32 scales and biases, on the device.
- ``grads(qw, dw)``: the scale and bias gradients from a weight gradient.
- ``matmul_vjp(x, qw, dy)`` (also ``qmetal.matmul_vjp``): the
  vector-Jacobian product of ``qmetal.matmul`` with respect to x and the
  scales and biases, whose scale / bias part comes straight from x and dy
  without storing the weight gradient ``dW [N, K]``.

Every argument is checked (``TypeError`` / ``ValueError`` naming it) before
any work is queued.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._affine import QuantizedWeight, _device, _flag, _format_argument, _result_dtype
from ._buffer import asbuffer
from ._dtypes import dtype_name, float_activations, float_array, numpy_dtype

__all__ = ["QuantizedWeight", "grads", "init", "matmul_vjp"]


def init(w, bits: int = 4, group_size: int = 64, *, device=None) -> QuantizedWeight:
    """Quantize a float weight ``w [..., N, K]`` (float32, float16 or
    bfloat16) per group of ``group_size`` values along K::

        scale = (max - min) / (2**bits - 1);  bias = min
        code  = clip(round((w - bias) / scale), 0, 2**bits - 1)

    in float32, rounding ties to even (as ``mx.quantize``). A constant group
    (max == min) gets scale 1.0: its codes are all 0, so it is exact, and
    its scale gradient is 0. ``bits`` 1..8; ``group_size`` a power of two
    from 2 to 1024 dividing K. Returns an unpacked ``QuantizedWeight``
    (``.codes`` uint8 ``[..., N, K]``, float32 ``.scales`` / ``.biases``)."""
    device = _device(device)
    w = float_array(w, "w")
    bits, group_size = _format_argument(bits, "bits"), _format_argument(group_size, "group_size")
    return QuantizedWeight(_core.dwq_init(device, asbuffer(w, device=device), bits, group_size))


def grads(qw, dw, *, device=None):
    """``(d_scales, d_biases)`` from a weight gradient ``dw`` (the weight's
    shape ``[..., N, K]``, any float dtype)::

        d_scales[g] = sum over i in g of code[i] * dw[i]
        d_biases[g] = sum over i in g of dw[i]

    per-group tree reductions in float32, returned in the scales' dtype.
    Any affine weight (unpacked or MLX-packed)."""
    _check_affine(qw, "qw")
    device = _device(device)
    dw = float_array(dw, "dw")
    d_scales, d_biases = _core.dwq_grads(device, qw._native, asbuffer(dw, device=device))
    return _as(d_scales, qw.dtype), _as(d_biases, qw.dtype)


def matmul_vjp(x, w, dy, transpose: bool = True, *, device=None):
    """The vector-Jacobian product of ``qmetal.matmul(x, w, transpose)``
    (``mx.quantized_matmul``) at the output gradient ``dy``, with respect to
    ``x`` and ``w``'s scales and biases: ``(dx, d_scales, d_biases)``.

    For transposed weights ``w [..., N, K]`` (groups along K)::

        d_scales[n, g] = sum_m dy[m, n] * sum_{k in g} x[m, k] * code[n, k]
        d_biases[n, g] = sum_m dy[m, n] * sum_{k in g} x[m, k]

    and with ``transpose=False`` (``w [..., K, N]``, groups along N) the
    same with the roles of x and dy exchanged. The weight gradient
    ``dW = dy^T x`` is formed tile by tile on the device and reduced with
    the codes at once; it is never stored. ``dx`` runs on the matmul
    kernels (``dy @ dequant(w)``). x and dy are cast to the result's dtype
    (MLX's promotion of x and the scales) as the matmul does; the
    gradients come back as MLX's vjp gives them: dx in x's dtype,
    d_scales and d_biases in the scales' dtype. A batched ``w`` broadcasts
    against x as in the matmul; dx is summed over the dimensions x was
    broadcast along, and each weight matrix's gradients over the output
    matrices that read it. Group sizes 32, 64, 128."""
    transpose = _flag(transpose, "transpose")
    _check_affine(w, "w")
    device = _device(device)
    x_array, x_name = float_activations(x)
    dy = np.asarray(dy)
    if dtype_name(dy.dtype, "dy") not in ("float32", "float16", "bfloat16"):
        raise TypeError(f"dy: expected float32, float16 or bfloat16, got {dy.dtype}")
    y_shape = tuple(_core.affine_matmul_shape(list(x_array.shape), w._native, transpose))
    if dy.shape != y_shape:
        raise ValueError(f"dy: expected the shape of matmul(x, w) {y_shape}, got {dy.shape}")
    name = _result_dtype(x_name, w._native.dtype)
    compute = numpy_dtype(name)
    native = w._with_dtype(name, device)

    x_run, dy_run, reduce = x_array, dy, None
    if len(w.shape) > 2:
        # The device op takes x with the result's batch dimensions: broadcast
        # it (a copy, as the matmul's result is) and sum dx back afterwards.
        vector = x_array.ndim == 1
        x_matrix = x_array[None, :] if vector else x_array
        batch = y_shape[:-1] if vector else y_shape[:-2]
        full = (*batch, *x_matrix.shape[-2:])
        if x_matrix.shape != full:
            x_run = np.broadcast_to(x_matrix, full)
            reduce = (x_array.shape, x_matrix.shape)
        elif vector:
            x_run = x_matrix
            reduce = (x_array.shape, x_matrix.shape)
        if vector:
            dy_run = dy.reshape(*batch, 1, y_shape[-1])
    x_run = np.ascontiguousarray(x_run, dtype=compute)
    dy_run = np.ascontiguousarray(dy_run, dtype=compute)
    dx, d_scales, d_biases = _core.dwq_matmul_vjp(device, asbuffer(x_run, device=device), native,
                                                  asbuffer(dy_run, device=device), transpose)
    dx = np.asarray(dx)
    if reduce is not None:
        dx = _sum_to(dx, *reduce)
    return _as(dx, x_array.dtype), _as(d_scales, w.dtype), _as(d_biases, w.dtype)


def _sum_to(dx, x_shape, matrix_shape):
    """dx summed (in float32) over the dimensions x [..., M, K] was broadcast
    along, back to x's shape."""
    lead = dx.ndim - len(matrix_shape)
    axes = tuple(range(lead)) + tuple(lead + d for d, n in enumerate(matrix_shape[:-2])
                                      if n == 1 and dx.shape[lead + d] != 1)
    summed = dx.astype(np.float32).sum(axis=axes, keepdims=True) if axes else dx
    return summed.reshape(x_shape)


def _check_affine(w, what):
    if not isinstance(w, QuantizedWeight):
        raise TypeError(f"{what}: expected an affine qmetal.QuantizedWeight (qmetal.dwq.init, qmetal.quantize, "
                        f"QuantizedWeight.from_codes or .from_arrays), got {type(w).__name__}")


def _as(array, dtype):
    return np.asarray(array).astype(dtype, copy=False)
