"""qmetal: quantized matrix multiplication for LLM inference on Apple-silicon GPUs.

Buffers are shared with NumPy without copies; ``qmetal.reference`` holds the
NumPy reference formats (MLX affine and GGML blocks) that the kernels are
tested against.
"""

from __future__ import annotations

import os as _os

from . import _core
from ._buffer import asbuffer, empty, zeros
from ._core import Buffer, Device, DispatchPlan, available_backends, default_device, get_device
from . import reference
from ._affine import QuantizedWeight, Stream, dequantize, gather_matmul, matmul, quantize
from ._ggml import GGML_TYPE_NAMES, GGMLWeight
from ._gguf import GGUFFile, load_gguf

__version__ = _core.__version__

__all__ = [
    "Buffer",
    "Device",
    "DispatchPlan",
    "GGML_TYPE_NAMES",
    "GGMLWeight",
    "GGUFFile",
    "QuantizedWeight",
    "Stream",
    "asbuffer",
    "available_backends",
    "default_device",
    "dequantize",
    "empty",
    "gather_matmul",
    "get_device",
    "get_include",
    "get_library",
    "load_gguf",
    "matmul",
    "quantize",
    "reference",
    "zeros",
]


def get_include() -> str:
    """The folder holding the C++ headers (``#include <qmetal/qmetal.h>``)."""
    return _os.path.join(_os.path.dirname(__file__), "include")


def get_library(name: str = "core") -> str:
    """A static C++ library to link with those headers: ``"core"`` (buffers,
    devices, plans, the planner), ``"sim"`` (the simulator and the built-in
    kernels; needs core, threads and libdl) or ``"ops"`` (the ops; needs sim
    and core). Link order: ops, sim, core."""
    if name not in ("core", "sim", "ops"):
        raise ValueError(f"name: expected 'core', 'sim' or 'ops', got {name!r}")
    return _os.path.join(_os.path.dirname(__file__), "lib", f"libqmetal_{name}.a")
