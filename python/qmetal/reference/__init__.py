"""NumPy reference formats: MLX affine quantization and GGML blocks, and the
float64 matmuls the kernels are tested against."""

from .affine import AFFINE_BITS, AFFINE_GROUP_SIZES, affine_dequantize, affine_quantize, pack_bits, unpack_bits
from .matmul import affine_gather_matmul, affine_matmul, ggml_gather_matmul, ggml_matmul
from .ggml import (
    GGML_QUANTIZABLE_TYPES,
    GGML_QUANTIZED_TYPES,
    GGML_TYPES,
    GGMLType,
    ggml_dequantize,
    ggml_nbytes,
    ggml_quantize,
    ggml_type,
)

__all__ = [
    "AFFINE_BITS",
    "AFFINE_GROUP_SIZES",
    "GGML_QUANTIZABLE_TYPES",
    "GGML_QUANTIZED_TYPES",
    "GGML_TYPES",
    "GGMLType",
    "affine_dequantize",
    "affine_gather_matmul",
    "affine_matmul",
    "affine_quantize",
    "ggml_dequantize",
    "ggml_gather_matmul",
    "ggml_matmul",
    "ggml_nbytes",
    "ggml_quantize",
    "ggml_type",
    "pack_bits",
    "unpack_bits",
]
