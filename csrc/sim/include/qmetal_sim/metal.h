// What every <metal_*> header of the simulator includes. While the generator
// scans a .metal file (QMETAL_SIM_SCAN) it holds only the macros Apple
// predefines, so the scan sees the kernel's own text with its macros
// expanded; the generated C++ includes prelude.h itself.
#pragma once

#include "qmetal_sim/predefined.h"

#ifndef QMETAL_SIM_SCAN
#include "qmetal_sim/prelude.h"
#endif
