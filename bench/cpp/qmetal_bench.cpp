// qmetal's C++ ops under Google Benchmark, on the LLM shapes of
// `python -m qmetal bench`: Llama-3-8B's linear layers (attention q/o and
// k/v, MLP up and down) at decode (M = 1), a small batch (M = 4) and
// prefill (M = 512), and a Mixtral-like MoE layer (8 experts, top 2); MLX
// affine 4-bit (group size 64) and GGML Q4_0, Q8_0, Q4_K and Q6_K weights,
// float16 activations; on the default device (QMETAL_BACKEND picks
// another). On the simulator the shapes are scaled down by 8 (and prefill
// is M = 64), as `python -m qmetal bench` does: its times check that the
// kernels run, they say nothing about a GPU.
//
// Names: <format>/<layer>/M:<rows>, e.g. affine_q4_g64/mlp_up/M:1. Each
// case reports bytes_per_second (the weights read, activations and
// results), FLOP/s (2 M N K; 2 M top_k N K for MoE) and its kernel in the
// label; its result is checked against the dequantized weight once, before
// timing. `--benchmark_format=json` gives these to tooling.
#include <benchmark/benchmark.h>

#include <qmetal/ops.h>
#include <qmetal/qmetal.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

struct Layer {
  const char* name;
  int64_t n, k;
  int64_t experts = 0, top_k = 0;  // MoE when experts > 0
};

// As python/qmetal/_bench.py: LLAMA_SHAPES, MOE and ROWS, and their
// simulator versions.
const Layer kLayers[] = {{"attn_qo", 4096, 4096}, {"attn_kv", 1024, 4096}, {"mlp_up", 14336, 4096},
                         {"mlp_down", 4096, 14336}, {"moe_e8_top2", 14336, 4096, 8, 2}};
const int64_t kRows[] = {1, 4, 512};
const int64_t kSimScale = 8;
const int64_t kSimRows[] = {1, 4, 64};

struct Format {
  const char* name;
  const char* ggml_type;                // nullptr: MLX affine
  std::vector<size_t> half_offsets;     // GGML: the fp16 scale fields in each block
};
const Format kFormats[] = {
    {"affine_q4_g64", nullptr, {}},
    {"q4_0", "Q4_0", {0}},     // d, qs[16]
    {"q8_0", "Q8_0", {0}},     // d, qs[32]
    {"q4_k", "Q4_K", {0, 2}},  // d, dmin, scales[12], qs[128]
    {"q6_k", "Q6_K", {208}},   // ql[128], qh[64], scales[16], d
};
const int kAffineBits = 4, kAffineGroupSize = 64;

