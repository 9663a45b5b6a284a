// GGML tiled mat-mat kernels, dense and MoE (see ggml.h).
#include "ggml.h"

QMETAL_GGML_INSTANTIATE(mul_mm)
QMETAL_GGML_INSTANTIATE_FLOAT_OUT(mul_mm_split)
QMETAL_GGML_INSTANTIATE(mul_mm_id)
