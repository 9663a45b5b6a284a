// mpp::tensor_ops::matmul2d for the simulator: the subset of
// MetalPerformancePrimitives qmetal's kernels use, modelled on the facts in
// ../shared/design/METAL4_TENSOR_OPS.md (section numbers below refer to it).
//
// What run(left, right, destination) does here:
//   * C[m][n] (=|+=) sum_k A[m][k] B[k][n] over the desc.m x desc.n tile at
//     the views' origins (§4.1); left is M x K stored as extents (K, M), or
//     (M, K) with transpose_left; right is K x N as (N, K), or (K, N) with
//     transpose_right; the destination is (N, M) (§1.6);
//   * dynamic K (dynamic_extent or dynamic_length_v<int>) is read from the
//     operands' extents; elements outside an operand's extents read as 0 and
//     writes outside the destination's are dropped (§4.4); a static K larger
//     than an operand's K extent is reported (the GPU reads past the view,
//     undefined behaviour: llama.cpp #25652, §4.3);
//   * a collective of the scope: with execution_simdgroups<N>, N > 1, the
//     threadgroup must be exactly N full simdgroups and every thread must
//     reach the same run (a barrier, else divergence is reported); with
//     execution_simdgroup each simdgroup runs its own op (a simdgroup
//     collective). Each thread reads the operands when it arrives and again
//     once all have arrived: a difference means another thread wrote them
//     meanwhile (a threadgroup_barrier missing before or after the op), and
//     is reported rather than computed with;
//   * numerics (§4.5, the M5 model measured on one M5 Pro): half, bfloat and
//     int8 operands, and float ones with relaxed_precision (truncated to 10
//     mantissa bits), reduce each 16-wide K chunk as a fixed tree of fp32
//     roundings chained through the fp32 accumulator; float operands
//     without relaxed_precision take a sequential fp32 FMA chain (the
//     library's non-accelerated path; for mixed float x half without
//     relaxed_precision Apple's order is unknown and this is a choice);
//     int8 x int8 -> int32 is exact, wrapping modulo 2^32;
//     multiply_accumulate adds the old destination once, after the product
//     (D = RNE32(C + P)); half destinations round once per run, bfloat ones
//     too, with fp32 subnormals flushed to signed zero.
// Cooperative tensors use M5's 16 x 16 fragment layout for one simdgroup
// (§4.7: MLX's get_coord, AGXForge's measurement), fragments row-major over
// the operand as stored; with N simdgroups, fragment f belongs to simdgroup
// f % N (Apple's split is unknown, and portable kernels do not depend on it).
#pragma once

#include <climits>
#include <cmath>

#include "qmetal_sim/tensor.h"

namespace mpp {
namespace tensor_ops {

template <class T>
inline constexpr T dynamic_length_v = std::numeric_limits<T>::max();

struct matmul2d_descriptor {
  enum class mode { multiply, multiply_accumulate };
  int m, n, k;
  bool transpose_left, transpose_right;
  bool relaxed_precision;
  mode matmul_mode;

  constexpr matmul2d_descriptor(int m_, int n_, int k_ = -1, bool transpose_left_ = false,
                                bool transpose_right_ = false, bool relaxed_precision_ = false,
                                mode matmul_mode_ = mode::multiply)
      : m(m_), n(n_), k(k_), transpose_left(transpose_left_), transpose_right(transpose_right_),
        relaxed_precision(relaxed_precision_), matmul_mode(matmul_mode_) {}
  // K given as metal::dynamic_extent (a size_t): Apple converts it to int
  // (-1); this overload does so without a narrowing warning.
  constexpr matmul2d_descriptor(int m_, int n_, size_t k_, bool transpose_left_ = false,
                                bool transpose_right_ = false, bool relaxed_precision_ = false,
                                mode matmul_mode_ = mode::multiply)
      : matmul2d_descriptor(m_, n_, k_ == metal::dynamic_extent ? -1 : int(k_), transpose_left_, transpose_right_,
                            relaxed_precision_, matmul_mode_) {}

