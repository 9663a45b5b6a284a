// Valid MSL that plain C++ mishandles; the strict simulator must compile and
// run it as Apple's compiler does (tests/test_sim_strict.py).
#include <metal_stdlib>
using namespace metal;

struct Params {
  uint count;
  float scale;
};

// Overloads on the address space of the pointee (MSL spec 1.5.1): which one
// runs is visible in the result.
float source_tag(const device float* p) { return p[0] + 100.0f; }
float source_tag(const threadgroup float* p) { return p[0] + 200.0f; }
float source_tag(const constant float* p) { return p[0] + 300.0f; }
float source_tag(const thread float* p) { return p[0] + 400.0f; }

template <typename T>
T load_first(const device T* p) { return p[0] * T(2); }
template <typename T>
T load_first(const threadgroup T* p) { return p[0] * T(3); }

// A threadgroup pointer passed into a helper, which works on the kernel's tile.
void fill_tile(threadgroup float* tile, uint lane, float value) { tile[lane] = value + float(lane); }

// Member functions qualified by the address space of `this` (as MLX's
// complex64_t constructors are): one per space, the same code.
struct Scaled {
  float value;
  Scaled(float v) thread : value(v * 2.0f) {}
  Scaled(float v) threadgroup : value(v * 2.0f) {}
  Scaled(float v) device : value(v * 2.0f) {}
  float get() const thread { return value; }
  float get() const device { return value; }
  float get() const constant { return value; }
};

// Static constant members and `const constant` references.
struct Limits {
  static constant constexpr int kLanes = 32;
};

float scaled_sum(const constant Params& params, const device float* in, uint i) {
  return params.scale * in[i];
}

kernel void address_spaces(constant Params& params [[buffer(0)]], const device float* in [[buffer(1)]],
                           constant float* table [[buffer(2)]], device float* out [[buffer(3)]],
                           uint lane [[thread_index_in_threadgroup]]) {
  threadgroup float tile[Limits::kLanes];
  fill_tile(tile, lane, 1.0f);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  thread float local[1] = {5.0f};
  if (lane == 0) {
    out[0] = source_tag(in);
    out[1] = source_tag(tile);
    out[2] = source_tag(table);
    out[3] = source_tag(local);
    out[4] = source_tag(in + 1);
    out[5] = source_tag((const threadgroup float*)tile + 2);
    out[6] = load_first(in);
    out[7] = load_first(tile + 3);
    thread Scaled s(in[0]);
    out[8] = s.get();
    out[9] = scaled_sum(params, in, 1);
    out[10] = float(params.count);
  }
}
