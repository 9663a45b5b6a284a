// Affine quantize / dequantize kernels (see affine.h).
#include "affine.h"

QMETAL_AFFINE_INSTANTIATE(quantize)
QMETAL_AFFINE_INSTANTIATE(dequantize)