  constexpr bool dynamic_k() const { return k == -1 || k == dynamic_length_v<int>; }
};

namespace __mutmul2d_detail {

enum class __matmul2d_cooperative_operand_index { left, right, destination };
using operand_index = __matmul2d_cooperative_operand_index;

// --- element types --------------------------------------------------------

// MSL's char is int8_t.
template <class T>
using canonical_t = std::conditional_t<std::is_same_v<std::remove_cv_t<T>, char>, int8_t, std::remove_cv_t<T>>;

template <class T, class = void>
struct element_of {
  using type = canonical_t<T>;  // an element type given directly
};
template <class T>
struct element_of<T, std::void_t<typename T::value_type, typename T::extents_type>> {
  using type = canonical_t<typename T::value_type>;
};
template <class T>
using element_of_t = typename element_of<std::remove_cv_t<T>>::type;

// The (left, right, destination) triples Apple lists (§1.10).
template <class L, class R, class D>
constexpr bool supported_triple() {
  using h = half;
  using b = bfloat;
  using f = float;
  using i8 = int8_t;
  using i32 = int32_t;
#define QMETAL_SIM_TRIPLE(x, y, z) (std::is_same_v<L, x> && std::is_same_v<R, y> && std::is_same_v<D, z>)
  return QMETAL_SIM_TRIPLE(h, h, h) || QMETAL_SIM_TRIPLE(h, i8, h) || QMETAL_SIM_TRIPLE(i8, h, h) ||
         QMETAL_SIM_TRIPLE(h, h, f) || QMETAL_SIM_TRIPLE(h, f, f) || QMETAL_SIM_TRIPLE(h, i8, f) ||
         QMETAL_SIM_TRIPLE(f, h, f) || QMETAL_SIM_TRIPLE(f, f, f) || QMETAL_SIM_TRIPLE(f, i8, f) ||
         QMETAL_SIM_TRIPLE(i8, h, f) || QMETAL_SIM_TRIPLE(i8, f, f) || QMETAL_SIM_TRIPLE(i8, i8, i32) ||
         QMETAL_SIM_TRIPLE(b, b, b) || QMETAL_SIM_TRIPLE(b, b, f) || QMETAL_SIM_TRIPLE(b, f, f) ||
         QMETAL_SIM_TRIPLE(b, i8, b) || QMETAL_SIM_TRIPLE(b, i8, f) || QMETAL_SIM_TRIPLE(f, b, f) ||
         QMETAL_SIM_TRIPLE(i8, b, b) || QMETAL_SIM_TRIPLE(i8, b, f) || QMETAL_SIM_TRIPLE(b, h, b) ||
         QMETAL_SIM_TRIPLE(b, h, h) || QMETAL_SIM_TRIPLE(b, h, f) || QMETAL_SIM_TRIPLE(h, b, b) ||
         QMETAL_SIM_TRIPLE(h, b, h) || QMETAL_SIM_TRIPLE(h, b, f);
#undef QMETAL_SIM_TRIPLE
}

// --- layouts --------------------------------------------------------------

constexpr int kFragment = 16;                                    // fragment side (M5)
constexpr int kSlotsPerFragment = kFragment * kFragment / 32;    // per lane

// Row and column of slot `e` of `lane` inside a 16 x 16 fragment (§4.7).
inline int fragment_row(int lane, int e) { return 4 * (lane >> 4) + ((lane >> 1) & 3) + 8 * (e >> 2); }
inline int fragment_col(int lane, int e) { return 8 * ((lane >> 3) & 1) + 4 * (lane & 1) + (e & 3); }
// The inverse: the lane and slot holding (row, col) of a fragment.
inline int fragment_lane(int row, int col) {
  return (((row >> 2) & 1) << 4) | (((col >> 3) & 1) << 3) | ((row & 3) << 1) | ((col >> 2) & 1);
}
inline int fragment_slot(int row, int col) { return ((row >> 3) & 1) * 4 + (col & 3); }

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

template <class Scope>
struct scope_of {
  static constexpr int simdgroups = 0;  // not a simdgroup scope
};
template <int N>
struct scope_of<metal::execution_simdgroups<N>> {
  static constexpr int simdgroups = N;
};

// The shape of an operand as stored: rows x cols, the tensor's extents
// being (cols, rows).
template <matmul2d_descriptor D, operand_index Operand>
struct stored_shape {
  static constexpr int rows = Operand == operand_index::destination ? D.m
                              : Operand == operand_index::left     ? (D.transpose_left ? D.k : D.m)
                                                                   : (D.transpose_right ? D.n : D.k);
  static constexpr int cols = Operand == operand_index::destination ? D.n
                              : Operand == operand_index::left     ? (D.transpose_left ? D.m : D.k)
                                                                   : (D.transpose_right ? D.k : D.n);
};

template <matmul2d_descriptor D, operand_index Operand, class Scope, class LeftElement, class RightElement,
          class DestinationElement, class Coord>
struct __operand_layout {
  static constexpr matmul2d_descriptor descriptor = D;
  static constexpr operand_index operand = Operand;
  using scope = Scope;
  using left_element = LeftElement;
  using right_element = RightElement;
  using destination_element = DestinationElement;
  static constexpr int simdgroups = scope_of<Scope>::simdgroups;
  static constexpr int rows = stored_shape<D, Operand>::rows;
  static constexpr int cols = stored_shape<D, Operand>::cols;
  static constexpr int fragment_cols = ceil_div(cols, kFragment);
  static constexpr int fragments = ceil_div(rows, kFragment) * fragment_cols;
  static constexpr size_t capacity = size_t(ceil_div(fragments, simdgroups) * kSlotsPerFragment);

