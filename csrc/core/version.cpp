#include "qmetal/qmetal.h"

#ifndef QMETAL_VERSION
#error "the build must define QMETAL_VERSION"
#endif

namespace qmetal {
const char* version() { return QMETAL_VERSION; }
}  // namespace qmetal
