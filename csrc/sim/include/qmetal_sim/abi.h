// The interface between the simulator's runtime (the executor, inside the
// qmetal library) and kernels compiled from .metal (built in, or a user's
// library loaded at run time). Kernels reach the runtime only through the
// function table below, so a library compiled separately never needs the
// executor's symbols; bump kAbiVersion whenever anything here changes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qmetal::sim::abi {

inline constexpr uint32_t kAbiVersion = 3;

struct Uint3 {
  uint32_t x = 1, y = 1, z = 1;
};

// The thread-position attributes a kernel can ask for.
struct ThreadIds {
  Uint3 thread_position_in_threadgroup;
  Uint3 threadgroup_position_in_grid;
  Uint3 thread_position_in_grid;
  Uint3 threads_per_threadgroup;
  Uint3 threadgroups_per_grid;
  Uint3 threads_per_grid;
  uint32_t thread_index_in_threadgroup = 0;
  uint32_t thread_index_in_simdgroup = 0;
  uint32_t simdgroup_index_in_threadgroup = 0;
  uint32_t threads_per_simdgroup = 32;
  uint32_t simdgroups_per_threadgroup = 0;
};

// Where a barrier or collective was called: the .metal line (through line
// markers) and the operation, so divergence reports can name both sides.
struct Site {
  const char* file = "";
  uint32_t line = 0;
  uint32_t column = 0;
  const char* op = "";
};

// The type of a function constant as the kernel declares it.
enum ValueKind : uint32_t { kBool, kSigned, kUnsigned, kFloat, kBfloat };

struct Runtime {
  uint32_t abi_version;
  void (*barrier)(const Site* site);
  // Every live lane of the simdgroup gives `bytes`; `all_lanes` receives the
  // 32 lanes' values in lane order, 0xFF bytes for lanes not live. Returns
  // the mask of live lanes.
  uint32_t (*simd_exchange)(const void* value, size_t bytes, void* all_lanes, const Site* site);
  void* (*threadgroup_variable)(const void* declaration, size_t bytes, size_t alignment);
  const ThreadIds* (*thread_ids)();
  // Writes the launch's value for function constant `index`, converted to
  // the kernel's type (`kind`, `bytes`), into `out`; returns whether the
  // launch defines it (out is left alone if not).
  bool (*function_constant)(uint32_t index, uint32_t kind, void* out, size_t bytes);
  // Libraries built for race checks report every load and store of kernel
  // code here (`pc`: the instruction's return address, for the .metal line).
  void (*memory_access)(const void* address, size_t bytes, uint32_t is_write, const void* pc);
  // Stops the launch with an error naming `site` (the .metal line): for
  // faults the shim detects that a GPU would leave undefined, such as a
  // Metal 4 tensor op run by a threadgroup of the wrong size. Never returns.
  void (*fail)(const char* message, const Site* site);
};

using Invoke = void (*)(void* const* buffers, const ThreadIds* ids, void* const* threadgroup_args);

struct Kernel {
  const char* name;              // host name
  Invoke invoke;
  const uint32_t* buffers;       // [[buffer(i)]] indices the kernel binds
  uint32_t buffer_count;
  const uint32_t* threadgroup;   // [[threadgroup(i)]] indices
  uint32_t threadgroup_count;
  const char* file;              // where the kernel is defined
  uint32_t line;
  // Per entry of `buffers`: the bytes a reference parameter needs (sizeof
  // its struct; 0 for pointers), and whether the kernel may write through it.
  const uint32_t* buffer_min_bytes;
  const uint8_t* buffer_writable;
};

enum LibraryFlags : uint32_t { kRaceInstrumented = 1 };

struct Library {
  uint32_t abi_version;
  uint32_t kernel_count;
  const Kernel* kernels;
  uint32_t flags;  // LibraryFlags
};

// A library compiled at run time exports this (C linkage); built-in kernels
// use the same shape under per-file names.
using LibraryEntry = const Library* (*)(const Runtime* runtime);
inline constexpr const char* kLibraryEntryName = "qmetal_sim_library";

}  // namespace qmetal::sim::abi
