// GGML small-batch kernels, one per x rows per threadgroup (see ggml.h).
#include "ggml.h"

QMETAL_GGML_INSTANTIATE(mul_mv_ext_r2)
QMETAL_GGML_INSTANTIATE(mul_mv_ext_r3)
QMETAL_GGML_INSTANTIATE(mul_mv_ext_r4)
