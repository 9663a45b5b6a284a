// Mat-vec and small-batch affine kernels (see affine.h).
#include "affine.h"

QMETAL_AFFINE_INSTANTIATE(qmv)
QMETAL_AFFINE_INSTANTIATE(qmv_fast)
QMETAL_AFFINE_INSTANTIATE(qmv_wide_r2)
QMETAL_AFFINE_INSTANTIATE(qmv_wide_r4)
QMETAL_AFFINE_INSTANTIATE(qvm)
QMETAL_AFFINE_INSTANTIATE(qvm_split)
