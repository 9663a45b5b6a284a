// Macros Apple's Metal compiler and <metal_stdlib> define that kernels test or
// expand: feature tests (__HAVE_*), METAL_FUNC and the math-mode flags passed
// to the __metal_* builtins (qmetal_sim/builtins.h). Unlike the rest of the
// shim these are defined while the generator scans a .metal file too, since
// they must expand in the kernel's own text.
#pragma once

// Apple's METAL_FUNC also forces inlining; the simulator leaves that to the
// compiler (same meaning, and gdb can still step into the functions).
#define METAL_FUNC inline

#if defined(__METAL_VERSION__) && __METAL_VERSION__ >= 310
#define __HAVE_BFLOAT__ 1
#endif

// The last argument of the __metal_* math builtins: fast or precise. The
// simulator computes every function precisely whatever the flag says.
#define __METAL_FAST_MATH__ true
#define __METAL_PRECISE_MATH__ false
#define __METAL_MAYBE_FAST_MATH__ __METAL_FAST_MATH__
