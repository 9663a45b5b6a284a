// Metal 4's tensor types for the simulator: metal::tensor over device,
// threadgroup or thread memory, extents / dextents, metal::array, the
// execution scopes and metal::cooperative_tensor (whose layout the operation
// that creates it defines: qmetal_sim/tensor_ops.h). What each piece models,
// and the sources, are in ../shared/design/METAL4_TENSOR_OPS.md (§1.5-1.8):
//   * extents are listed innermost first: a row-major M x K matrix is
//     extents (K, M), and coordinates (slice, get_multidimensional_index)
//     follow the same order;
//   * strides are in elements, innermost first; without them a tensor is
//     packed (stride 0 = 1, stride r = product of the extents before r);
//   * slice(i0, i1) moves the origin and keeps the remaining extents
//     (dynamic); slice<E0, E1>(i0, i1) gives static extents that nothing
//     checks against the memory behind them, as on the GPU;
//   * address spaces are erased by the simulator (the `device` /
//     `threadgroup` in tensor<device half, ...> compile to nothing), so a
//     tensor here is a pointer, extents and strides whatever it points at.
#pragma once

#include <cstdint>
#include <cstdio>
#include <utility>

#include "qmetal_sim/prelude.h"

namespace qmetal_sim {

// Reports a fault a GPU would leave undefined, at the kernel's line.
[[noreturn]] inline void tensor_fail(const Here& here, const char* op, const char* message) {
  const abi::Site site = here.site(op);
  runtime->fail(message, &site);
  __builtin_unreachable();
}

}  // namespace qmetal_sim

namespace metal {

inline constexpr size_t dynamic_extent = size_t(-1);

// metal::array: a fixed-size aggregate, as std::array (strides are written
// array<int, 2>({1, row_pitch})).
template <class T, size_t N>
struct array {
  T qmetal_elements_[N > 0 ? N : 1];
  constexpr T& operator[](size_t i) { return qmetal_elements_[i]; }
  constexpr const T& operator[](size_t i) const { return qmetal_elements_[i]; }
  static constexpr size_t size() { return N; }
};

template <class IndexType, size_t... Extents>
struct extents {
  static_assert(std::is_integral_v<IndexType>, "extents: the index type is an integer type");
  using index_type = IndexType;
  using size_type = std::make_unsigned_t<IndexType>;
  using rank_type = size_t;

  static constexpr rank_type rank() { return sizeof...(Extents); }
  static constexpr rank_type rank_dynamic() { return (rank_type(0) + ... + rank_type(Extents == dynamic_extent)); }
  static constexpr size_t static_extent(rank_type r) {
    constexpr size_t all[] = {Extents..., 0};
    return all[r];
  }

  constexpr extents() : values_{IndexType(Extents == dynamic_extent ? 0 : Extents)...} {}

  // Every extent, or only the dynamic ones, innermost first.
  template <class... I, std::enable_if_t<(sizeof...(I) > 0) && (sizeof...(I) == rank() || sizeof...(I) == rank_dynamic()) &&
                                             (std::is_convertible_v<I, IndexType> && ...),
                                         int> = 0>
  constexpr extents(I... given) : values_{} {
    const IndexType list[] = {IndexType(given)...};
    size_t next = 0;
    for (size_t r = 0; r < rank(); ++r) {
      if (sizeof...(I) == rank()) values_[r] = list[r];
      else values_[r] = static_extent(r) == dynamic_extent ? list[next++] : IndexType(static_extent(r));
    }
  }

  // From extents of the same rank: static ones become dynamic values.
  template <class OtherIndex, size_t... Other, std::enable_if_t<sizeof...(Other) == sizeof...(Extents), int> = 0>
  constexpr extents(const extents<OtherIndex, Other...>& other) : values_{} {
    for (size_t r = 0; r < rank(); ++r) {
      values_[r] = static_extent(r) == dynamic_extent ? IndexType(other.extent(r)) : IndexType(static_extent(r));
    }
  }

  constexpr IndexType extent(rank_type r) const { return values_[r]; }

