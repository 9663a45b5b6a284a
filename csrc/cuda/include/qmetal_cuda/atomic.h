// MSL atomics on the CUDA target: every read-modify-write is a
// compare-and-swap loop on the value's 32- or 64-bit word (generic
// addresses, so device and threadgroup memory alike), like the simulator's
// (csrc/sim/include/qmetal_sim/atomic.h) over GCC's __atomic builtins.
// Metal's atomics are relaxed; these are too, at device scope.
#pragma once

#include "qmetal_cuda/types.h"

namespace metal {

enum memory_order {
  memory_order_relaxed,
  memory_order_acquire,
  memory_order_release,
  memory_order_acq_rel,
  memory_order_seq_cst,
};

template <class T>
struct atomic {
  T value;
};

using atomic_int = atomic<int>;
using atomic_uint = atomic<uint>;
using atomic_bool = atomic<bool>;
using atomic_long = atomic<long>;
using atomic_ulong = atomic<ulong>;
using atomic_float = atomic<float>;

namespace detail {

QMETAL_CUDA_FN uint32_t cas(uint32_t* p, uint32_t expected, uint32_t desired) {
#if QMETAL_CUDA_NVCC
  return atomicCAS(p, expected, desired);
#else
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
#endif
}
QMETAL_CUDA_FN uint64_t cas(uint64_t* p, uint64_t expected, uint64_t desired) {
#if QMETAL_CUDA_NVCC
  return atomicCAS(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(expected),
                   static_cast<unsigned long long>(desired));
#else
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
#endif
}

template <class T>
using word_t = std::conditional_t<sizeof(T) <= 4, uint32_t, uint64_t>;

// The word holding the value and the value's bit offset in it (bool takes one byte).
template <class T>
QMETAL_CUDA_FN word_t<T>* word_of(volatile atomic<T>* object, unsigned& shift) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(const_cast<T*>(&object->value));
  const uintptr_t aligned = address & ~uintptr_t(sizeof(word_t<T>) - 1);
  shift = unsigned(address - aligned) * 8;
  return reinterpret_cast<word_t<T>*>(aligned);
}

template <class T>
QMETAL_CUDA_FN T unpack(word_t<T> word, unsigned shift) {
  const auto bits = qmetal_cuda::bits_t<T>(word >> shift);
  return as_type<T>(bits);
}

template <class T>
QMETAL_CUDA_FN word_t<T> repack(word_t<T> word, unsigned shift, T value) {
  using W = word_t<T>;
  if constexpr (sizeof(T) == sizeof(W)) {
    (void)word;
    (void)shift;
    return W(as_type<qmetal_cuda::bits_t<T>>(value));
  } else {
    const W field = ((W(1) << (8 * sizeof(T))) - 1) << shift;
    return (word & ~field) | ((W(as_type<qmetal_cuda::bits_t<T>>(value)) << shift) & field);
  }
}

// Applies f to the stored value atomically; returns the value before.
template <class T, class F>
QMETAL_CUDA_FN T update(volatile atomic<T>* object, F f) {
  unsigned shift;
  auto* word = word_of(object, shift);
  auto old = *static_cast<volatile word_t<T>*>(word);
  for (;;) {
    const auto desired = repack<T>(old, shift, f(unpack<T>(old, shift)));
    const auto seen = cas(word, old, desired);
    if (seen == old) return unpack<T>(old, shift);
    old = seen;
  }
}

}  // namespace detail

template <class T, class U>
QMETAL_CUDA_FN void atomic_store_explicit(volatile atomic<T>* object, U desired, memory_order) {
  const T value = T(desired);
  detail::update(object, [&](T) { return value; });
}

template <class T>
QMETAL_CUDA_FN T atomic_load_explicit(const volatile atomic<T>* object, memory_order) {
  return *static_cast<const volatile T*>(&object->value);
}

template <class T, class U>
QMETAL_CUDA_FN T atomic_exchange_explicit(volatile atomic<T>* object, U desired, memory_order) {
  const T value = T(desired);
  return detail::update(object, [&](T) { return value; });
}

template <class T, class U>
QMETAL_CUDA_FN bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* object, T* expected, U desired,
                                                          memory_order, memory_order) {
  const T want = *expected, value = T(desired);
  bool swapped = false;
  const T before = detail::update(object, [&](T current) {
    swapped = as_type<qmetal_cuda::bits_t<T>>(current) == as_type<qmetal_cuda::bits_t<T>>(want);
    return swapped ? value : current;
  });
  if (!swapped) *expected = before;
  return swapped;
}

template <class T, class U>
QMETAL_CUDA_FN bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* object, T* expected, U desired,
                                                            memory_order s, memory_order f) {
  return atomic_compare_exchange_weak_explicit(object, expected, desired, s, f);
}

#define QMETAL_CUDA_ATOMIC_FETCH(name, expr)                                                            \
  template <class T, class U>                                                                           \
  QMETAL_CUDA_FN T atomic_fetch_##name##_explicit(volatile atomic<T>* object, U operand, memory_order) { \
    const T b = T(operand);                                                                             \
    return detail::update(object, [&](T a) { return T(expr); });                                        \
  }

QMETAL_CUDA_ATOMIC_FETCH(add, a + b)
QMETAL_CUDA_ATOMIC_FETCH(sub, a - b)
QMETAL_CUDA_ATOMIC_FETCH(and, a & b)
QMETAL_CUDA_ATOMIC_FETCH(or, a | b)
QMETAL_CUDA_ATOMIC_FETCH(xor, a ^ b)
QMETAL_CUDA_ATOMIC_FETCH(min, b < a ? b : a)
QMETAL_CUDA_ATOMIC_FETCH(max, a < b ? b : a)
#undef QMETAL_CUDA_ATOMIC_FETCH

}  // namespace metal
