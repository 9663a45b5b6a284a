// Barriers, simdgroup and quadgroup collectives, and simdgroup matrices.
// Every collective is one exchange through the runtime, which completes it
// once every live lane of the simdgroup is at the same call site and reports
// divergence otherwise. Values read from lanes that are not live (returned,
// or past the end of a partial simdgroup) are 0xFF bytes, as threadgroup
// memory is, so that kernels relying on them produce NaN or -1.
#pragma once

#include "qmetal_sim/math.h"

namespace qmetal_sim {

inline constexpr unsigned kSimdWidth = 32;
inline constexpr unsigned kQuadWidth = 4;

inline const abi::ThreadIds& ids() { return *runtime->thread_ids(); }

template <class T>
T poisoned() {
  T t;
  std::memset(static_cast<void*>(&t), 0xFF, sizeof t);
  return t;
}

template <class T>
struct Lanes {
  T value[kSimdWidth];
  uint32_t active;
  uint32_t lane;
  bool live(unsigned i) const { return i < kSimdWidth && (active >> i & 1u); }
};

template <class T>
Lanes<T> exchange(const T& x, const Here& here, const char* op) {
  Lanes<T> l;  // the runtime fills every slot, 0xFF for lanes not live
  const abi::Site site = here.site(op);
  l.active = runtime->simd_exchange(&x, sizeof(T), l.value, &site);
  l.lane = ids().thread_index_in_simdgroup;
  return l;
}

// A collective with no data: every live lane must reach it.
inline uint32_t simd_sync(const Here& here, const char* op) { return exchange(char(0), here, op).active; }

// Reduction over the live lanes of the caller's group (the simdgroup, W = 32,
// or its quad, W = 4), pairwise so rounding does not depend on the schedule.
template <unsigned W, class T, class Op>
T reduce(const T& x, const Here& here, const char* name, Op op) {
  Lanes<T> l = exchange(x, here, name);
  const unsigned base = l.lane & ~(W - 1);
  T* v = l.value + base;
  unsigned n = W;
  const uint32_t group_mask = W == 32 ? ~0u : ((1u << W) - 1) << base;
  if ((l.active & group_mask) != group_mask) {  // compact the live lanes
    n = 0;
    for (unsigned i = base; i < base + W; ++i)
      if (l.live(i)) v[n++] = l.value[i];
  }
  for (unsigned w = 1; w < n; w *= 2)
    for (unsigned i = 0; i + w < n; i += 2 * w) v[i] = op(v[i], v[i + w]);
  return v[0];
}

template <unsigned W, class T, class Op>
T prefix(const T& x, const Here& here, const char* name, Op op, T identity, bool inclusive) {
  const Lanes<T> l = exchange(x, here, name);
  const unsigned base = l.lane & ~(W - 1);
  T acc = identity;
  for (unsigned i = base; i < l.lane + (inclusive ? 1 : 0); ++i)
    if (l.live(i)) acc = op(acc, l.value[i]);
  return acc;
}

// Each lane reads lane source(lane); a negative source keeps its own value.
template <class T, class Source>
T shuffle(const T& x, const Here& here, const char* name, Source source) {
  const Lanes<T> l = exchange(x, here, name);
  const int s = source(int(l.lane));
  if (s < 0) return x;
  return s < int(kSimdWidth) ? l.value[s] : poisoned<T>();
}

template <class T>
struct Plus {
  T operator()(const T& a, const T& b) const { return T(a + b); }
};
template <class T>
struct Times {
  T operator()(const T& a, const T& b) const { return T(a * b); }
};

}  // namespace qmetal_sim

namespace metal {

enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
inline constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

// The flags are required, as in Apple's metal_stdlib (MSL spec 6.9.1).
inline void threadgroup_barrier(mem_flags, qmetal_sim::Here here = qmetal_sim::Here()) {
  const qmetal::sim::abi::Site site = here.site("threadgroup_barrier");
  qmetal_sim::runtime->barrier(&site);
}

inline void simdgroup_barrier(mem_flags, qmetal_sim::Here here = qmetal_sim::Here()) {
  qmetal_sim::simd_sync(here, "simdgroup_barrier");
}

// A ballot's result: one bit per lane.
struct simd_vote {
  using vote_t = ulong;
  explicit constexpr simd_vote(vote_t bits = 0, vote_t active = ~vote_t(0)) : bits_(bits), active_(active) {}
  explicit constexpr operator vote_t() const { return bits_; }
  constexpr bool all() const { return (bits_ & active_) == active_; }
  constexpr bool any() const { return bits_ != 0; }