  // The calling thread's slot i: (column, row) as stored, or false.
  static bool coordinates(size_t i, int64_t* coord) {
    const auto& ids = qmetal_sim::ids();
    const int simdgroup = simdgroups == 1 ? 0 : int(ids.simdgroup_index_in_threadgroup);
    const int lane = int(ids.thread_index_in_simdgroup);
    const int f = int(i) / kSlotsPerFragment * simdgroups + simdgroup;
    const int e = int(i) % kSlotsPerFragment;
    if (i >= capacity || f >= fragments) return false;
    const int row = f / fragment_cols * kFragment + fragment_row(lane, e);
    const int col = f % fragment_cols * kFragment + fragment_col(lane, e);
    if (row >= rows || col >= cols) return false;
    coord[0] = col;
    coord[1] = row;
    return true;
  }
  // For one simdgroup: the lane and slot that hold (row, col).
  static void owner(int row, int col, int& lane, int& slot) {
    const int f = row / kFragment * fragment_cols + col / kFragment;
    lane = fragment_lane(row % kFragment, col % kFragment);
    slot = f * kSlotsPerFragment + fragment_slot(row % kFragment, col % kFragment);
  }
};

template <class T>
struct is_cooperative : std::false_type {};
template <class E, class X, class L>
struct is_cooperative<metal::cooperative_tensor<E, X, L>> : std::true_type {};
template <class T>
inline constexpr bool is_cooperative_v = is_cooperative<std::remove_cv_t<T>>::value;

template <class T, bool = is_cooperative_v<T>>
struct layout_of {
  using type = void;
};
template <class T>
struct layout_of<T, true> {
  using type = typename std::remove_cv_t<T>::layout_type;
};

constexpr bool same_descriptor(const matmul2d_descriptor& a, const matmul2d_descriptor& b) {
  return a.m == b.m && a.n == b.n && a.k == b.k && a.transpose_left == b.transpose_left &&
         a.transpose_right == b.transpose_right && a.relaxed_precision == b.relaxed_precision &&
         a.matmul_mode == b.matmul_mode;
}

// --- numerics -------------------------------------------------------------

// An fp32 operand with relaxed_precision: its low 13 mantissa bits cleared
// (sign, 8 exponent and 10 mantissa bits kept, subnormals too; §4.5).
inline float truncate_relaxed(float x) {
  return __builtin_bit_cast(float, __builtin_bit_cast(uint32_t, x) & 0xFFFFE000u);
}

template <class T>
float operand_value(T v, bool relaxed) {
  if constexpr (std::is_same_v<T, float>) return relaxed ? truncate_relaxed(v) : v;
  else return float(v);
}

// The fp32 destination value, in the destination's type.
template <class D>
D destination_value(float v) {
  if constexpr (std::is_same_v<D, bfloat>) {
    if (v != 0.0f && std::fabs(v) < std::numeric_limits<float>::min()) return bfloat(std::signbit(v) ? -0.0f : 0.0f);
    return bfloat(v);
  } else {
    return D(v);
  }
}

}  // namespace __mutmul2d_detail

template <matmul2d_descriptor Descriptor, class Scope, class... Args>
class matmul2d {
  using operand_index = __mutmul2d_detail::operand_index;
  static constexpr int kSimdgroups = __mutmul2d_detail::scope_of<Scope>::simdgroups;
  static_assert(kSimdgroups > 0,
                "matmul2d: the scope is execution_simdgroups<N> or execution_simdgroup (the simulator runs "
                "matrix multiplication on simdgroup scopes only)");
  static_assert(Descriptor.m > 0 && Descriptor.n > 0, "matmul2d_descriptor: m and n are positive");
  static_assert(Descriptor.m % 16 == 0 || Descriptor.n % 16 == 0, "At least one of M or N must be a multiple of 16");
  static_assert(Descriptor.n % 8 == 0, "matmul2d_descriptor: n % 8 == 0");
  static_assert(Descriptor.dynamic_k() || (Descriptor.k > 0 && Descriptor.k % 16 == 0),
                "matmul2d_descriptor: K must be dynamic (dynamic_extent or dynamic_length_v<int>) or a positive "
                "multiple of 16 (k = 0 is not dynamic)");

