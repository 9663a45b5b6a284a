// GGML tiled mat-mat kernels, dense and MoE (see ggml.h).
#include "ggml.h"

QMETAL_GGML_INSTANTIATE(mul_mm)
QMETAL_GGML_INSTANTIATE(mul_mm_id)
