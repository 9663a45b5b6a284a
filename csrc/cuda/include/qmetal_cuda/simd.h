// Barriers, simdgroup and quadgroup collectives and simdgroup matrices on the
// CUDA target: an Apple simdgroup is a CUDA warp (32 threads of consecutive
// linear index in both), so collectives are warp shuffles. They follow the
// simulator's (csrc/sim/include/qmetal_sim/simd.h) results, and differ
// where hardware does:
//   * the lanes taking part are the warp's active lanes (__activemask()), as
//     Metal's are the simdgroup's active lanes; the simulator instead checks
//     that every live lane is at the same call site and reports divergence;
//   * a value read from a lane that is not active is whatever the hardware
//     gives (the simulator gives 0xFF bytes);
//   * reductions combine in the simulator's pairwise order (lane 2i with
//     2i + 1, then pairs of pairs), so a full warp's sum has the simulator's
//     rounding; prefix scans add lane by lane as the simulator does;
//   * simdgroup_matrix<T, 8, 8> keeps Apple's lane layout (two horizontally
//     adjacent elements per lane, MLX's BaseMMAFrag relies on it), and its
//     multiply gathers rows of A and columns of B with shuffles, accumulating
//     in float in the simulator's order (no tensor cores: their layouts and
//     tf32 rounding are not Apple's).
#pragma once

#include "qmetal_cuda/math.h"

namespace qmetal_cuda {

// Any trivially copyable value, moved as 32-bit words.
template <class T, class Op>
QMETAL_CUDA_FN T by_words(const T& x, Op op) {
  static_assert(std::is_trivially_copyable_v<T>, "collectives move trivially copyable values");
  constexpr int n = int((sizeof(T) + 3) / 4);
  uint32_t w[n] = {};
  __builtin_memcpy(w, &x, sizeof(T));
#pragma unroll
  for (int i = 0; i < n; ++i) w[i] = op(w[i]);
  T r;
  __builtin_memcpy(&r, w, sizeof(T));
  return r;
}

template <class T>
QMETAL_CUDA_FN T shfl(unsigned mask, const T& x, int src, int width = 32) {
  return by_words(x, [&](uint32_t w) { return hw::shfl_idx(mask, w, src, width); });
}
template <class T>
QMETAL_CUDA_FN T shfl_xor(unsigned mask, const T& x, int lane_mask, int width = 32) {
  return by_words(x, [&](uint32_t w) { return hw::shfl_xor(mask, w, lane_mask, width); });
}
template <class T>
QMETAL_CUDA_FN T shfl_up(unsigned mask, const T& x, unsigned delta, int width = 32) {
  return by_words(x, [&](uint32_t w) { return hw::shfl_up(mask, w, delta, width); });
}
template <class T>
QMETAL_CUDA_FN T shfl_down(unsigned mask, const T& x, unsigned delta, int width = 32) {
  return by_words(x, [&](uint32_t w) { return hw::shfl_down(mask, w, delta, width); });
}

QMETAL_CUDA_FN unsigned popc(unsigned x) { return unsigned(__nv_popc(x)); }
QMETAL_CUDA_FN unsigned first_lane(unsigned mask) { return unsigned(__nv_ffs(int(mask)) - 1); }
// The lane of the k-th (from 0) set bit of mask, or 32.
QMETAL_CUDA_FN unsigned nth_lane(unsigned mask, unsigned k) {
  for (unsigned i = 0; i < kWarp; ++i)
    if (mask >> i & 1u) {
      if (k == 0) return i;
      --k;
    }
  return kWarp;
}

// The active lanes of the caller's group of W lanes, as bits from the group's first lane.
template <unsigned W>
inline constexpr unsigned kGroupMask = W >= 32 ? 0xFFFFFFFFu : (1u << (W % 32)) - 1u;
template <unsigned W>
QMETAL_CUDA_FN unsigned group_bits(unsigned mask, unsigned base) {
  return W == 32 ? mask : (mask >> base) & kGroupMask<W>;
}

// Whether each group of W lanes is wholly active or wholly inactive.
template <unsigned W>
QMETAL_CUDA_FN bool whole_groups(unsigned mask) {
  if constexpr (W == 32) {
    return mask == 0xFFFFFFFFu;
  } else {
    for (unsigned base = 0; base < kWarp; base += W) {
      const unsigned g = (mask >> base) & kGroupMask<W>;
      if (g != 0 && g != kGroupMask<W>) return false;
    }
    return true;
  }
}

// Reduction over the active lanes of the caller's group (the warp, W = 32, or
// its quad, W = 4), in the simulator's pairwise order.
template <unsigned W, class T, class Op>
QMETAL_CUDA_FN T reduce(T x, Op op) {
  const unsigned mask = hw::active_mask();
  const unsigned lane = hw::lane(), base = lane & ~(W - 1u), j = lane - base;
  const unsigned group = group_bits<W>(mask, base);
  T v = x;
  if (__builtin_expect(whole_groups<W>(mask), 1)) {
    // Every group wholly active or wholly not (the same answer in every
    // lane): a butterfly, each pair combined low lane first.
#pragma unroll
    for (unsigned w = 1; w < W; w *= 2) {
      const T other = shfl_xor(mask, v, int(w));
      v = (j & w) ? op(other, v) : op(v, other);
    }
    return v;
  }
  // Some lanes inactive: combine the active ones as if packed together.
  const unsigned position = popc(group & ((1u << j) - 1u)), count = popc(group);
#pragma unroll
  for (unsigned w = 1; w < W; w *= 2) {
    const unsigned partner = nth_lane(group, position + w);
    const T other = shfl(mask, v, int(partner < W ? base + partner : lane));
    if (position % (2 * w) == 0 && position + w < count) v = op(v, other);
  }
  return shfl(mask, v, int(base + first_lane(group)));
}

template <unsigned W, class T, class Op>
QMETAL_CUDA_FN T prefix(T x, Op op, T identity, bool inclusive) {
  const unsigned mask = hw::active_mask();
  const unsigned lane = hw::lane(), base = lane & ~(W - 1u), j = lane - base;
  const unsigned group = group_bits<W>(mask, base);
  T acc = identity;
#pragma unroll
  for (unsigned i = 0; i < W; ++i) {
    const bool live = group >> i & 1u;
    const T v = shfl(mask, x, int(live ? base + i : lane));
    if (live && (i < j || (inclusive && i == j))) acc = op(acc, v);
  }
  return acc;
}

template <class T>
struct Plus {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return T(a + b); }
};
template <class T>
struct Times {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return T(a * b); }
};

}  // namespace qmetal_cuda

