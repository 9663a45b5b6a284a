// Standard-library functions that real MSL (MLX's headers) uses, each checked
// in tests/test_sim_stdlib_surface.py against a NumPy model: the inverse
// hyperbolic and pi-scaled trigonometric functions, fdim, nextafter, the
// three-argument min/max/median, ldexp/frexp, simd_ and quad_
// shuffle_and_fill, the __metal_* builtins and the predefined macros.
// Written as ordinary MSL; nothing here is simulator-specific. Results are
// converted with T(...) so that the file compiles whether a function returns
// T or (bfloat promoted to) float.
#include <metal_stdlib>
using namespace metal;

// --- math in the element type: float, half, bfloat ----------------------------

constant constexpr int kUnary = 10;

template <typename T>
[[kernel]] void unary_math(device const T* x [[buffer(0)]],
                           device T* out [[buffer(1)]],
                           uint i [[thread_position_in_grid]]) {
  const T v = x[i];
  device T* o = out + i * kUnary;
  o[0] = T(asinh(v));
  o[1] = T(acosh(v));
  o[2] = T(atanh(v));
  o[3] = T(sinpi(v));
  o[4] = T(cospi(v));
  o[5] = T(tanpi(v));
  o[6] = T(precise::sinpi(v));
  o[7] = T(fast::cospi(v));
  o[8] = T(precise::tanpi(v));
  o[9] = T(fast::asinh(v));
}

template [[host_name("unary_math_float")]] [[kernel]] decltype(unary_math<float>) unary_math<float>;
template [[host_name("unary_math_half")]] [[kernel]] decltype(unary_math<half>) unary_math<half>;
template [[host_name("unary_math_bfloat")]] [[kernel]] decltype(unary_math<bfloat>) unary_math<bfloat>;

constant constexpr int kTernary = 12;

template <typename T>
[[kernel]] void ternary_math(device const T* xs [[buffer(0)]],
                             device const T* ys [[buffer(1)]],
                             device const T* zs [[buffer(2)]],
                             device T* out [[buffer(3)]],
                             uint i [[thread_position_in_grid]]) {
  const T x = xs[i], y = ys[i], z = zs[i];
  device T* o = out + i * kTernary;
  o[0] = T(fdim(x, y));
  o[1] = T(nextafter(x, y));
  o[2] = T(precise::fmax3(x, y, z));
  o[3] = T(precise::fmin3(x, y, z));
  o[4] = T(fmedian3(x, y, z));
  o[5] = T(max3(x, y, z));
  o[6] = T(min3(x, y, z));
  o[7] = T(median3(x, y, z));
  o[8] = T(precise::fdim(y, x));
  o[9] = T(fast::nextafter(y, x));
  o[10] = T(fast::fmedian3(z, x, y));
  o[11] = T(precise::nextafter(x, z));
}

template [[host_name("ternary_math_float")]] [[kernel]] decltype(ternary_math<float>) ternary_math<float>;
template [[host_name("ternary_math_half")]] [[kernel]] decltype(ternary_math<half>) ternary_math<half>;
template [[host_name("ternary_math_bfloat")]] [[kernel]] decltype(ternary_math<bfloat>) ternary_math<bfloat>;

// ldexp(x, k), then frexp(x) from the unqualified and the precise:: name.
template <typename T>
[[kernel]] void exponents(device const T* xs [[buffer(0)]],
                          device const int* ks [[buffer(1)]],
                          device T* out [[buffer(2)]],
                          device int* exps [[buffer(3)]],
                          uint i [[thread_position_in_grid]]) {
  const T x = xs[i];
  out[4 * i] = T(ldexp(x, ks[i]));
  out[4 * i + 1] = T(fast::ldexp(x, -ks[i]));
  int e = 0;
  out[4 * i + 2] = T(frexp(x, e));
  exps[2 * i] = e;
  int f = 0;
  out[4 * i + 3] = T(precise::frexp(x, f));
  exps[2 * i + 1] = f;
}

template [[host_name("exponents_float")]] [[kernel]] decltype(exponents<float>) exponents<float>;
template [[host_name("exponents_half")]] [[kernel]] decltype(exponents<half>) exponents<half>;
template [[host_name("exponents_bfloat")]] [[kernel]] decltype(exponents<bfloat>) exponents<bfloat>;

