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
from . import dwq
from .dwq import matmul_vjp
from ._ggml import GGML_TYPE_NAMES, GGMLWeight
from ._gguf import GGUFFile, load_gguf
from ._mlx import MLXModel, SafetensorsFile, load_mlx, load_safetensors

__version__ = _core.__version__

__all__ = [
    "Buffer",
    "Device",
    "DispatchPlan",
    "GGML_TYPE_NAMES",
    "GGMLWeight",
    "GGUFFile",
    "MLXModel",
    "QuantizedWeight",
    "SafetensorsFile",
    "Stream",
    "asbuffer",
    "available_backends",
    "cmake_dir",
    "default_device",
    "dequantize",
    "dwq",
    "empty",
    "gather_matmul",
    "get_device",
    "get_include",
    "get_library",
    "load_gguf",
    "load_mlx",
    "load_safetensors",
    "matmul",
    "matmul_vjp",
    "quantize",
    "reference",
    "zeros",
]


def cmake_dir() -> str:
    """The folder holding qmetal's CMake package (``qmetalConfig.cmake``):
    pass it as ``-Dqmetal_DIR=...`` to ``find_package(qmetal CONFIG)``, which
    gives the target ``qmetal::qmetal`` (headers, libraries, threads, libdl
    and on macOS the frameworks). ``python -m qmetal --cmake_dir`` prints it."""
    return _os.path.join(_data_dir(), "lib", "cmake", "qmetal")


def _data_dir() -> str:
    """Where the build installed the headers and libraries: beside the
    extension module (in an editable install the Python sources live
    elsewhere, the built files stay with _core)."""
    return _os.path.dirname(_os.path.abspath(_core.__file__))


def get_include() -> str:
    """The folder holding the C++ headers (``#include <qmetal/qmetal.h>``)."""
    return _os.path.join(_data_dir(), "include")


def get_library(name: str = "core") -> str:
    """A static C++ library to link with those headers: ``"core"`` (buffers,
    devices, plans, the planner), ``"sim"`` (the simulator and the built-in
    kernels; needs core, threads and libdl) or ``"ops"`` (the ops; needs sim
    and core). Link order: ops, sim, core."""
    if name not in ("core", "sim", "ops"):
        raise ValueError(f"name: expected 'core', 'sim' or 'ops', got {name!r}")
    return _os.path.join(_data_dir(), "lib", f"libqmetal_{name}.a")