 public:
  static constexpr matmul2d_descriptor descriptor = Descriptor;
  using scope = Scope;

  matmul2d() = default;

  template <class LeftOperandType, class RightOperandType, class ElementType, class CoordType = int>
  auto get_destination_cooperative_tensor() const {
    return cooperative<operand_index::destination, __mutmul2d_detail::element_of_t<LeftOperandType>,
                       __mutmul2d_detail::element_of_t<RightOperandType>, ElementType, CoordType, ElementType>();
  }
  template <class LeftElement, class RightElement, class DestinationElement, class CoordType = int>
  auto get_left_input_cooperative_tensor() const {
    check_input_scope();
    return cooperative<operand_index::left, LeftElement, RightElement, DestinationElement, CoordType, LeftElement>();
  }
  template <class LeftElement, class RightElement, class DestinationElement, class CoordType = int>
  auto get_right_input_cooperative_tensor() const {
    check_input_scope();
    return cooperative<operand_index::right, LeftElement, RightElement, DestinationElement, CoordType,
                       RightElement>();
  }

  template <class LeftOperandType, class RightOperandType, class DestinationOperandType>
  void run(LeftOperandType& left, RightOperandType& right, DestinationOperandType& destination,
           qmetal_sim::Here here = qmetal_sim::Here()) const {
    using namespace __mutmul2d_detail;
    using L = element_of_t<LeftOperandType>;
    using R = element_of_t<RightOperandType>;
    using E = element_of_t<DestinationOperandType>;
    constexpr bool left_coop = is_cooperative_v<LeftOperandType>;
    constexpr bool right_coop = is_cooperative_v<RightOperandType>;
    constexpr bool dest_coop = is_cooperative_v<DestinationOperandType>;
    static_assert((metal::is_tensor_v<LeftOperandType> || left_coop) &&
                      (metal::is_tensor_v<RightOperandType> || right_coop) &&
                      (metal::is_tensor_v<DestinationOperandType> || dest_coop),
                  "matmul2d::run: each operand is a tensor or a cooperative tensor");
    static_assert(supported_triple<L, R, E>(),
                  "matmul2d::run: unsupported (left, right, destination) element types (Apple lists half, bfloat, "
                  "float and int8 combinations: METAL4_TENSOR_OPS.md 1.10)");
    check_operand<LeftOperandType, operand_index::left, L, R>();
    check_operand<RightOperandType, operand_index::right, L, R>();
    check_operand<DestinationOperandType, operand_index::destination, L, R>();
    if constexpr (!dest_coop) {
      static_assert(DestinationOperandType::kRank == 2, "matmul2d::run: the destination tensor has rank 2");
      static_assert(!std::is_const_v<typename DestinationOperandType::element_type>,
                    "matmul2d::run: the destination tensor is read-only");
    }
    if constexpr (!left_coop) static_assert(LeftOperandType::kRank == 2, "matmul2d::run: the left tensor has rank 2");
    if constexpr (!right_coop) static_assert(RightOperandType::kRank == 2, "matmul2d::run: the right tensor has rank 2");

    check_scope(here);
    using Layout = __operand_layout<Descriptor, operand_index::destination, Scope, L, R, E, int>;

    // Cooperative inputs are spread over the simdgroup's lanes: gather them
    // (this exchange is also the op's rendezvous).
    struct Gathered {
      L left[capacity_of<LeftOperandType>()];
      R right[capacity_of<RightOperandType>()];
    };
    Gathered mine;
    if constexpr (left_coop) std::memcpy(mine.left, left.qmetal_elements_, sizeof mine.left);
    if constexpr (right_coop) std::memcpy(mine.right, right.qmetal_elements_, sizeof mine.right);
    qmetal_sim::Lanes<Gathered> lanes;
    if constexpr (left_coop || right_coop) {
      lanes = qmetal_sim::exchange(mine, here, "matmul2d::run");
      if (lanes.active != ~0u) fail(here, "matmul2d::run with cooperative inputs needs all 32 lanes of the simdgroup");
    }

    const int64_t K = reduction_length(left, right, here);
    E first[Layout::capacity], second[Layout::capacity];
    compute(left, right, destination, lanes, K, first);
    constexpr bool reads_memory = !left_coop || !right_coop ||
                                  (!dest_coop && Descriptor.matmul_mode == matmul2d_descriptor::mode::multiply_accumulate);
    if constexpr (reads_memory) {
      rendezvous(here);
      compute(left, right, destination, lanes, K, second);
      if (std::memcmp(first, second, sizeof first) != 0) {
        fail(here, "matmul2d::run: its operands changed while the scope's threads ran it (another thread wrote "
                   "them between the first thread's arrival and the last one's: a threadgroup_barrier is missing "
                   "before or after the op)");
      }
    }
    for (size_t i = 0; i < Layout::capacity; ++i) {
      int64_t coord[2];
      if (!Layout::coordinates(i, coord)) continue;
      if constexpr (dest_coop) {
        destination.qmetal_elements_[i] = first[i];
      } else if (destination.qmetal_in_range(coord)) {
        *destination.qmetal_at(coord) = first[i];
      }
    }
  }

