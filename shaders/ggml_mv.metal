// GGML mat-vec kernels, dense and MoE (see ggml.h).
#include "ggml.h"

QMETAL_GGML_INSTANTIATE(mul_mv)
QMETAL_GGML_INSTANTIATE(mul_mv_id)
