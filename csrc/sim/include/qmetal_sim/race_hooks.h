// The hooks ThreadSanitizer's instrumentation calls, defined by the kernel
// library itself: a library compiled for race checks (-fsanitize=thread,
// linked without TSan's runtime) reports every load and store to the
// simulator's race detector, which knows what TSan cannot: simulated threads
// are fibers, and only threadgroup barriers (and, within a simdgroup, its
// collectives) order their memory accesses. Atomics are performed, not
// checked: they are synchronization, never a race.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "qmetal_sim/abi.h"

#define QMETAL_SIM_UNINSTRUMENTED extern "C" __attribute__((visibility("hidden"), no_sanitize_thread, used))

namespace qmetal_sim {
extern const ::qmetal::sim::abi::Runtime* runtime;

__attribute__((no_sanitize_thread, always_inline)) inline void report_access(const volatile void* address,
                                                                             size_t bytes, uint32_t is_write,
                                                                             const void* pc) {
  if (runtime != nullptr) runtime->memory_access(const_cast<const void*>(address), bytes, is_write, pc);
}
}  // namespace qmetal_sim

QMETAL_SIM_UNINSTRUMENTED void __tsan_init() {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_func_entry(void*) {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_func_exit() {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_ignore_thread_begin() {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_ignore_thread_end() {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_vptr_read(void**) {}
QMETAL_SIM_UNINSTRUMENTED void __tsan_vptr_update(void**, void*) {}

#define QMETAL_SIM_ACCESS_HOOKS(size)                                                                          \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_read##size(void* a) {                                                 \
    qmetal_sim::report_access(a, size, 0, __builtin_return_address(0));                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_write##size(void* a) {                                                \
    qmetal_sim::report_access(a, size, 1, __builtin_return_address(0));                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_unaligned_read##size(void* a) {                                       \
    qmetal_sim::report_access(a, size, 0, __builtin_return_address(0));                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_unaligned_write##size(void* a) {                                      \
    qmetal_sim::report_access(a, size, 1, __builtin_return_address(0));                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_read##size##_pc(void* a, void* pc) { qmetal_sim::report_access(a, size, 0, pc); } \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_write##size##_pc(void* a, void* pc) { qmetal_sim::report_access(a, size, 1, pc); }
QMETAL_SIM_ACCESS_HOOKS(1)
QMETAL_SIM_ACCESS_HOOKS(2)
QMETAL_SIM_ACCESS_HOOKS(4)
QMETAL_SIM_ACCESS_HOOKS(8)
QMETAL_SIM_ACCESS_HOOKS(16)
#undef QMETAL_SIM_ACCESS_HOOKS

QMETAL_SIM_UNINSTRUMENTED void __tsan_read_range(void* a, unsigned long size) {
  qmetal_sim::report_access(a, size, 0, __builtin_return_address(0));
}
QMETAL_SIM_UNINSTRUMENTED void __tsan_write_range(void* a, unsigned long size) {
  qmetal_sim::report_access(a, size, 1, __builtin_return_address(0));
}
QMETAL_SIM_UNINSTRUMENTED void* __tsan_memcpy(void* dst, const void* src, size_t n) {
  qmetal_sim::report_access(src, n, 0, __builtin_return_address(0));
  qmetal_sim::report_access(dst, n, 1, __builtin_return_address(0));
  return __builtin_memcpy(dst, src, n);
}
QMETAL_SIM_UNINSTRUMENTED void* __tsan_memmove(void* dst, const void* src, size_t n) {
  qmetal_sim::report_access(src, n, 0, __builtin_return_address(0));
  qmetal_sim::report_access(dst, n, 1, __builtin_return_address(0));
  return __builtin_memmove(dst, src, n);
}
QMETAL_SIM_UNINSTRUMENTED void* __tsan_memset(void* dst, int c, size_t n) {
  qmetal_sim::report_access(dst, n, 1, __builtin_return_address(0));
  return __builtin_memset(dst, c, n);
}

// Atomics: done sequentially consistent (at least as strong as asked).
#define QMETAL_SIM_ATOMIC_HOOKS(bits, T)                                                                      \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_load(const volatile T* a, int) {                          \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                               \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED void __tsan_atomic##bits##_store(volatile T* a, T v, int) {                       \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                                  \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_exchange(volatile T* a, T v, int) {                       \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int) {                      \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                         \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int) {                      \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                                         \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_and(volatile T* a, T v, int) {                      \
    return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                                         \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_or(volatile T* a, T v, int) {                       \
    return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                                          \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_xor(volatile T* a, T v, int) {                      \
    return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                                         \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_fetch_nand(volatile T* a, T v, int) {                     \
    return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                                        \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) { \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                    \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) { \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                    \
  }                                                                                                            \
  QMETAL_SIM_UNINSTRUMENTED T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T c, T v, int, int) {  \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                          \
    return c;                                                                                                  \
  }
QMETAL_SIM_ATOMIC_HOOKS(8, uint8_t)
QMETAL_SIM_ATOMIC_HOOKS(16, uint16_t)
QMETAL_SIM_ATOMIC_HOOKS(32, uint32_t)
QMETAL_SIM_ATOMIC_HOOKS(64, uint64_t)
#undef QMETAL_SIM_ATOMIC_HOOKS

QMETAL_SIM_UNINSTRUMENTED void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
QMETAL_SIM_UNINSTRUMENTED void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