 private:
  template <operand_index Operand, class L, class R, class E, class Coord, class Element>
  static auto cooperative() {
    static_assert(__mutmul2d_detail::supported_triple<__mutmul2d_detail::canonical_t<L>,
                                                      __mutmul2d_detail::canonical_t<R>,
                                                      __mutmul2d_detail::canonical_t<E>>(),
                  "matmul2d: unsupported (left, right, destination) element types (METAL4_TENSOR_OPS.md 1.10)");
    using Layout = __mutmul2d_detail::__operand_layout<Descriptor, Operand, Scope, __mutmul2d_detail::canonical_t<L>,
                                                       __mutmul2d_detail::canonical_t<R>,
                                                       __mutmul2d_detail::canonical_t<E>, Coord>;
    return metal::cooperative_tensor<Element, metal::dextents<Coord, 2>, Layout>();
  }

  static constexpr void check_input_scope() {
    static_assert(kSimdgroups == 1, "Input cooperative tensors require a single SIMD group");
    static_assert(!Descriptor.dynamic_k(), "matmul2d: input cooperative tensors need a static K");
  }

  // Slots a cooperative operand holds per lane (1 for a tensor: unused).
  template <class T>
  static constexpr size_t capacity_of() {
    if constexpr (__mutmul2d_detail::is_cooperative_v<T>) return std::remove_cv_t<T>::kCapacity;
    else return 1;
  }

