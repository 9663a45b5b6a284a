// The simulator's stand-in for MetalPerformancePrimitives: the subset of
// mpp::tensor_ops qmetal uses, matmul2d (qmetal_sim/tensor_ops.h). Apple's
// header is wrapped in `#if defined(__METAL_VERSION__) &&
// defined(__HAVE_TENSOR__)`, so under metal3.x the namespace is missing and
// `using namespace mpp::tensor_ops` fails; this one behaves the same.
#include "qmetal_sim/metal.h"
#if defined(__HAVE_TENSOR__)
#if defined(QMETAL_SIM_SCAN)
#pragma qmetal_sim_requires tensor_ops
#else
#include "qmetal_sim/tensor_ops.h"
#endif
#endif