namespace metal {

enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
QMETAL_CUDA_HD constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

// __syncthreads orders shared and global memory among the block's threads,
// which covers every flag.
QMETAL_CUDA_FN void threadgroup_barrier(mem_flags) { qmetal_cuda::hw::barrier(); }
QMETAL_CUDA_FN void simdgroup_barrier(mem_flags) { qmetal_cuda::hw::warp_sync(qmetal_cuda::hw::active_mask()); }

struct simd_vote {
  using vote_t = ulong;
  QMETAL_CUDA_HD explicit constexpr simd_vote(vote_t bits = 0, vote_t active = ~vote_t(0)) : bits_(bits), active_(active) {}
  QMETAL_CUDA_HD explicit constexpr operator vote_t() const { return bits_; }
  QMETAL_CUDA_HD constexpr bool all() const { return (bits_ & active_) == active_; }
  QMETAL_CUDA_HD constexpr bool any() const { return bits_ != 0; }

 private:
  vote_t bits_;
  vote_t active_;
};

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
#define QMETAL_CUDA_GROUP_TYPE(T) \
  static_assert(group_type_ok<T>, "simd/quad functions take integer or floating-point types other than bool, long, ulong")

namespace detail {
template <class T>
struct Min {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return metal::min(a, b); }
};
template <class T>
struct Max {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return metal::max(a, b); }
};
template <class T>
struct And {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return T(a & b); }
};
template <class T>
struct Or {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return T(a | b); }
};
template <class T>
struct Xor {
  QMETAL_CUDA_FN T operator()(const T& a, const T& b) const { return T(a ^ b); }
};
// The lane a group shuffle reads, or -1 for the caller's own value.
QMETAL_CUDA_FN int own_or(bool in_range, int source) { return in_range ? source : -1; }
template <class T>
QMETAL_CUDA_FN T read_lane(T x, int source) {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  const T v = qmetal_cuda::shfl(mask, x, source < 0 ? int(qmetal_cuda::hw::lane()) : source);
  return source < 0 ? x : v;
}
}  // namespace detail

