// The CUDA backend (see cuda.h): devices, device copies of Buffers, the
// kernel tables of the generated CUDA, and the executor of DispatchPlans.
#include "cuda/cuda.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "qmetal/error.h"
#include "qmetal_args.h"
#include "qmetal_cuda/abi.h"

// The built-in kernels: one table per generated file (CMake writes the list).
using QmetalCudaLibraryFn = const qmetal_cuda::KernelEntry* (*)(unsigned* count);
extern const QmetalCudaLibraryFn qmetal_cuda_builtin_entries[];
extern const size_t qmetal_cuda_builtin_entry_count;

namespace qmetal::cuda {

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    runtime_error("CUDA: ", what, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status));
  }
}

std::atomic<uint64_t> to_device_count{0}, to_device_bytes{0}, to_host_count{0}, to_host_bytes{0}, launch_count{0};

// Minimum compute capability: __syncwarp, *_sync shuffles and independent
// thread scheduling (Volta).
constexpr int kMinMajor = 7;

int device_ordinal() {
  const char* env = std::getenv("QMETAL_CUDA_DEVICE");
  return env && *env ? std::atoi(env) : 0;
}

// Why no device is usable, or "" when one is.
std::string probe() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA driver or device (") + cudaGetErrorName(status) + ": " + cudaGetErrorString(status) +
           ")";
  }
  const int ordinal = device_ordinal();
  if (count == 0) return "no CUDA device";
  if (ordinal < 0 || ordinal >= count) {
    return "QMETAL_CUDA_DEVICE=" + std::to_string(ordinal) + " but there are " + std::to_string(count) + " devices";
  }
  cudaDeviceProp props{};
  if (cudaGetDeviceProperties(&props, ordinal) != cudaSuccess) return "cannot read the device's properties";
  if (props.major < kMinMajor) {
    return std::string(props.name) + " has compute capability " + std::to_string(props.major) + "." +
           std::to_string(props.minor) + "; the kernels need 7.0 or later";
  }
  return "";
}

const std::string& probe_once() {
  static const std::string reason = probe();
  return reason;
}

class CudaDevice final : public Device {
 public:
  CudaDevice(int ordinal, const cudaDeviceProp& props, DeviceCapabilities caps)
      : Device(Backend::cuda, props.name, "sm_" + std::to_string(props.major * 10 + props.minor), caps),
        ordinal_(ordinal),
        props_(props) {}

  std::string details() const override {
    const Transfers t = transfers();
    return "compute capability " + std::to_string(props_.major) + "." + std::to_string(props_.minor) + ", " +
           std::to_string(props_.multiProcessorCount) + " SMs, " + std::to_string(props_.l2CacheSize >> 20) +
           " MB L2, " + std::to_string(props_.totalGlobalMem >> 20) + " MB; copies so far: " +
           std::to_string(t.to_device) + " in (" + std::to_string(t.to_device_bytes) + " bytes), " +
           std::to_string(t.to_host) + " out (" + std::to_string(t.to_host_bytes) + " bytes), " +
           std::to_string(t.launches) + " launches";
  }

  int ordinal() const { return ordinal_; }
  const cudaDeviceProp& props() const { return props_; }
  // A built-in kernel's maxThreadsPerBlock (its registers decide it), read once.
  uint32_t max_threads_per_threadgroup(const std::string& kernel) const override;

 private:
  int ordinal_;
  cudaDeviceProp props_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, uint32_t> max_threads_;
};

const CudaDevice& cuda_device(const Device& device) {
  const auto* d = dynamic_cast<const CudaDevice*>(&device);
  if (d == nullptr) value_error("device: expected a CUDA device, got '", backend_name(device.backend()), "'");
  return *d;
}

// A Buffer's device copy, kept in its backend handle.
struct Mirror {
  static constexpr uint64_t kMagic = 0x716d6574616c6375ull;  // "qmetalcu"
  uint64_t magic = kMagic;
  void* pointer = nullptr;
  size_t bytes = 0;
  ~Mirror() {
    if (pointer) cudaFree(pointer);  // at exit the context may be gone: nothing to do then
  }
};

