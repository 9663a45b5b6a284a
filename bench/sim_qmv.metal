// A 4-bit MLX-style mat-vec (group size 64, f16 scales and biases), the
// workload bench/sim_throughput.py times the simulator on. Two simdgroups of
// four rows each per threadgroup; each lane decodes one packed word per step.
#include <metal_stdlib>
using namespace metal;

constant constexpr int kRowsPerSimdgroup = 4;
constant constexpr int kSimdgroups = 2;
constant constexpr int kGroupSize = 64;
constant constexpr int kValuesPerWord = 8;

struct QmvArgs {
  uint N, K;
};

kernel void qmv4(constant QmvArgs& args [[buffer(0)]],
                 device const uint* w [[buffer(1)]],
                 device const half* scales [[buffer(2)]],
                 device const half* biases [[buffer(3)]],
                 device const float* x [[buffer(4)]],
                 device float* y [[buffer(5)]],
                 uint group [[threadgroup_position_in_grid]],
                 ushort simd_group [[simdgroup_index_in_threadgroup]],
                 ushort lane [[thread_index_in_simdgroup]]) {
  const uint words_per_row = args.K / kValuesPerWord;
  const uint groups_per_row = args.K / kGroupSize;
  const uint first_row = (group * kSimdgroups + simd_group) * kRowsPerSimdgroup;
  float acc[kRowsPerSimdgroup] = {0, 0, 0, 0};
  for (uint word = lane; word < words_per_row; word += 32) {
    const uint k = word * kValuesPerWord;
    float xs[kValuesPerWord];
    float x_sum = 0;
    for (int i = 0; i < kValuesPerWord; ++i) {
      xs[i] = x[k + i];
      x_sum += xs[i];
    }
    for (int r = 0; r < kRowsPerSimdgroup; ++r) {
      const uint row = first_row + r;
      const uint packed = w[row * words_per_row + word];
      const uint g = row * groups_per_row + k / kGroupSize;
      float dot = 0;
      for (int i = 0; i < kValuesPerWord; ++i) dot += xs[i] * float((packed >> (4 * i)) & 0xF);
      acc[r] += float(scales[g]) * dot + float(biases[g]) * x_sum;
    }
  }
  for (int r = 0; r < kRowsPerSimdgroup; ++r) {
    const float total = simd_sum(acc[r]);
    if (lane == 0) y[first_row + r] = total;
  }
}
