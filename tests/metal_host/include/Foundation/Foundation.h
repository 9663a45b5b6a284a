// Stand-in for <Foundation/Foundation.h> in the Linux syntax check.
#include "../../metal_api.h"