 private:
  vote_t bits_;
  vote_t active_;
};

// simd_* and quad_* take integer and floating-point scalars and vectors,
// except bool, long and ulong (MSL spec 6.9.2, 6.9.3).
template <class T>
struct group_element {
  using type = T;
};
template <class T, int N>
struct group_element<vec<T, N>> {
  using type = T;
};
template <class T>
inline constexpr bool group_type_ok =
    !std::is_same_v<typename group_element<T>::type, bool> && !std::is_same_v<typename group_element<T>::type, long> &&
    !std::is_same_v<typename group_element<T>::type, ulong> &&
    (std::is_arithmetic_v<typename group_element<T>::type> || std::is_same_v<typename group_element<T>::type, half> ||
     std::is_same_v<typename group_element<T>::type, bfloat>);
#define QMETAL_SIM_GROUP_TYPE(T) \
  static_assert(group_type_ok<T>, "simd/quad functions take integer or floating-point types other than bool, long, ulong")

#define QMETAL_SIM_GROUP_FUNCTIONS(group, W)                                                                 \
  template <class T>                                                                                          \
  T group##_sum(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_sum", qmetal_sim::Plus<T>());                             \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_product(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_product", qmetal_sim::Times<T>());                        \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_min(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_min", [](const T& a, const T& b) { return metal::min(a, b); }); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_max(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_max", [](const T& a, const T& b) { return metal::max(a, b); }); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_and(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_and", [](const T& a, const T& b) { return T(a & b); });   \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_or(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_or", [](const T& a, const T& b) { return T(a | b); });    \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_xor(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::reduce<W>(x, here, #group "_xor", [](const T& a, const T& b) { return T(a ^ b); });   \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_prefix_inclusive_sum(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::prefix<W>(x, here, #group "_prefix_inclusive_sum", qmetal_sim::Plus<T>(), T(0), true); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_prefix_exclusive_sum(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::prefix<W>(x, here, #group "_prefix_exclusive_sum", qmetal_sim::Plus<T>(), T(0), false); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_prefix_inclusive_product(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::prefix<W>(x, here, #group "_prefix_inclusive_product", qmetal_sim::Times<T>(), T(1), true); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_prefix_exclusive_product(T x, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::prefix<W>(x, here, #group "_prefix_exclusive_product", qmetal_sim::Times<T>(), T(1), false); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle(T x, ushort lane, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle", [&](int l) {                                       \
      return lane < W ? int(l & ~int(W - 1)) + lane : int(qmetal_sim::kSimdWidth);                            \
    });                                                                                                       \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_broadcast(T x, ushort lane, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_broadcast", [&](int l) {                                     \
      return lane < W ? int(l & ~int(W - 1)) + lane : int(qmetal_sim::kSimdWidth);                            \
    });                                                                                                       \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_xor(T x, ushort mask, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle_xor", [&](int l) {                                   \
      return mask < W ? l ^ int(mask) : int(qmetal_sim::kSimdWidth);                                          \
    });                                                                                                       \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_up(T x, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle_up",                                                 \
                               [&](int l) { return int(l & int(W - 1)) >= delta ? l - delta : -1; });         \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_down(T x, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle_down",                                               \
                               [&](int l) { return int(l & int(W - 1)) + delta < int(W) ? l + delta : -1; }); \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_rotate_up(T x, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle_rotate_up", [&](int l) {                             \
      return int(l & ~int(W - 1)) + int((l - delta) & int(W - 1));                                            \
    });                                                                                                       \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_rotate_down(T x, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) { QMETAL_SIM_GROUP_TYPE(T); \
    return qmetal_sim::shuffle(x, here, #group "_shuffle_rotate_down", [&](int l) {                           \
      return int(l & ~int(W - 1)) + int((l + delta) & int(W - 1));                                            \
    });                                                                                                       \
  }                                                                                                           \
  inline bool group##_all(bool x, qmetal_sim::Here here = qmetal_sim::Here()) {                               \
    return qmetal_sim::reduce<W>(x, here, #group "_all", [](bool a, bool b) { return a && b; });             \
  }                                                                                                           \
  inline bool group##_any(bool x, qmetal_sim::Here here = qmetal_sim::Here()) {                               \
    return qmetal_sim::reduce<W>(x, here, #group "_any", [](bool a, bool b) { return a || b; });             \
  }

QMETAL_SIM_GROUP_FUNCTIONS(simd, 32u)
QMETAL_SIM_GROUP_FUNCTIONS(quad, 4u)
#undef QMETAL_SIM_GROUP_FUNCTIONS

// simd_shuffle_and_fill_down(data, fill, delta, modulo): the group splits
// into vectors of `modulo` lanes; lane j of a vector reads data from lane
// j + delta of its vector, or, past the vector's end, fill from lane
// j + delta - modulo. _up reads data from j - delta, or fill from
// j - delta + modulo before the vector's start.
namespace detail {
template <class T>
struct DataAndFill {
  T data, fill;
};
template <class T>
T shuffle_and_fill(T data, T fill, ushort delta, ushort modulo, bool down, qmetal_sim::Here here, const char* op) {
  const auto l = qmetal_sim::exchange(DataAndFill<T>{data, fill}, here, op);
  if (modulo == 0 || modulo > qmetal_sim::kSimdWidth || (modulo & (modulo - 1)) != 0 || delta >= modulo)
    return qmetal_sim::poisoned<T>();  // undefined in MSL
  const int base = int(l.lane) & ~int(modulo - 1), j = int(l.lane) - base;
  const int source = down ? j + delta : j - delta;
  if (source >= 0 && source < int(modulo)) return l.value[base + source].data;
  return l.value[base + (down ? source - modulo : source + modulo)].fill;
}
}  // namespace detail

#define QMETAL_SIM_SHUFFLE_AND_FILL(group, W)                                                                \
  template <class T>                                                                                          \
  T group##_shuffle_and_fill_down(T data, T fill, ushort delta, ushort modulo,                               \
                                  qmetal_sim::Here here = qmetal_sim::Here()) {                               \
    return detail::shuffle_and_fill(data, fill, delta, modulo, true, here, #group "_shuffle_and_fill_down");  \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_and_fill_down(T data, T fill, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) { \
    return detail::shuffle_and_fill(data, fill, delta, W, true, here, #group "_shuffle_and_fill_down");       \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_and_fill_up(T data, T fill, ushort delta, ushort modulo,                                 \
                                qmetal_sim::Here here = qmetal_sim::Here()) {                                 \
    return detail::shuffle_and_fill(data, fill, delta, modulo, false, here, #group "_shuffle_and_fill_up");   \
  }                                                                                                           \
  template <class T>                                                                                          \
  T group##_shuffle_and_fill_up(T data, T fill, ushort delta, qmetal_sim::Here here = qmetal_sim::Here()) {   \
    return detail::shuffle_and_fill(data, fill, delta, W, false, here, #group "_shuffle_and_fill_up");        \
  }

QMETAL_SIM_SHUFFLE_AND_FILL(simd, 32u)
QMETAL_SIM_SHUFFLE_AND_FILL(quad, 4u)
#undef QMETAL_SIM_SHUFFLE_AND_FILL

template <class T>
T simd_broadcast_first(T x, qmetal_sim::Here here = qmetal_sim::Here()) {
  const auto l = qmetal_sim::exchange(x, here, "simd_broadcast_first");
  return l.value[__builtin_ctz(l.active)];
}

inline simd_vote simd_ballot(bool x, qmetal_sim::Here here = qmetal_sim::Here()) {
  const auto l = qmetal_sim::exchange(x, here, "simd_ballot");
  simd_vote::vote_t bits = 0;
  for (unsigned i = 0; i < qmetal_sim::kSimdWidth; ++i)
    if (l.live(i) && l.value[i]) bits |= simd_vote::vote_t(1) << i;
  return simd_vote(bits, l.active);
}

inline simd_vote simd_active_threads_mask(qmetal_sim::Here here = qmetal_sim::Here()) {
  const uint32_t active = qmetal_sim::simd_sync(here, "simd_active_threads_mask");
  return simd_vote(active, active);
}

inline bool simd_is_first(qmetal_sim::Here here = qmetal_sim::Here()) {
  const auto l = qmetal_sim::exchange(char(0), here, "simd_is_first");
  return unsigned(__builtin_ctz(l.active)) == l.lane;
}

inline bool simd_is_helper_thread() { return false; }

// simdgroup_matrix<T, 8, 8>: each of the 32 lanes holds two horizontally
// adjacent elements, at the positions Apple GPUs use (the layout MLX's
// BaseMMAFrag relies on): row = (lane / 4 & 4) + (lane / 2 % 4),
// column = (lane / 4 & 2) * 2 + (lane % 2) * 2.
namespace detail {
inline int matrix_row(unsigned lane) { return int((lane / 4 & 4) + (lane / 2 % 4)); }
inline int matrix_col(unsigned lane) { return int((lane / 4 & 2) * 2 + (lane % 2) * 2); }
}  // namespace detail

template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the simulator has 8x8 simdgroup matrices");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bfloat>,
                "simdgroup_matrix elements are half, float or bfloat (MSL spec 2.4)");
  vec<T, 2> elements;

  simdgroup_matrix() = default;
  // A diagonal matrix, as MSL's constructor from one value makes.
  explicit simdgroup_matrix(T diagonal) {
    const unsigned lane = qmetal_sim::ids().thread_index_in_simdgroup;
    const int row = detail::matrix_row(lane), col = detail::matrix_col(lane);
    elements[0] = row == col ? diagonal : T(0);
    elements[1] = row == col + 1 ? diagonal : T(0);
  }
  vec<T, 2>& thread_elements() { return elements; }
  const vec<T, 2>& thread_elements() const { return elements; }
};

using simdgroup_float8x8 = simdgroup_matrix<float, 8, 8>;
using simdgroup_half8x8 = simdgroup_matrix<half, 8, 8>;
using simdgroup_bfloat8x8 = simdgroup_matrix<bfloat, 8, 8>;

template <class T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.elements = vec<T, 2>(value, value);
  return m;
}

