// Tiled mat-mat affine kernels (see affine.h).
#include "affine.h"

QMETAL_AFFINE_INSTANTIATE(qmm_t)
QMETAL_AFFINE_INSTANTIATE(qmm_n)
QMETAL_AFFINE_INSTANTIATE(qmm_t_split)
QMETAL_AFFINE_INSTANTIATE(qmm_n_split)

// Named affine_sum_partials_<dtype>: it depends on neither bits nor group size.
#define QMETAL_SUM_PARTIALS(type, type_name) \
  template [[host_name("affine_sum_partials_" #type_name)]] [[kernel]] \
  decltype(affine_sum_partials<type>) affine_sum_partials<type>;
QMETAL_SUM_PARTIALS(float, float32)
QMETAL_SUM_PARTIALS(half, float16)
QMETAL_SUM_PARTIALS(bfloat, bfloat16)