uint16_t to_half(float value) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mantissa = x & 0x7fffffu;
  const int32_t exponent = int32_t((x >> 23) & 0xffu) - 127 + 15;
  if (((x >> 23) & 0xffu) == 0xffu) return uint16_t(sign | 0x7c00u | (mantissa ? 0x200u : 0u));
  if (exponent >= 31) return uint16_t(sign | 0x7c00u);
  if (exponent <= 0) {
    if (exponent < -10) return uint16_t(sign);
    mantissa |= 0x800000u;
    const int shift = 14 - exponent;
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1), middle = 1u << (shift - 1);
    if (rest > middle || (rest == middle && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = (uint32_t(exponent) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry rounds up the exponent, as it should
  return uint16_t(sign | half);
}

float from_half(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  float value;
  if (exponent == 0) {
    value = std::ldexp(float(mantissa), -24);
  } else if (exponent == 31) {
    value = mantissa ? NAN : INFINITY;
  } else {
    value = std::ldexp(float(mantissa | 0x400u), int(exponent) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits |= sign;
  std::memcpy(&value, &bits, 4);
  return value;
}

float element(const qmetal::Buffer& b, size_t i) {
  if (b.dtype() == qmetal::DType::f16) return from_half(static_cast<const uint16_t*>(b.data())[i]);
  return static_cast<const float*>(b.data())[i];
}

// One benchmark's data, made once (Google Benchmark calls the function
// several times while it sizes the runs).
struct Case {
  std::string name;
  qmetal::DevicePtr device;
  bool ggml = false, moe = false;
  int64_t m = 0, n = 0, k = 0, experts = 0, top_k = 0;
  qmetal::BufferPtr x, y, ids;
  qmetal::QuantizedWeight affine;
  qmetal::GGMLWeight blocks;
  double bytes = 0, flops = 0;
  std::string kernel, error;

  void run() {
    if (ggml && moe) {
      qmetal::ggml_gather_matmul(*device, x, blocks, nullptr, ids, qmetal::DType::f32, y);
    } else if (ggml) {
      qmetal::ggml_matmul(*device, x, blocks, qmetal::DType::f32, false, y);
    } else if (moe) {
      qmetal::affine_gather_matmul(*device, x, affine, nullptr, ids, true, false, y);
    } else {
      qmetal::affine_matmul(*device, x, affine, true, y);
    }
  }
};

// Expert `e` of the case's weight (the whole weight when it has none),
// dequantized: [N, K], float32 for GGML and the scales' dtype for affine.
// One expert at a time, so a full-size MoE layer is never dense at once.
qmetal::BufferPtr dequantize_expert(const Case& c, int64_t e) {
  const int64_t n = c.n, k = c.k;
  if (c.ggml) {
    const size_t expert_bytes = size_t(n * (k / c.blocks.type->block_values)) * c.blocks.type->block_bytes;
    auto expert = qmetal::GGMLWeight::from_buffer(c.blocks.data, c.blocks.type->name, {n, k},
                                                  c.blocks.offset + size_t(e) * expert_bytes);
    return qmetal::ggml_dequantize(*c.device, expert, qmetal::DType::f32);
  }
  auto part = [&](const qmetal::BufferPtr& whole, int64_t cols) {
    const size_t bytes = size_t(n * cols) * qmetal::dtype_size(whole->dtype());
    return qmetal::Buffer::wrap(static_cast<uint8_t*>(whole->data()) + size_t(e) * bytes, whole->dtype(),
                                {n, cols}, whole, 1, true);
  };
  auto expert = qmetal::QuantizedWeight::from_buffers(part(c.affine.packed, k * c.affine.bits / 32),
                                                      part(c.affine.scales, k / c.affine.group_size),
                                                      part(c.affine.biases, k / c.affine.group_size),
                                                      c.affine.bits, c.affine.group_size);
  return qmetal::affine_dequantize(*c.device, expert);
}

std::unique_ptr<Case> make_case(const std::string& name, const Format& format, const Layer& layer, int64_t n,
                                int64_t k, int64_t m) {
  auto c = std::make_unique<Case>();
  c->name = name;
  c->device = qmetal::default_device();
  c->ggml = format.ggml_type != nullptr;
  c->moe = layer.experts > 0;
  c->m = m, c->n = n, c->k = k, c->experts = std::max<int64_t>(layer.experts, 1), c->top_k = layer.top_k;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  const int64_t E = c->experts;
  qmetal::Shape w_shape = c->moe ? qmetal::Shape{E, n, k} : qmetal::Shape{n, k};
  double weight_bytes = 0;
  if (c->ggml) {
    const qmetal::GGMLType& type = qmetal::ggml_type(format.ggml_type);
    const size_t count = size_t(E * n * (k / type.block_values));
    auto data = qmetal::Buffer::allocate(qmetal::DType::u8, {int64_t(count * type.block_bytes)});
    auto* bytes = static_cast<uint8_t*>(data->data());
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < count * type.block_bytes; ++i) bytes[i] = uint8_t(byte(rng));
    for (size_t b = 0; b < count; ++b) {  // finite scales of a weight's size
      for (size_t offset : format.half_offsets) {
        const uint16_t scale = to_half(0.001f * (1.0f + 0.25f * normal(rng)));
        std::memcpy(bytes + b * type.block_bytes + offset, &scale, 2);
      }
    }
    c->blocks = qmetal::GGMLWeight::from_buffer(data, format.ggml_type, w_shape);
    weight_bytes = double(data->nbytes());
  } else {
    auto dense = qmetal::Buffer::allocate(qmetal::DType::f16, w_shape);
    auto* w = static_cast<uint16_t*>(dense->data());
    for (int64_t i = 0; i < dense->size(); ++i) w[i] = to_half(0.02f * normal(rng));
    c->affine = qmetal::affine_quantize(*c->device, dense, kAffineBits, kAffineGroupSize);
    weight_bytes = double(c->affine.packed->nbytes() + c->affine.scales->nbytes() + c->affine.biases->nbytes());
  }
  c->x = qmetal::Buffer::allocate(qmetal::DType::f16, c->moe ? qmetal::Shape{m, 1, 1, k} : qmetal::Shape{m, k});
  auto* x = static_cast<uint16_t*>(c->x->data());
  for (int64_t i = 0; i < c->x->size(); ++i) x[i] = to_half(normal(rng));
  const qmetal::DType out = c->ggml ? qmetal::DType::f32 : qmetal::DType::f16;
  c->y = qmetal::Buffer::allocate(out, c->moe ? qmetal::Shape{m, c->top_k, 1, n} : qmetal::Shape{m, n});
  double weights_read = weight_bytes;
  if (c->moe) {
    c->ids = qmetal::Buffer::allocate(qmetal::DType::u32, {m, c->top_k});
    auto* ids = static_cast<uint32_t*>(c->ids->data());
    std::vector<uint32_t> experts(static_cast<size_t>(E)), used(static_cast<size_t>(E), 0u);
    std::iota(experts.begin(), experts.end(), 0u);
    for (int64_t t = 0; t < m; ++t) {  // top_k distinct experts per token
      std::shuffle(experts.begin(), experts.end(), rng);
      for (int64_t j = 0; j < c->top_k; ++j) used[ids[t * c->top_k + j] = experts[size_t(j)]] = 1;
    }
    weights_read = weight_bytes * double(std::accumulate(used.begin(), used.end(), 0u)) / double(E);
    c->flops = 2.0 * double(m * c->top_k * n * k);
    c->kernel = c->ggml ? "ggml gather" : "affine gather";
  } else {
    c->flops = 2.0 * double(m * n * k);
    auto plans = c->ggml ? qmetal::plan_ggml_matmul(*c->device, c->x, c->blocks, c->y, uint32_t(m), 0,
                                                    qmetal::GGMLRoute::automatic)
                         : qmetal::plan_affine_matmul(*c->device, c->x, c->affine, true, c->y,
                                                      qmetal::AffineRoute::automatic);
    c->kernel = plans.front().kernel;
  }
  c->bytes = weights_read + double(c->x->nbytes() + c->y->nbytes());

  // Checked once: the first and last rows (tokens) against the dequantized
  // weight (of the experts they use) in double precision.
  c->run();
  const uint32_t* ids = c->moe ? static_cast<const uint32_t*>(c->ids->data()) : nullptr;
  double diff = 0, norm = 0;
  for (int64_t row : {int64_t(0), m - 1}) {
    for (int64_t j = 0; j < std::max<int64_t>(c->top_k, 1); ++j) {
      const int64_t expert = c->moe ? int64_t(ids[row * c->top_k + j]) : 0;
      auto dense = dequantize_expert(*c, expert);
      for (int64_t col = 0; col < n; ++col) {
        double expected = 0;
        const size_t w0 = size_t(col * k), x0 = size_t(row * k);
        for (int64_t i = 0; i < k; ++i) expected += double(element(*dense, w0 + size_t(i))) *
                                                    double(element(*c->x, x0 + size_t(i)));
        const size_t y0 = size_t(c->moe ? (row * c->top_k + j) * n : row * n);
        const double got = element(*c->y, y0 + size_t(col));
        diff += (got - expected) * (got - expected);
        norm += expected * expected;
      }
    }
  }
  if (!(std::sqrt(diff) <= 1e-2 * std::sqrt(norm))) {
    char message[160];
    std::snprintf(message, sizeof message, "wrong result: relative error %.2g against the dequantized weight",
                  std::sqrt(diff / norm));
    c->error = message;
  }
  return c;
}

void bench(benchmark::State& state, const std::string& name, Format format, Layer layer, int64_t n, int64_t k,
           int64_t m) {
  static std::unique_ptr<Case> cached;  // one case at a time: the weights of all of them need not fit
  if (!cached || cached->name != name) {
    cached.reset();
    try {
      cached = make_case(name, format, layer, n, k, m);
    } catch (const std::exception& error) {
      state.SkipWithError(error.what());
      return;
    }
  }
  Case& c = *cached;
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  for (auto _ : state) c.run();
  state.SetLabel(c.kernel);
  state.SetBytesProcessed(int64_t(double(state.iterations()) * c.bytes));
  state.counters["FLOP/s"] = benchmark::Counter(c.flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["M"] = double(m);
  state.counters["N"] = double(n);
  state.counters["K"] = double(k);
}

}  // namespace

int main(int argc, char** argv) {
  qmetal::initialize();
  qmetal::DevicePtr device;
  try {
    device = qmetal::default_device();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "qmetal: no device: %s\n", error.what());
    return 1;
  }
  const bool simulated = device->backend() == qmetal::Backend::sim;
  benchmark::AddCustomContext("qmetal_version", qmetal::version());
  benchmark::AddCustomContext("qmetal_backend", std::string(qmetal::backend_name(device->backend())));
  benchmark::AddCustomContext("qmetal_device", device->name());
  benchmark::AddCustomContext("qmetal_shapes", simulated ? "Llama-3-8B / 8 (simulator)" : "Llama-3-8B");
  for (const Format& format : kFormats) {
    for (const Layer& layer : kLayers) {
      const int64_t scale = simulated ? kSimScale : 1;
      for (int64_t m : simulated ? kSimRows : kRows) {
        const std::string name = std::string(format.name) + "/" + layer.name + "/M:" + std::to_string(m);
        benchmark::RegisterBenchmark(name.c_str(), bench, name, format, layer, layer.n / scale, layer.k / scale, m)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
