// MSL atomics. Threadgroups run in parallel on OS threads, so device-memory
// atomics are real atomics; floats and min/max use compare-and-swap loops.
#pragma once

#include "qmetal_sim/types.h"

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

// Metal's atomics are relaxed; sequential consistency is the safe superset.
inline constexpr int kOrder = __ATOMIC_SEQ_CST;

template <class T, class F>
T update(volatile atomic<T>* object, F f) {
  T* value = const_cast<T*>(&object->value);
  T expected;
  __atomic_load(value, &expected, kOrder);
  T desired = f(expected);
  while (!__atomic_compare_exchange(value, &expected, &desired, false, kOrder, kOrder)) desired = f(expected);
  return expected;
}

}  // namespace detail

template <class T, class U>
void atomic_store_explicit(volatile atomic<T>* object, U desired, memory_order) {
  T value = T(desired);
  __atomic_store(const_cast<T*>(&object->value), &value, detail::kOrder);
}

template <class T>
T atomic_load_explicit(const volatile atomic<T>* object, memory_order) {
  T value;
  __atomic_load(const_cast<T*>(&object->value), &value, detail::kOrder);
  return value;
}

template <class T, class U>
T atomic_exchange_explicit(volatile atomic<T>* object, U desired, memory_order) {
  T value = T(desired), previous;
  __atomic_exchange(const_cast<T*>(&object->value), &value, &previous, detail::kOrder);
  return previous;
}

template <class T, class U>
bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* object, T* expected, U desired, memory_order,
                                           memory_order) {
  T value = T(desired);
  return __atomic_compare_exchange(const_cast<T*>(&object->value), expected, &value, false, detail::kOrder,
                                   detail::kOrder);
}

template <class T, class U>
bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* object, T* expected, U desired, memory_order s,
                                             memory_order f) {
  return atomic_compare_exchange_weak_explicit(object, expected, desired, s, f);
}

#define QMETAL_SIM_ATOMIC_FETCH(name, expr)                                                 \
  template <class T, class U>                                                               \
  T atomic_fetch_##name##_explicit(volatile atomic<T>* object, U operand, memory_order) {   \
    const T b = T(operand);                                                                 \
    return detail::update(object, [&](T a) { return T(expr); });                           \
  }

QMETAL_SIM_ATOMIC_FETCH(add, a + b)
QMETAL_SIM_ATOMIC_FETCH(sub, a - b)
QMETAL_SIM_ATOMIC_FETCH(and, a & b)
QMETAL_SIM_ATOMIC_FETCH(or, a | b)
QMETAL_SIM_ATOMIC_FETCH(xor, a ^ b)
QMETAL_SIM_ATOMIC_FETCH(min, b < a ? b : a)
QMETAL_SIM_ATOMIC_FETCH(max, a < b ? b : a)
#undef QMETAL_SIM_ATOMIC_FETCH

}  // namespace metal