// Element (row, col) of the matrix lies at src[(origin.y + row) * stride +
// origin.x + col], or at (col, row) with transpose.
template <class T, int C, int R, class U>
void simdgroup_load(simdgroup_matrix<T, C, R>& d, const U* src, ulong elements_per_row = C,
                    ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false,
                    qmetal_sim::Here here = qmetal_sim::Here()) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "simdgroup_load takes a pointer to the matrix's own element type (MSL spec 6.7)");
  qmetal_sim::simd_sync(here, "simdgroup_load");
  const unsigned lane = qmetal_sim::ids().thread_index_in_simdgroup;
  const long row = detail::matrix_row(lane), col = detail::matrix_col(lane);
  for (int k = 0; k < 2; ++k) {
    const long r = transpose_matrix ? col + k : row, c = transpose_matrix ? row : col + k;
    d.elements[k] = T(src[(matrix_origin.y + r) * elements_per_row + matrix_origin.x + c]);
  }
}

template <class T, int C, int R, class U>
void simdgroup_store(const simdgroup_matrix<T, C, R>& m, U* dst, ulong elements_per_row = C,
                     ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false,
                     qmetal_sim::Here here = qmetal_sim::Here()) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "simdgroup_store takes a pointer to the matrix's own element type (MSL spec 6.7)");
  qmetal_sim::simd_sync(here, "simdgroup_store");
  const unsigned lane = qmetal_sim::ids().thread_index_in_simdgroup;
  const long row = detail::matrix_row(lane), col = detail::matrix_col(lane);
  for (int k = 0; k < 2; ++k) {
    const long r = transpose_matrix ? col + k : row, c = transpose_matrix ? row : col + k;
    dst[(matrix_origin.y + r) * elements_per_row + matrix_origin.x + c] = U(m.elements[k]);
  }
}