  // A cooperative operand must come from this op's getter for its position,
  // with the element types run() is given (Apple: a static_assert since the
  // macOS 26.2 headers, §1.8).
  template <class T, operand_index Operand, class L, class R>
  static constexpr void check_operand() {
    if constexpr (__mutmul2d_detail::is_cooperative_v<T>) {
      using Layout = typename __mutmul2d_detail::layout_of<T>::type;
      static_assert(Layout::operand == Operand,
                    "matmul2d::run: a cooperative operand is in the wrong position (left / right / destination)");
      static_assert(std::is_same_v<typename Layout::left_element, L> &&
                        std::is_same_v<typename Layout::right_element, R>,
                    "Input types must match cooperative tensor types (get_destination_cooperative_tensor<Left, "
                    "Right, ...> must name the operands in the order run() takes them)");
      static_assert(__mutmul2d_detail::same_descriptor(Layout::descriptor, Descriptor) &&
                        std::is_same_v<typename Layout::scope, Scope>,
                    "matmul2d::run: a cooperative operand comes from an op with another descriptor or scope");
    }
  }

  [[noreturn]] static void fail(const qmetal_sim::Here& here, const char* message) {
    qmetal_sim::tensor_fail(here, "matmul2d::run", message);
  }

  static void check_scope(const qmetal_sim::Here& here) {
    const auto& ids = qmetal_sim::ids();
    if constexpr (kSimdgroups > 1) {
      const uint32_t threads =
          ids.threads_per_threadgroup.x * ids.threads_per_threadgroup.y * ids.threads_per_threadgroup.z;
      if (threads != uint32_t(kSimdgroups) * qmetal_sim::kSimdWidth) {
        char message[256];
        std::snprintf(message, sizeof message,
                      "matmul2d with execution_simdgroups<%d> run by a threadgroup of %u threads: the scope's "
                      "simdgroups must be the threadgroup's, %d full simdgroups (undefined behaviour on the GPU)",
                      kSimdgroups, threads, kSimdgroups);
        fail(here, message);
      }
    }
  }

  static void rendezvous(const qmetal_sim::Here& here) {
    if constexpr (kSimdgroups > 1) {
      const qmetal::sim::abi::Site site = here.site("matmul2d::run");
      qmetal_sim::runtime->barrier(&site);
    } else {
      if (qmetal_sim::simd_sync(here, "matmul2d::run") != ~0u) {
        fail(here, "matmul2d::run with execution_simdgroup needs all 32 lanes of the simdgroup");
      }
    }
  }

  // K of this run: the descriptor's, or (dynamic) the operands' extents.
  template <class LeftT, class RightT>
  static int64_t reduction_length(const LeftT& left, const RightT& right, const qmetal_sim::Here& here) {
    using namespace __mutmul2d_detail;
    int64_t left_k = -1, right_k = -1;
    if constexpr (!is_cooperative_v<LeftT>) left_k = left.qmetal_extents_[Descriptor.transpose_left ? 1 : 0];
    if constexpr (!is_cooperative_v<RightT>) right_k = right.qmetal_extents_[Descriptor.transpose_right ? 0 : 1];
    if (Descriptor.dynamic_k()) return left_k > right_k ? left_k : right_k;
    for (const int64_t k : {left_k, right_k}) {
      if (k >= 0 && k < Descriptor.k) {
        char message[256];
        std::snprintf(message, sizeof message,
                      "matmul2d::run: static K = %d, but an operand's view holds only %lld along K (the GPU reads "
                      "past the view: undefined behaviour, llama.cpp #25652); use a dynamic K or a full view",
                      Descriptor.k, static_cast<long long>(k));
        fail(here, message);
      }
    }
    return Descriptor.k;
  }

