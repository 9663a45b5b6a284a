// Stand-in for <Metal/Metal.h> in the Linux syntax check.
#include "../../metal_api.h"