#define QMETAL_CUDA_GROUP_FUNCTIONS(group, W)                                                                      \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_sum(T x) {                                                                               \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, qmetal_cuda::Plus<T>());                                                       \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_product(T x) {                                                                           \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, qmetal_cuda::Times<T>());                                                      \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_min(T x) {                                                                               \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, detail::Min<T>());                                                             \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_max(T x) {                                                                               \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, detail::Max<T>());                                                             \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_and(T x) {                                                                               \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, detail::And<T>());                                                             \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_or(T x) {                                                                                \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, detail::Or<T>());                                                              \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_xor(T x) {                                                                               \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::reduce<W>(x, detail::Xor<T>());                                                             \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_prefix_inclusive_sum(T x) {                                                              \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::prefix<W>(x, qmetal_cuda::Plus<T>(), T(0), true);                                           \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_prefix_exclusive_sum(T x) {                                                              \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::prefix<W>(x, qmetal_cuda::Plus<T>(), T(0), false);                                          \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_prefix_inclusive_product(T x) {                                                          \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::prefix<W>(x, qmetal_cuda::Times<T>(), T(1), true);                                          \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_prefix_exclusive_product(T x) {                                                          \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    return qmetal_cuda::prefix<W>(x, qmetal_cuda::Times<T>(), T(1), false);                                         \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle(T x, ushort lane) {                                                              \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, lane < W ? int(l & ~int(W - 1)) + lane : l);                                        \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_broadcast(T x, ushort lane) {                                                            \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, lane < W ? int(l & ~int(W - 1)) + lane : l);                                        \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle_xor(T x, ushort mask) {                                                          \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, mask < W ? l ^ int(mask) : l);                                                      \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle_up(T x, ushort delta) {                                                          \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, detail::own_or(int(l & int(W - 1)) >= delta, l - delta));                           \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle_down(T x, ushort delta) {                                                        \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, detail::own_or(int(l & int(W - 1)) + delta < int(W), l + delta));                  \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle_rotate_up(T x, ushort delta) {                                                   \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, int(l & ~int(W - 1)) + int((l - delta) & int(W - 1)));                              \
  }                                                                                                                 \
  template <class T>                                                                                                \
  QMETAL_CUDA_FN T group##_shuffle_rotate_down(T x, ushort delta) {                                                 \
    QMETAL_CUDA_GROUP_TYPE(T);                                                                                      \
    const int l = int(qmetal_cuda::hw::lane());                                                                     \
    return detail::read_lane(x, int(l & ~int(W - 1)) + int((l + delta) & int(W - 1)));                              \
  }                                                                                                                 \
  QMETAL_CUDA_FN bool group##_all(bool x) {                                                                         \
    const unsigned mask = qmetal_cuda::hw::active_mask();                                                           \
    const unsigned base = qmetal_cuda::hw::lane() & ~(W - 1u);                                                      \
    const unsigned g = qmetal_cuda::group_bits<W>(mask, base);                                                      \
    return qmetal_cuda::group_bits<W>(qmetal_cuda::hw::ballot(mask, x), base) == g;                                 \
  }                                                                                                                 \
  QMETAL_CUDA_FN bool group##_any(bool x) {                                                                         \
    const unsigned mask = qmetal_cuda::hw::active_mask();                                                           \
    const unsigned base = qmetal_cuda::hw::lane() & ~(W - 1u);                                                      \
    return qmetal_cuda::group_bits<W>(qmetal_cuda::hw::ballot(mask, x), base) != 0;                                 \
  }

QMETAL_CUDA_GROUP_FUNCTIONS(simd, 32u)
QMETAL_CUDA_GROUP_FUNCTIONS(quad, 4u)
#undef QMETAL_CUDA_GROUP_FUNCTIONS

