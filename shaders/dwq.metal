// DWQ kernels: initialisation, gradients from dw, and the fused gradient
// from activations and the output gradient (see dwq.h).
#include "dwq.h"

QMETAL_DWQ_TYPED(init, float, float32)
QMETAL_DWQ_TYPED(init, half, float16)
QMETAL_DWQ_TYPED(init, bfloat, bfloat16)
QMETAL_DWQ_INSTANTIATE(grads)
QMETAL_DWQ_INSTANTIATE(vjp)