void* mirror_of(const BufferPtr& buffer) {
  const size_t bytes = std::max<size_t>(buffer->nbytes(), 256);
  auto* mirror = static_cast<Mirror*>(buffer->backend_handle().get());
  if (mirror != nullptr && mirror->magic == Mirror::kMagic && mirror->bytes >= bytes) return mirror->pointer;
  auto fresh = std::make_shared<Mirror>();
  check(cudaMalloc(&fresh->pointer, bytes), "cudaMalloc (a buffer's device copy)");
  fresh->bytes = bytes;
  void* pointer = fresh->pointer;
  buffer->set_backend_handle(std::move(fresh));
  return pointer;
}

// Kernel launch handles by host name: the built-in tables, read once.
const std::unordered_map<std::string, const void*>& builtin_kernels() {
  static const auto* table = [] {
    auto* map = new std::unordered_map<std::string, const void*>();
    for (size_t i = 0; i < qmetal_cuda_builtin_entry_count; ++i) {
      unsigned count = 0;
      const qmetal_cuda::KernelEntry* entries = qmetal_cuda_builtin_entries[i](&count);
      for (unsigned k = 0; k < count; ++k) map->emplace(entries[k].name, entries[k].function);
    }
    return map;
  }();
  return *table;
}

uint32_t CudaDevice::max_threads_per_threadgroup(const std::string& kernel) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto known = max_threads_.find(kernel);
  if (known != max_threads_.end()) return known->second;
  const uint32_t limit = capabilities().max_threads_per_threadgroup;
  const auto& builtin = builtin_kernels();
  const auto it = builtin.find(kernel);
  cudaFuncAttributes attributes{};
  // The launch path makes the same device current (launch_all's caller).
  if (it == builtin.end() || cudaSetDevice(ordinal_) != cudaSuccess ||
      cudaFuncGetAttributes(&attributes, it->second) != cudaSuccess) {
    cudaGetLastError();  // not a built-in kernel (or unreadable now): its launch says what is wrong
    return limit;        // not kept: a later plan asks again
  }
  const uint32_t fits = std::min<uint32_t>(limit, uint32_t(attributes.maxThreadsPerBlock));
  max_threads_.emplace(kernel, fits);
  return fits;
}