// simd_shuffle_and_fill_down(data, fill, delta, modulo): the group splits
// into vectors of `modulo` lanes; lane j of a vector reads data from lane
// j + delta of its vector, or, past the vector's end, fill from lane
// j + delta - modulo. _up reads data from j - delta, or fill from
// j - delta + modulo before the vector's start. (Undefined arguments give
// the caller's data; the simulator gives 0xFF bytes.)
namespace detail {
template <class T>
QMETAL_CUDA_FN T shuffle_and_fill(T data, T fill, ushort delta, ushort modulo, bool down) {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  const int lane = int(qmetal_cuda::hw::lane());
  const bool defined = modulo != 0 && modulo <= qmetal_cuda::kWarp && (modulo & (modulo - 1)) == 0 && delta < modulo;
  const int base = defined ? lane & ~int(modulo - 1) : lane, j = lane - base;
  const int source = down ? j + delta : j - delta;
  const bool from_data = !defined || (source >= 0 && source < int(modulo));
  const int data_lane = from_data && defined ? base + source : lane;
  const int fill_lane = from_data ? lane : base + (down ? source - modulo : source + modulo);
  const T d = qmetal_cuda::shfl(mask, data, data_lane);
  const T f = qmetal_cuda::shfl(mask, fill, fill_lane);
  return from_data ? d : f;
}
}  // namespace detail

#define QMETAL_CUDA_SHUFFLE_AND_FILL(group, W)                                                   \
  template <class T>                                                                             \
  QMETAL_CUDA_FN T group##_shuffle_and_fill_down(T data, T fill, ushort delta, ushort modulo) {  \
    return detail::shuffle_and_fill(data, fill, delta, modulo, true);                            \
  }                                                                                              \
  template <class T>                                                                             \
  QMETAL_CUDA_FN T group##_shuffle_and_fill_down(T data, T fill, ushort delta) {                 \
    return detail::shuffle_and_fill(data, fill, delta, W, true);                                 \
  }                                                                                              \
  template <class T>                                                                             \
  QMETAL_CUDA_FN T group##_shuffle_and_fill_up(T data, T fill, ushort delta, ushort modulo) {    \
    return detail::shuffle_and_fill(data, fill, delta, modulo, false);                           \
  }                                                                                              \
  template <class T>                                                                             \
  QMETAL_CUDA_FN T group##_shuffle_and_fill_up(T data, T fill, ushort delta) {                   \
    return detail::shuffle_and_fill(data, fill, delta, W, false);                                \
  }

QMETAL_CUDA_SHUFFLE_AND_FILL(simd, 32u)
QMETAL_CUDA_SHUFFLE_AND_FILL(quad, 4u)
#undef QMETAL_CUDA_SHUFFLE_AND_FILL

template <class T>
QMETAL_CUDA_FN T simd_broadcast_first(T x) {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  return qmetal_cuda::shfl(mask, x, int(qmetal_cuda::first_lane(mask)));
}

QMETAL_CUDA_FN simd_vote simd_ballot(bool x) {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  return simd_vote(qmetal_cuda::hw::ballot(mask, x), mask);
}

QMETAL_CUDA_FN simd_vote simd_active_threads_mask() {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  return simd_vote(mask, mask);
}

QMETAL_CUDA_FN bool simd_is_first() {
  return qmetal_cuda::first_lane(qmetal_cuda::hw::active_mask()) == qmetal_cuda::hw::lane();
}

QMETAL_CUDA_FN bool simd_is_helper_thread() { return false; }

// simdgroup_matrix<T, 8, 8>: lane l holds elements (row, col) and
// (row, col + 1) with row = (l / 4 & 4) + (l / 2 % 4) and col = (l / 4 & 2)
// * 2 + (l % 2) * 2, as on Apple GPUs and in the simulator. In lane bits:
// row = 4 b4 + 2 b2 + b1, col = 4 b3 + 2 b0, so the lane holding (row, col)
// is matrix_lane() below.
namespace detail {
QMETAL_CUDA_HD constexpr int matrix_row(unsigned lane) { return int((lane / 4 & 4) + (lane / 2 % 4)); }
QMETAL_CUDA_HD constexpr int matrix_col(unsigned lane) { return int((lane / 4 & 2) * 2 + (lane % 2) * 2); }
QMETAL_CUDA_HD constexpr int matrix_lane(int row, int col) {
  return ((col >> 1) & 1) | ((row & 1) << 1) | (((row >> 1) & 1) << 2) | (((col >> 2) & 1) << 3) |
         (((row >> 2) & 1) << 4);
}
}  // namespace detail

template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the CUDA target has 8x8 simdgroup matrices");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bfloat>,
                "simdgroup_matrix elements are half, float or bfloat (MSL spec 2.4)");
  vec<T, 2> elements;

  simdgroup_matrix() = default;
  QMETAL_CUDA_FN explicit simdgroup_matrix(T diagonal) {
    const unsigned lane = qmetal_cuda::hw::lane();
    const int row = detail::matrix_row(lane), col = detail::matrix_col(lane);
    elements[0] = row == col ? diagonal : T(0);
    elements[1] = row == col + 1 ? diagonal : T(0);
  }
  QMETAL_CUDA_FN vec<T, 2>& thread_elements() { return elements; }
  QMETAL_CUDA_FN const vec<T, 2>& thread_elements() const { return elements; }
};