  IndexType values_[sizeof...(Extents) > 0 ? sizeof...(Extents) : 1];
};

namespace tensor_detail {
template <class I, class Sequence>
struct dynamic_extents;
template <class I, size_t... S>
struct dynamic_extents<I, std::index_sequence<S...>> {
  using type = extents<I, ((void)S, dynamic_extent)...>;
};
}  // namespace tensor_detail

template <class IndexType, size_t Rank>
using dextents = typename tensor_detail::dynamic_extents<IndexType, std::make_index_sequence<Rank>>::type;

// Tensor descriptors: a handle is a kernel argument the host binds; an
// inline tensor is made in the shader over a pointer. tensor_offset is the
// tag slicing a handle adds (a tag, not a descriptor).
struct tensor_handle {};
struct tensor_inline {};
struct tensor_offset {};

// Execution scopes: the threads that run a tensor operation together.
template <int N>
struct execution_simdgroups {
  static_assert(N > 0, "execution_simdgroups<N>: N > 0");
  static constexpr int simdgroups = N;
};
using execution_simdgroup = execution_simdgroups<1>;
template <int N>
struct execution_threads {
  static_assert(N > 0, "execution_threads<N>: N > 0");
};
using execution_thread = execution_threads<1>;

template <class T>
using __remove_addrspace_t = T;  // the simulator has no address spaces in types

template <class ElementType, class Extents, class Descriptor = tensor_handle, class... Tags>
class tensor;

namespace tensor_detail {
template <class T>
struct is_tensor : std::false_type {};
template <class E, class X, class D, class... T>
struct is_tensor<tensor<E, X, D, T...>> : std::true_type {};

struct raw {};

template <class Descriptor, class... Tags>
inline constexpr bool adds_offset = std::is_same_v<Descriptor, tensor_handle> && !(std::is_same_v<Tags, tensor_offset> || ...);
}  // namespace tensor_detail

template <class T>
inline constexpr bool is_tensor_v = tensor_detail::is_tensor<std::remove_cv_t<T>>::value;

// A view of memory: element (c0, c1, ...) lies at data + sum(c_r * stride_r).
// The members are public so that views of other types (slices) can be made;
// a tensor_handle kernel argument is bound from a buffer that holds exactly
// these members (qmetal.sim.tensor_handle writes one).
template <class ElementType, class Extents, class Descriptor, class... Tags>
class tensor {
  static_assert(std::is_same_v<Descriptor, tensor_handle> || std::is_same_v<Descriptor, tensor_inline>,
                "tensor: the descriptor is tensor_handle or tensor_inline (tensor_offset is a tag that slice() adds, "
                "not a descriptor)");
  static_assert(Extents::rank() >= 1 && Extents::rank() <= 16, "tensor: rank 1 to 16");

 public:
  using element_type = ElementType;
  using value_type = std::remove_cv_t<ElementType>;
  using extents_type = Extents;
  using index_type = typename Extents::index_type;
  using descriptor_type = Descriptor;
  static constexpr size_t kRank = Extents::rank();

  ElementType* qmetal_data_;
  int64_t qmetal_extents_[kRank];
  int64_t qmetal_strides_[kRank];

  // Over a pointer: packed, or with explicit strides (in elements).
  template <class D = Descriptor, std::enable_if_t<std::is_same_v<D, tensor_inline>, int> = 0>
  tensor(ElementType* data, const Extents& e) : qmetal_data_(data) {
    int64_t stride = 1;
    for (size_t r = 0; r < kRank; ++r) {
      qmetal_extents_[r] = int64_t(e.extent(r));
      qmetal_strides_[r] = stride;
      stride *= qmetal_extents_[r];
    }
  }
  template <class S, class D = Descriptor,
            std::enable_if_t<std::is_same_v<D, tensor_inline> && std::is_integral_v<S>, int> = 0>
  tensor(ElementType* data, const Extents& e, const array<S, kRank>& strides) : qmetal_data_(data) {
    for (size_t r = 0; r < kRank; ++r) {
      qmetal_extents_[r] = int64_t(e.extent(r));
      qmetal_strides_[r] = int64_t(strides[r]);
    }
  }

  static constexpr size_t get_rank() { return kRank; }
  Extents extents() const { return make_extents(std::make_index_sequence<kRank>()); }
  Extents get_extents() const { return extents(); }
  index_type get_extent(size_t r) const { return index_type(qmetal_extents_[r]); }
  index_type get_stride(size_t r) const { return index_type(qmetal_strides_[r]); }
  array<index_type, kRank> get_strides() const {
    array<index_type, kRank> s{};
    for (size_t r = 0; r < kRank; ++r) s[r] = index_type(qmetal_strides_[r]);
    return s;
  }
  ElementType* data() const { return qmetal_data_; }

  // A view whose origin is at (i0, i1, ...) of this one, with the remaining
  // extents (dynamic), or with the extents given (static; dynamic_extent
  // entries mean the remaining extent).
  template <class... I, std::enable_if_t<sizeof...(I) == kRank && (std::is_integral_v<I> && ...), int> = 0>
  auto slice(I... origin) const {
    return sliced<dextents<index_type, kRank>>(origin...);
  }
  template <size_t... E, class... I,
            std::enable_if_t<sizeof...(E) == kRank && sizeof...(I) == kRank && (std::is_integral_v<I> && ...), int> = 0>
  auto slice(I... origin) const {
    return sliced<metal::extents<index_type, E...>>(origin...);
  }

  // The element at `coord` (innermost first); no bounds check.
  ElementType* qmetal_at(const int64_t* coord) const {
    int64_t offset = 0;
    for (size_t r = 0; r < kRank; ++r) offset += coord[r] * qmetal_strides_[r];
    return qmetal_data_ + offset;
  }
  bool qmetal_in_range(const int64_t* coord) const {
    for (size_t r = 0; r < kRank; ++r)
      if (coord[r] < 0 || coord[r] >= qmetal_extents_[r]) return false;
    return true;
  }

 private:
  template <size_t... R>
  Extents make_extents(std::index_sequence<R...>) const {
    return Extents(index_type(qmetal_extents_[R])...);
  }