// d = a * b + c, accumulated in float.
template <class TD, class TA, class TB, class TC>
void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                   const simdgroup_matrix<TB, 8, 8>& b, const simdgroup_matrix<TC, 8, 8>& c,
                                   qmetal_sim::Here here = qmetal_sim::Here()) {
  struct Operands {
    float a[2], b[2], c[2];
  };
  const Operands mine{{float(a.elements[0]), float(a.elements[1])},
                      {float(b.elements[0]), float(b.elements[1])},
                      {float(c.elements[0]), float(c.elements[1])}};
  const auto l = qmetal_sim::exchange(mine, here, "simdgroup_multiply_accumulate");
  float A[8][8], B[8][8], Cm[8][8];
  for (unsigned lane = 0; lane < qmetal_sim::kSimdWidth; ++lane) {
    const int row = detail::matrix_row(lane), col = detail::matrix_col(lane);
    for (int k = 0; k < 2; ++k) {  // lanes not live hold 0xFF bytes: NaN
      A[row][col + k] = l.value[lane].a[k];
      B[row][col + k] = l.value[lane].b[k];
      Cm[row][col + k] = l.value[lane].c[k];
    }
  }
  const int row = detail::matrix_row(l.lane), col = detail::matrix_col(l.lane);
  for (int k = 0; k < 2; ++k) {
    float sum = Cm[row][col + k];
    for (int i = 0; i < 8; ++i) sum += A[row][i] * B[i][col + k];
    d.elements[k] = TD(sum);
  }
}

template <class TD, class TA, class TB>
void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                        const simdgroup_matrix<TB, 8, 8>& b, qmetal_sim::Here here = qmetal_sim::Here()) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<float, 8, 8>(0.0f), here);
}

}  // namespace metal