  // Logical A[m][k] and B[k][n] from a tensor (0 outside its extents) or
  // from the gathered lanes of a cooperative operand.
  template <operand_index Operand, class T, class Lanes>
  static auto element(const T& operand, const Lanes& lanes, int64_t row, int64_t col) {
    using namespace __mutmul2d_detail;
    using V = element_of_t<T>;
    // (row, col) as stored: A is M x K, B is K x N, unless transposed.
    const bool transposed = Operand == operand_index::left ? Descriptor.transpose_left : Descriptor.transpose_right;
    const int64_t stored_row = transposed ? col : row, stored_col = transposed ? row : col;
    if constexpr (is_cooperative_v<T>) {
      using Layout = typename layout_of<T>::type;
      int lane, slot;
      Layout::owner(int(stored_row), int(stored_col), lane, slot);
      if constexpr (Operand == operand_index::left) return V(lanes.value[lane].left[slot]);
      else return V(lanes.value[lane].right[slot]);
    } else {
      const int64_t coord[2] = {stored_col, stored_row};
      return operand.qmetal_in_range(coord) ? V(*operand.qmetal_at(coord)) : V(0);
    }
  }

  template <class LeftT, class RightT, class DestT, class Lanes, class E>
  static void compute(const LeftT& left, const RightT& right, const DestT& destination, const Lanes& lanes, int64_t K,
                      E* out) {
    using namespace __mutmul2d_detail;
    using L = element_of_t<LeftT>;
    using R = element_of_t<RightT>;
    using Layout = __operand_layout<Descriptor, operand_index::destination, Scope, L, R, E, int>;
    constexpr bool relaxed = Descriptor.relaxed_precision;
    constexpr bool accumulate = Descriptor.matmul_mode == matmul2d_descriptor::mode::multiply_accumulate;
    constexpr bool integer = std::is_same_v<E, int32_t>;
    // The accelerator's chunk tree, unless fp32 operands ask for full fp32.
    constexpr bool tree = relaxed || !(std::is_same_v<L, float> || std::is_same_v<R, float>);
    constexpr int64_t kChunk = 16, kPairs = kChunk / 2, kQuads = kPairs / 2;
    for (size_t i = 0; i < Layout::capacity; ++i) {
      int64_t coord[2];
      if (!Layout::coordinates(i, coord)) {
        out[i] = E(0);
        continue;
      }
      const int64_t n = coord[0], m = coord[1];
      if constexpr (integer) {
        uint32_t sum = 0;  // wraps modulo 2^32, as the GPU's int32 accumulation
        for (int64_t k = 0; k < K; ++k) {
          sum += uint32_t(int32_t(element<operand_index::left>(left, lanes, m, k)) *
                          int32_t(element<operand_index::right>(right, lanes, k, n)));
        }
        if constexpr (accumulate) sum += uint32_t(old_value(destination, i, coord));
        out[i] = int32_t(sum);
      } else {
        float acc = 0.0f;
        if constexpr (tree) {
          for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
            float p[kPairs];
            for (int64_t j = 0; j < kPairs; ++j) {
              double pair = 0.0;  // two exact fp32 products, summed, rounded once to fp32
              for (int64_t h = 0; h < 2; ++h) {
                const int64_t k = k0 + 2 * j + h;
                if (k >= K) continue;  // the library's partial chunk is zero-filled
                pair += double(operand_value(element<operand_index::left>(left, lanes, m, k), relaxed)) *
                        double(operand_value(element<operand_index::right>(right, lanes, k, n), relaxed));
              }
              p[j] = float(pair);
            }
            for (int64_t j = 0; j < kQuads; ++j) acc = acc + (p[j] + p[j + kQuads]);
          }
        } else {
          for (int64_t k = 0; k < K; ++k) {
            acc = std::fma(operand_value(element<operand_index::left>(left, lanes, m, k), false),
                           operand_value(element<operand_index::right>(right, lanes, k, n), false), acc);
          }
        }
        if constexpr (accumulate) acc = float(old_value(destination, i, coord)) + acc;
        out[i] = destination_value<E>(acc);
      }
    }
  }

  // The destination's value before this run (multiply_accumulate).
  template <class DestT>
  static auto old_value(const DestT& destination, size_t i, const int64_t* coord) {
    using V = __mutmul2d_detail::element_of_t<DestT>;
    if constexpr (__mutmul2d_detail::is_cooperative_v<DestT>) {
      return V(destination.qmetal_elements_[i]);
    } else {
      return destination.qmetal_in_range(coord) ? V(*destination.qmetal_at(coord)) : V(0);
    }
  }
};

}  // namespace tensor_ops
}  // namespace mpp
