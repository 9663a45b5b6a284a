// MoE (gather) affine kernels (see affine.h).
#include "affine.h"

QMETAL_AFFINE_INSTANTIATE(gather_qmv)
QMETAL_AFFINE_INSTANTIATE(gather_qvm)
QMETAL_AFFINE_INSTANTIATE(gather_qmm_t)
QMETAL_AFFINE_INSTANTIATE(gather_qmm_n)
QMETAL_AFFINE_INSTANTIATE(gather_qmm_sorted)