// The component-wise vector forms.
kernel void vector_math(device const float4* xs [[buffer(0)]],
                        device const float4* ys [[buffer(1)]],
                        device const float4* zs [[buffer(2)]],
                        device float4* out [[buffer(3)]],
                        uint i [[thread_position_in_grid]]) {
  const float4 x = xs[i], y = ys[i], z = zs[i];
  out[6 * i] = asinh(x);
  out[6 * i + 1] = sinpi(x);
  out[6 * i + 2] = fdim(x, y);
  out[6 * i + 3] = nextafter(x, y);
  out[6 * i + 4] = fmedian3(x, y, z);
  out[6 * i + 5] = max3(x, y, z);
}

// Integer max3 / min3 / median3, scalar and vector.
template <typename T>
[[kernel]] void integer_median(device const T* xs [[buffer(0)]],
                               device const T* ys [[buffer(1)]],
                               device const T* zs [[buffer(2)]],
                               device T* out [[buffer(3)]],
                               uint i [[thread_position_in_grid]]) {
  const T x = xs[i], y = ys[i], z = zs[i];
  out[4 * i] = max3(x, y, z);
  out[4 * i + 1] = min3(x, y, z);
  out[4 * i + 2] = median3(x, y, z);
  const vec<T, 2> m = median3(vec<T, 2>(x, z), vec<T, 2>(y, x), vec<T, 2>(z, y));
  out[4 * i + 3] = m.y;  // median3(z, x, y)
}

template [[host_name("integer_median_int")]] [[kernel]] decltype(integer_median<int>) integer_median<int>;
template [[host_name("integer_median_uint")]] [[kernel]] decltype(integer_median<uint>) integer_median<uint>;

// --- simd_ and quad_ shuffle_and_fill ----------------------------------------

// Every modulo the spec allows with every delta below it, then the forms
// without modulo; the test builds the same sequence.
constant constexpr int kShuffles = 208;

template <typename T>
[[kernel]] void shuffle_and_fill(device const T* data [[buffer(0)]],
                                 device const T* fill [[buffer(1)]],
                                 device T* out [[buffer(2)]],
                                 uint tid [[thread_index_in_threadgroup]]) {
  const T v = data[tid], f = fill[tid];
  device T* o = out + tid * kShuffles;
  int k = 0;
  for (ushort m = 2; m <= 32; m *= 2) {
    for (ushort d = 0; d < m; ++d) {
      o[k++] = simd_shuffle_and_fill_down(v, f, d, m);
      o[k++] = simd_shuffle_and_fill_up(v, f, d, m);
    }
  }
  for (ushort d = 0; d < 32; ++d) {
    o[k++] = simd_shuffle_and_fill_down(v, f, d);
    o[k++] = simd_shuffle_and_fill_up(v, f, d);
  }
  for (ushort m = 2; m <= 4; m *= 2) {
    for (ushort d = 0; d < m; ++d) {
      o[k++] = quad_shuffle_and_fill_down(v, f, d, m);
      o[k++] = quad_shuffle_and_fill_up(v, f, d, m);
    }
  }
  for (ushort d = 0; d < 4; ++d) {
    o[k++] = quad_shuffle_and_fill_down(v, f, d);
    o[k++] = quad_shuffle_and_fill_up(v, f, d);
  }
}

template [[host_name("shuffle_and_fill_float")]] [[kernel]] decltype(shuffle_and_fill<float>) shuffle_and_fill<float>;
template [[host_name("shuffle_and_fill_int")]] [[kernel]] decltype(shuffle_and_fill<int>) shuffle_and_fill<int>;

// --- __metal_* builtins --------------------------------------------------------

constant constexpr int kBuiltinMath = 14;
constant constexpr int kBuiltinSimd = 20;
constant constexpr int kBuiltinBits = 9;

