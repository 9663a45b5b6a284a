// GGML mat-vec and small-batch kernels (see ggml.h).
#include "ggml.h"

QMETAL_GGML_INSTANTIATE(mul_mv)
QMETAL_GGML_INSTANTIATE(mul_mv_ext)
QMETAL_GGML_INSTANTIATE(mul_mv_id)