std::string symbol_of(const std::string& host_name) {
  std::string out = qmetal_cuda::kSymbolPrefix;
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : host_name) {
    if (std::isalnum(c) || c == '_') {
      out += char(c);
    } else {
      out += "_x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// One stream per process, serialized: plans run in order, as the simulator runs them.
struct Executor {
  std::mutex mutex;
  cudaStream_t stream = nullptr;
  void* args = nullptr;  // device arena for the plans' arg structs
  size_t args_bytes = 0;
  void* flush = nullptr;  // scratch overwritten to flush L2
  size_t flush_bytes = 0;
  std::unordered_map<const void*, int> dynamic_limit;  // kernels whose dynamic shared memory limit was raised
  std::unordered_map<const void*, cudaFuncAttributes> attributes;  // read once per kernel
  bool capture = false;
  std::vector<DispatchPlan> captured;

  void ensure(const CudaDevice& device) {
    check(cudaSetDevice(device.ordinal()), "cudaSetDevice");
    if (!stream) check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  }
};

Executor& executor() {
  static Executor* e = new Executor();  // never destroyed: CUDA may be gone at exit
  return *e;
}

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// A plan made ready to launch: its kernel, parameters and geometry.
struct Launch {
  const void* function = nullptr;
  qmetal_cuda::Params params{};
  unsigned dynamic_bytes = 0;
  const DispatchPlan* plan = nullptr;
};

struct Prepared {
  std::vector<Launch> launches;
  std::vector<std::pair<BufferPtr, bool>> buffers;  // each bound buffer once, and whether a plan writes it
};

Prepared prepare(Executor& ex, const std::vector<DispatchPlan>& plans, const Module* module) {
  Prepared out;
  std::unordered_map<const Buffer*, size_t> seen;
  size_t args_total = 0;
  for (const DispatchPlan& plan : plans) {
    for (const BufferBinding& b : plan.buffers) {
      if (!b.buffer) value_error("plan ", plan.kernel, ": buffer ", b.index, " is null");
      const bool writes = b.access != Access::read;
      auto [it, fresh] = seen.emplace(b.buffer.get(), out.buffers.size());
      if (fresh) out.buffers.emplace_back(b.buffer, writes);
      else out.buffers[it->second].second = out.buffers[it->second].second || writes;
    }
    args_total += align_up(plan.args.size(), 256);
  }
  // Arg structs: one arena, one copy.
  if (args_total > ex.args_bytes) {
    if (ex.args) cudaFree(ex.args);
    ex.args = nullptr;
    ex.args_bytes = 0;
    check(cudaMalloc(&ex.args, args_total), "cudaMalloc (arg structs)");
    ex.args_bytes = args_total;
  }
  std::vector<uint8_t> staging(args_total);
  size_t args_offset = 0;
  for (const DispatchPlan& plan : plans) {
    Launch launch;
    launch.plan = &plan;
    launch.function = module ? module->find(plan.kernel) : nullptr;
    if (!launch.function) {
      const auto& builtin = builtin_kernels();
      const auto it = builtin.find(plan.kernel);
      if (it == builtin.end()) runtime_error("CUDA: no kernel named '", plan.kernel, "' in this build");
      launch.function = it->second;
    }
    qmetal_cuda::Params& p = launch.params;
    for (const BufferBinding& b : plan.buffers) {
      if (b.index >= qmetal_cuda::kMaxBuffers) value_error("plan ", plan.kernel, ": buffer index ", b.index, " >= 31");
      if (b.offset > b.buffer->nbytes() && b.buffer->nbytes() != 0) {
        value_error("plan ", plan.kernel, ": offset ", b.offset, " past buffer ", b.index);
      }
      p.buffers[b.index] = static_cast<uint8_t*>(mirror_of(b.buffer)) + b.offset;
    }
    if (!plan.args.empty()) {
      std::memcpy(staging.data() + args_offset, plan.args.data(), plan.args.size());
      p.buffers[qmetal_args::kArgsBufferIndex] = static_cast<uint8_t*>(ex.args) + args_offset;
      args_offset += align_up(plan.args.size(), 256);
    }
    std::vector<ThreadgroupMemory> memory = plan.threadgroup_memory;
    std::sort(memory.begin(), memory.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    uint32_t offset = 0;
    for (const ThreadgroupMemory& m : memory) {
      if (m.index >= qmetal_cuda::kMaxThreadgroupArgs) value_error("plan ", plan.kernel, ": threadgroup index ", m.index);
      p.threadgroup_offsets[m.index] = offset;
      offset += uint32_t(align_up(m.bytes, 16));
    }
    launch.dynamic_bytes = offset;
    p.grid[0] = plan.grid.x;
    p.grid[1] = plan.grid.y;
    p.grid[2] = plan.grid.z;
    out.launches.push_back(launch);
  }
  if (args_total) {
    check(cudaMemcpyAsync(ex.args, staging.data(), args_total, cudaMemcpyHostToDevice, ex.stream),
          "cudaMemcpyAsync (arg structs to the device)");
    to_device_count += 1;
    to_device_bytes += args_total;
  }
  return out;
}

void copy_in(Executor& ex, const Prepared& prepared) {
  for (const auto& [buffer, writes] : prepared.buffers) {
    (void)writes;
    if (buffer->nbytes() == 0) continue;
    check(cudaMemcpyAsync(mirror_of(buffer), buffer->data(), buffer->nbytes(), cudaMemcpyHostToDevice, ex.stream),
          "cudaMemcpyAsync (a buffer to the device)");
    to_device_count += 1;
    to_device_bytes += buffer->nbytes();
  }
}

void copy_out(Executor& ex, const Prepared& prepared) {
  for (const auto& [buffer, writes] : prepared.buffers) {
    if (!writes || buffer->nbytes() == 0) continue;
    check(cudaMemcpyAsync(buffer->data(), mirror_of(buffer), buffer->nbytes(), cudaMemcpyDeviceToHost, ex.stream),
          "cudaMemcpyAsync (a buffer to the host)");
    to_host_count += 1;
    to_host_bytes += buffer->nbytes();
  }
}

// CUDA's grid is limited to 65535 in y and z; larger grids run as several
// launches, each told its first threadgroup (Params::group_base).
constexpr uint32_t kMaxGridYZ = 65535;

void launch_all(Executor& ex, const std::vector<Launch>& launches) {
  for (const Launch& launch : launches) {
    const DispatchPlan& plan = *launch.plan;
    if (plan.grid.volume() == 0 || plan.threadgroup.volume() == 0) continue;
    auto found = ex.attributes.find(launch.function);
    if (found == ex.attributes.end()) {
      cudaFuncAttributes read{};
      if (cudaFuncGetAttributes(&read, launch.function) != cudaSuccess) {
        cudaGetLastError();  // not known: the launch itself will say what is wrong
        read = cudaFuncAttributes{};
        read.maxThreadsPerBlock = 1024;
      }
      found = ex.attributes.emplace(launch.function, read).first;
    }
    const cudaFuncAttributes& attributes = found->second;
    if (plan.threadgroup.volume() > uint64_t(attributes.maxThreadsPerBlock)) {
      runtime_error("CUDA: kernel ", plan.kernel, " runs at most ", attributes.maxThreadsPerBlock,
                    " threads per threadgroup here (registers), the plan asks for ", plan.threadgroup.volume());
    }
    if (launch.dynamic_bytes + attributes.sharedSizeBytes > 48 * 1024) {
      int& limit = ex.dynamic_limit[launch.function];
      if (limit < int(launch.dynamic_bytes)) {
        check(cudaFuncSetAttribute(launch.function, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   int(launch.dynamic_bytes)),
              "cudaFuncSetAttribute (threadgroup memory)");
        limit = int(launch.dynamic_bytes);
      }
    }
    const dim3 block(plan.threadgroup.x, plan.threadgroup.y, plan.threadgroup.z);
    for (uint32_t z = 0; z < plan.grid.z; z += kMaxGridYZ) {
      for (uint32_t y = 0; y < plan.grid.y; y += kMaxGridYZ) {
        qmetal_cuda::Params params = launch.params;
        params.group_base[0] = 0;
        params.group_base[1] = y;
        params.group_base[2] = z;
        const dim3 grid(plan.grid.x, std::min(kMaxGridYZ, plan.grid.y - y), std::min(kMaxGridYZ, plan.grid.z - z));
        void* args[] = {&params};
        check(cudaLaunchKernel(launch.function, grid, block, args, launch.dynamic_bytes, ex.stream),
              ("cudaLaunchKernel (" + plan.kernel + ")").c_str());
        launch_count += 1;
      }
    }
  }
}

void finish(Executor& ex, const char* what) {
  const cudaError_t status = cudaStreamSynchronize(ex.stream);
  if (status != cudaSuccess) {
    cudaGetLastError();
    runtime_error("CUDA: ", what, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status),
                  " (after this error the CUDA context may be unusable: restart the process)");
  }
}

}  // namespace

bool available() { return probe_once().empty(); }

DevicePtr create_device() {
  if (!available()) runtime_error(probe_once());
  const int ordinal = device_ordinal();
  cudaDeviceProp props{};
  check(cudaGetDeviceProperties(&props, ordinal), "cudaGetDeviceProperties");
  DeviceCapabilities caps;
  caps.simd_width = 32;
  caps.max_threads_per_threadgroup = 1024;
  // Metal's guaranteed threadgroup memory, so that plans are those of an
  // Apple GPU (the planner routes on it); the GPU has more.
  caps.max_threadgroup_memory = 32 * 1024;
  caps.max_buffer_length = props.totalGlobalMem;
  caps.wrap_alignment = kKernelLoadAlignment;
  caps.recommended_working_set = props.totalGlobalMem;
  caps.simdgroup_reduction = true;
  caps.simdgroup_matrix = true;
  caps.bfloat = true;
  caps.tensor_ops = false;
  caps.gpu_cores = static_cast<uint32_t>(props.multiProcessorCount);
  return std::make_shared<CudaDevice>(ordinal, props, caps);
}

struct Module::State {
  cudaLibrary_t library = nullptr;
  mutable std::mutex mutex;
  mutable std::unordered_map<std::string, const void*> kernels;
};

Module::Module(const std::string& path) : path_(path), state_(std::make_unique<State>()) {
  if (!available()) runtime_error(probe_once());
  check(cudaSetDevice(device_ordinal()), "cudaSetDevice");
  check(cudaLibraryLoadFromFile(&state_->library, path.c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0),
        ("cudaLibraryLoadFromFile (" + path + ")").c_str());
}

Module::~Module() {
  if (state_ && state_->library) cudaLibraryUnload(state_->library);
}

const void* Module::find(const std::string& host_name) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  const auto it = state_->kernels.find(host_name);
  if (it != state_->kernels.end()) return it->second;
  cudaKernel_t kernel = nullptr;
  const void* handle = nullptr;
  if (cudaLibraryGetKernel(&kernel, state_->library, symbol_of(host_name).c_str()) == cudaSuccess) {
    handle = reinterpret_cast<const void*>(kernel);
  } else {
    cudaGetLastError();
  }
  state_->kernels.emplace(host_name, handle);
  return handle;
}