using simdgroup_float8x8 = simdgroup_matrix<float, 8, 8>;
using simdgroup_half8x8 = simdgroup_matrix<half, 8, 8>;
using simdgroup_bfloat8x8 = simdgroup_matrix<bfloat, 8, 8>;

template <class T, int Cols, int Rows>
QMETAL_CUDA_FN simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.elements = vec<T, 2>(value, value);
  return m;
}

// Element (row, col) lies at src[(origin.y + row) * stride + origin.x + col],
// or at (col, row) with transpose. Apple's simdgroup runs in lockstep, so a
// simdgroup reads what its lanes just wrote; a warp needs __syncwarp for that.
template <class T, int C, int R, class U>
QMETAL_CUDA_FN void simdgroup_load(simdgroup_matrix<T, C, R>& d, const U* src, ulong elements_per_row = C,
                                   ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>,
                "simdgroup_load takes a pointer to the matrix's own element type (MSL spec 6.7)");
  qmetal_cuda::hw::warp_sync(qmetal_cuda::hw::active_mask());
  const unsigned lane = qmetal_cuda::hw::lane();
  const long row = detail::matrix_row(lane), col = detail::matrix_col(lane);
  if (!transpose_matrix) {
    const U* p = src + (matrix_origin.y + row) * elements_per_row + matrix_origin.x + col;
    d.elements[0] = T(p[0]);
    d.elements[1] = T(p[1]);
  } else {
#pragma unroll
    for (int k = 0; k < 2; ++k) d.elements[k] = T(src[(matrix_origin.y + col + k) * elements_per_row + matrix_origin.x + row]);
  }
}

template <class T, int C, int R, class U>
QMETAL_CUDA_FN void simdgroup_store(const simdgroup_matrix<T, C, R>& m, U* dst, ulong elements_per_row = C,
                                    ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>,
                "simdgroup_store takes a pointer to the matrix's own element type (MSL spec 6.7)");
  const unsigned lane = qmetal_cuda::hw::lane();
  const long row = detail::matrix_row(lane), col = detail::matrix_col(lane);
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const long r = transpose_matrix ? col + k : row, c = transpose_matrix ? row : col + k;
    dst[(matrix_origin.y + r) * elements_per_row + matrix_origin.x + c] = U(m.elements[k]);
  }
  qmetal_cuda::hw::warp_sync(qmetal_cuda::hw::active_mask());
}

// d = a * b + c, accumulated in float: each lane gathers its row of a (four
// lanes hold it, two elements each) and its two columns of b (eight lanes).
template <class TD, class TA, class TB, class TC>
QMETAL_CUDA_FN void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                                  const simdgroup_matrix<TB, 8, 8>& b,
                                                  const simdgroup_matrix<TC, 8, 8>& c) {
  const unsigned mask = qmetal_cuda::hw::active_mask();
  const unsigned lane = qmetal_cuda::hw::lane();
  const int row = detail::matrix_row(lane), col = detail::matrix_col(lane);
  float sum0 = float(c.elements[0]), sum1 = float(c.elements[1]);
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    const vec<TA, 2> ar = qmetal_cuda::shfl(mask, a.elements, detail::matrix_lane(row, i));
    const vec<TB, 2> b0 = qmetal_cuda::shfl(mask, b.elements, detail::matrix_lane(i, col));
    const vec<TB, 2> b1 = qmetal_cuda::shfl(mask, b.elements, detail::matrix_lane(i + 1, col));
    sum0 += float(ar[0]) * float(b0[0]);
    sum1 += float(ar[0]) * float(b0[1]);
    sum0 += float(ar[1]) * float(b1[0]);
    sum1 += float(ar[1]) * float(b1[1]);
  }
  d.elements[0] = TD(sum0);
  d.elements[1] = TD(sum1);
}

template <class TD, class TA, class TB>
QMETAL_CUDA_FN void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                       const simdgroup_matrix<TB, 8, 8>& b) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<float, 8, 8>(0.0f));
}

}  // namespace metal