  template <class NewExtents, class... I>
  auto sliced(I... origin) const {
    using Result = std::conditional_t<tensor_detail::adds_offset<Descriptor, Tags...>,
                                      tensor<ElementType, NewExtents, Descriptor, Tags..., tensor_offset>,
                                      tensor<ElementType, NewExtents, Descriptor, Tags...>>;
    const int64_t at[] = {int64_t(origin)...};
    Result out = Result::qmetal_raw(qmetal_at(at));
    for (size_t r = 0; r < kRank; ++r) {
      const int64_t remaining = qmetal_extents_[r] > at[r] ? qmetal_extents_[r] - at[r] : 0;
      out.qmetal_extents_[r] =
          NewExtents::static_extent(r) == dynamic_extent ? remaining : int64_t(NewExtents::static_extent(r));
      out.qmetal_strides_[r] = qmetal_strides_[r];
    }
    return out;
  }

  template <class, class, class, class...>
  friend class tensor;

  tensor(ElementType* data, tensor_detail::raw) : qmetal_data_(data) {}
  static tensor qmetal_raw(ElementType* data) { return tensor(data, tensor_detail::raw{}); }
};

// tensor(pointer, extents[, strides]) makes an inline tensor.
template <class T, class I, size_t... E>
tensor(T*, extents<I, E...>) -> tensor<T, extents<I, E...>, tensor_inline>;
template <class T, class I, size_t... E, class S, size_t R>
tensor(T*, extents<I, E...>, array<S, R>) -> tensor<T, extents<I, E...>, tensor_inline>;

// A tensor whose elements are spread over the threads of an execution scope
// in a layout the operation that made it defines (`Layout`: capacity, and
// for each of the calling thread's slots, its coordinates or none).
// Elements start as 0xFF bytes (NaN, -1): Apple's are not initialised.
template <class ElementType, class Extents, class Layout>
class cooperative_tensor {
 public:
  using element_type = ElementType;
  using value_type = std::remove_cv_t<ElementType>;
  using extents_type = Extents;
  using layout_type = Layout;
  using index_type = typename Extents::index_type;
  static constexpr size_t kCapacity = Layout::capacity;

  value_type qmetal_elements_[kCapacity];

  cooperative_tensor() { std::memset(static_cast<void*>(qmetal_elements_), 0xFF, sizeof qmetal_elements_); }

  static constexpr size_t get_capacity() { return kCapacity; }
  bool is_valid_element(size_t i) const {
    int64_t coord[2];
    return i < kCapacity && Layout::coordinates(i, coord);
  }
  value_type& operator[](size_t i) { return qmetal_elements_[i]; }
  const value_type& operator[](size_t i) const { return qmetal_elements_[i]; }
  value_type get(size_t i) const { return is_valid_element(i) ? qmetal_elements_[i] : value_type(0); }
  void set(size_t i, value_type v) {
    if (is_valid_element(i)) qmetal_elements_[i] = v;
  }
  // [0] is the column (innermost), [1] the row.
  array<index_type, 2> get_multidimensional_index(size_t i) const {
    int64_t coord[2] = {-1, -1};
    Layout::coordinates(i, coord);
    return array<index_type, 2>{{index_type(coord[0]), index_type(coord[1])}};
  }

  // Every thread of the scope loads / stores its own elements; those
  // outside the view's extents are skipped (store) or read as 0 (load).
  template <class T>
  void load(const T& source, qmetal_sim::Here here = qmetal_sim::Here()) {
    check_view<T>();
    qmetal_sim::simd_sync(here, "cooperative_tensor::load");
    for (size_t i = 0; i < kCapacity; ++i) {
      int64_t coord[2];
      if (!Layout::coordinates(i, coord)) continue;
      qmetal_elements_[i] = source.qmetal_in_range(coord) ? value_type(*source.qmetal_at(coord)) : value_type(0);
    }
  }
  template <class T>
  void store(const T& destination, qmetal_sim::Here here = qmetal_sim::Here()) const {
    check_view<T>();
    static_assert(!std::is_const_v<typename T::element_type>, "cooperative_tensor::store: the tensor is read-only");
    qmetal_sim::simd_sync(here, "cooperative_tensor::store");
    for (size_t i = 0; i < kCapacity; ++i) {
      int64_t coord[2];
      if (!Layout::coordinates(i, coord)) continue;
      if (destination.qmetal_in_range(coord)) *destination.qmetal_at(coord) = qmetal_elements_[i];
    }
  }

 private:
  template <class T>
  static constexpr void check_view() {
    static_assert(is_tensor_v<T>, "cooperative_tensor::load / store take a tensor");
    static_assert(T::kRank == 2, "cooperative_tensor::load / store: the simulator has rank-2 cooperative tensors");
    static_assert(std::is_same_v<typename T::value_type, value_type>,
                  "cooperative_tensor::load / store: the tensor's element type must be the cooperative tensor's "
                  "(no conversion on load or store)");
  }
};

}  // namespace metal
