"""NumPy reference formats: MLX affine quantization and GGML blocks, and the
float64 matmuls the kernels are tested against."""

from .affine import AFFINE_BITS, AFFINE_GROUP_SIZES, affine_dequantize, affine_quantize, pack_bits, unpack_bits

__all__ = [
    "AFFINE_BITS",
    "AFFINE_GROUP_SIZES",
    "affine_dequantize",
    "affine_quantize",
    "pack_bits",
    "unpack_bits",
]