// Whether two distinct Buffers of `prepared` share host memory (a NumPy
// result of one op wrapped again as the input of the next): each has its
// own device copy, so what one plan writes the other would not see.
bool buffers_share_host_memory(const std::vector<DispatchPlan>& plans) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  std::unordered_map<const Buffer*, bool> seen;
  for (const DispatchPlan& plan : plans) {
    for (const BufferBinding& b : plan.buffers) {
      if (!b.buffer || b.buffer->nbytes() == 0 || !seen.emplace(b.buffer.get(), true).second) continue;
      const auto begin = reinterpret_cast<uintptr_t>(b.buffer->data());
      ranges.emplace_back(begin, begin + b.buffer->nbytes());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return true;
  }
  return false;
}

void run_prepared(Executor& ex, const Prepared& prepared) {
  copy_in(ex, prepared);
  launch_all(ex, prepared.launches);
  copy_out(ex, prepared);
  finish(ex, "running the plans");
}

void execute(const Device& device, const std::vector<DispatchPlan>& plans, const Module* module) {
  const CudaDevice& d = cuda_device(device);
  Executor& ex = executor();
  std::lock_guard<std::mutex> lock(ex.mutex);
  ex.ensure(d);
  for (const DispatchPlan& plan : plans) plan.validate(device.capabilities());
  if (ex.capture) ex.captured.insert(ex.captured.end(), plans.begin(), plans.end());
  if (plans.size() > 1 && buffers_share_host_memory(plans)) {
    // A stream's ops chained through host memory: one plan at a time, each
    // copied back before the next copies in, as unified memory behaves.
    for (const DispatchPlan& plan : plans) run_prepared(ex, prepare(ex, {plan}, module));
    return;
  }
  run_prepared(ex, prepare(ex, plans, module));
}

