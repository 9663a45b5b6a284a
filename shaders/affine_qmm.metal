// Tiled mat-mat affine kernels (see affine.h).
#include "affine.h"

QMETAL_AFFINE_INSTANTIATE(qmm_t)
QMETAL_AFFINE_INSTANTIATE(qmm_n)