// x, y, z: arbitrary floats; s: small integers (exact sums); p: powers of two
// (exact products); k: exponents.
kernel void builtins(device const float* xs [[buffer(0)]],
                     device const float* ys [[buffer(1)]],
                     device const float* zs [[buffer(2)]],
                     device const float* ss [[buffer(3)]],
                     device const float* ps [[buffer(4)]],
                     device const int* ks [[buffer(5)]],
                     device float* math_out [[buffer(6)]],
                     device float* simd_out [[buffer(7)]],
                     device uint* bits_out [[buffer(8)]],
                     uint tid [[thread_index_in_threadgroup]],
                     ushort lane [[thread_index_in_simdgroup]]) {
  const float x = xs[tid], y = ys[tid], z = zs[tid], s = ss[tid], p = ps[tid];
  device float* m = math_out + tid * kBuiltinMath;
  m[0] = __metal_asinh(x, __METAL_PRECISE_MATH__);
  m[1] = __metal_acosh(x, __METAL_FAST_MATH__);
  m[2] = __metal_atanh(x, __METAL_MAYBE_FAST_MATH__);
  m[3] = __metal_sinpi(x, __METAL_PRECISE_MATH__);
  m[4] = __metal_cospi(x, __METAL_PRECISE_MATH__);
  m[5] = __metal_tanpi(x, __METAL_PRECISE_MATH__);
  m[6] = __metal_fdim(x, y, __METAL_PRECISE_MATH__);
  m[7] = __metal_nextafter(x, y);
  m[8] = __metal_fmax3(x, y, z, __METAL_PRECISE_MATH__);
  m[9] = __metal_fmin3(x, y, z, __METAL_PRECISE_MATH__);
  m[10] = __metal_fmedian3(x, y, z, __METAL_PRECISE_MATH__);
  m[11] = __metal_ldexp(x, ks[tid], __METAL_PRECISE_MATH__);
  int e = 0;
  m[12] = __metal_frexp(x, &e);
  m[13] = float(e);

  device float* o = simd_out + tid * kBuiltinSimd;
  o[0] = __metal_simd_sum(s);
  o[1] = __metal_simd_max(x);
  o[2] = __metal_simd_min(x);
  o[3] = __metal_simd_prefix_inclusive_sum(s);
  o[4] = __metal_simd_prefix_exclusive_sum(s);
  o[5] = __metal_simd_product(p);
  o[6] = __metal_simd_prefix_inclusive_product(p);
  o[7] = __metal_simd_prefix_exclusive_product(p);
  o[8] = __metal_simd_broadcast(x, ushort(7));
  o[9] = __metal_simd_shuffle(x, ushort((lane * 5 + 1) % 32));
  o[10] = __metal_simd_shuffle_down(x, ushort(3));
  o[11] = __metal_simd_shuffle_up(x, ushort(5));
  o[12] = __metal_simd_shuffle_rotate_down(x, ushort(7));
  o[13] = __metal_simd_shuffle_rotate_up(x, ushort(9));
  o[14] = __metal_simd_shuffle_xor(x, ushort(13));
  o[15] = __metal_simd_shuffle_and_fill_down(x, z, ushort(5), __metal_get_simdgroup_size(ushort()));
  o[16] = __metal_simd_shuffle_and_fill_up(x, z, ushort(3), ushort(8));
  o[17] = float(__metal_get_simdgroup_size(ushort()));
  o[18] = float(__metal_get_thread_index_in_simdgroup(ushort()));
  o[19] = float(lane) - float(__metal_get_thread_index_in_simdgroup(ushort()));  // 0

  // The bitwise reductions on floats combine bit patterns.
  device uint* b = bits_out + tid * kBuiltinBits;
  b[0] = as_type<uint>(__metal_simd_and(x));
  b[1] = as_type<uint>(__metal_simd_or(x));
  b[2] = as_type<uint>(__metal_simd_xor(x));
  const bfloat h = bfloat(y);
  b[3] = uint(as_type<ushort>(__metal_simd_and(h)));
  b[4] = uint(as_type<ushort>(__metal_simd_or(h)));
  b[5] = uint(as_type<ushort>(__metal_simd_xor(h)));
  const uint u = as_type<uint>(z);
  b[6] = __metal_simd_and(u);
  b[7] = __metal_simd_or(u);
  b[8] = __metal_simd_xor(u);
}

// --- predefined macros -----------------------------------------------------------

METAL_FUNC int twice(int x) { return 2 * x; }

kernel void predefined(device int* out [[buffer(0)]], uint tid [[thread_position_in_grid]]) {
  if (tid != 0) return;
#if defined(__HAVE_BFLOAT__)
  out[0] = __HAVE_BFLOAT__;
#else
  out[0] = -1;
#endif
  out[1] = __METAL_FAST_MATH__ ? 1 : 0;
  out[2] = __METAL_PRECISE_MATH__ ? 1 : 0;
  out[3] = __METAL_MAYBE_FAST_MATH__ ? 1 : 0;
  out[4] = twice(21);
#if defined(__METAL_VERSION__)
  out[5] = __METAL_VERSION__;
#else
  out[5] = -1;
#endif
}
