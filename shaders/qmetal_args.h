// Argument structs and binding slots shared by the host (C++) and the kernels
// (MSL). Every kernel family takes one struct at kArgsBufferIndex (the host
// sets it with setBytes); its buffers follow at fixed indices from
// kFirstDataBufferIndex on. Keep this header plain: fixed-width integer and
// float members only, no pointers, so both compilers lay structs out alike.
#pragma once

#ifdef __METAL_VERSION__
#include <metal_stdlib>
#define QMETAL_CONSTEXPR constant constexpr
#else
#include <cstdint>
#define QMETAL_CONSTEXPR inline constexpr
#endif

namespace qmetal_args {

QMETAL_CONSTEXPR uint32_t kArgsBufferIndex = 0;
QMETAL_CONSTEXPR uint32_t kFirstDataBufferIndex = 1;
QMETAL_CONSTEXPR uint32_t kSimdWidth = 32;

}  // namespace qmetal_args