std::vector<double> time_plans(const Device& device, const std::vector<DispatchPlan>& plans, const Module* module,
                               int warmup, int repeat, size_t flush_bytes) {
  const CudaDevice& d = cuda_device(device);
  Executor& ex = executor();
  std::lock_guard<std::mutex> lock(ex.mutex);
  ex.ensure(d);
  const Prepared prepared = prepare(ex, plans, module);
  copy_in(ex, prepared);
  if (flush_bytes > ex.flush_bytes) {
    if (ex.flush) cudaFree(ex.flush);
    ex.flush = nullptr;
    ex.flush_bytes = 0;
    check(cudaMalloc(&ex.flush, flush_bytes), "cudaMalloc (L2 flush)");
    ex.flush_bytes = flush_bytes;
  }
  for (int i = 0; i < warmup; ++i) launch_all(ex, prepared.launches);
  std::vector<cudaEvent_t> events(2 * size_t(std::max(repeat, 0)));
  for (cudaEvent_t& e : events) check(cudaEventCreate(&e), "cudaEventCreate");
  for (int i = 0; i < repeat; ++i) {
    if (flush_bytes) check(cudaMemsetAsync(ex.flush, i & 0xFF, flush_bytes, ex.stream), "cudaMemsetAsync (L2 flush)");
    check(cudaEventRecord(events[2 * i], ex.stream), "cudaEventRecord");
    launch_all(ex, prepared.launches);
    check(cudaEventRecord(events[2 * i + 1], ex.stream), "cudaEventRecord");
  }
  copy_out(ex, prepared);
  finish(ex, "timing the plans");
  std::vector<double> ms(size_t(std::max(repeat, 0)));
  for (int i = 0; i < repeat; ++i) {
    float t = 0;
    check(cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime");
    ms[i] = t;
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  return ms;
}

double copy_bandwidth(const Device& device, size_t bytes, int repeat) {
  const CudaDevice& d = cuda_device(device);
  Executor& ex = executor();
  std::lock_guard<std::mutex> lock(ex.mutex);
  ex.ensure(d);
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc (copy source)");
  check(cudaMalloc(&b, bytes), "cudaMalloc (copy target)");
  check(cudaMemsetAsync(a, 1, bytes, ex.stream), "cudaMemsetAsync");
  check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, ex.stream), "cudaMemcpyAsync (warm-up)");
  std::vector<cudaEvent_t> events(2 * size_t(repeat));
  for (cudaEvent_t& e : events) check(cudaEventCreate(&e), "cudaEventCreate");
  for (int i = 0; i < repeat; ++i) {
    check(cudaEventRecord(events[2 * i], ex.stream), "cudaEventRecord");
    check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, ex.stream), "cudaMemcpyAsync (device to device)");
    check(cudaEventRecord(events[2 * i + 1], ex.stream), "cudaEventRecord");
  }
  finish(ex, "the copy");
  std::vector<double> rates;
  for (int i = 0; i < repeat; ++i) {
    float t = 0;
    check(cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime");
    rates.push_back(2.0 * double(bytes) / (double(t) * 1e-3) / 1e9);
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  cudaFree(a);
  cudaFree(b);
  std::sort(rates.begin(), rates.end());
  return rates.empty() ? 0.0 : rates[rates.size() / 2];
}

void set_capture(bool on) {
  Executor& ex = executor();
  std::lock_guard<std::mutex> lock(ex.mutex);
  ex.capture = on;
  if (!on) ex.captured.clear();
}

std::vector<DispatchPlan> captured() {
  Executor& ex = executor();
  std::lock_guard<std::mutex> lock(ex.mutex);
  return ex.captured;
}

Transfers transfers() {
  Transfers t;
  t.to_device = to_device_count;
  t.to_device_bytes = to_device_bytes;
  t.to_host = to_host_count;
  t.to_host_bytes = to_host_bytes;
  t.launches = launch_count;
  return t;
}

void reset_transfers() {
  to_device_count = 0;
  to_device_bytes = 0;
  to_host_count = 0;
  to_host_bytes = 0;
  launch_count = 0;
}

Properties properties(const Device& device) {
  const cudaDeviceProp& p = cuda_device(device).props();
  Properties out;
  out.name = p.name;
  out.major = p.major;
  out.minor = p.minor;
  out.multiprocessors = p.multiProcessorCount;
  out.l2_bytes = size_t(p.l2CacheSize);
  out.memory_bytes = p.totalGlobalMem;
  return out;
}

}  // namespace qmetal::cuda
