// Runs plans on a device's backend; the one place that knows which backends
// this build has.
#include <mutex>

#include "qmetal/error.h"
#include "qmetal/ops.h"
#include "sim/library.h"
#ifdef QMETAL_HAVE_METAL
#include "metal/metal.h"
#endif
#ifdef QMETAL_HAVE_CUDA
#include "cuda/cuda.h"
#endif

namespace qmetal {

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef QMETAL_HAVE_METAL
    register_backend(Backend::metal, BackendFactory{&metal::available, &metal::create_device});
#endif
#ifdef QMETAL_HAVE_CUDA
    register_backend(Backend::cuda, BackendFactory{&cuda::available, &cuda::create_device});
#endif
  });
}

void execute(const Device& device, const std::vector<DispatchPlan>& plans) {
  switch (device.backend()) {
    case Backend::sim:
    {
      // An installed library's kernels replace the built-in ones they name.
      const sim::OpsLibrary ops = sim::ops_library();
      for (const DispatchPlan& plan : plans) {
        const bool installed = ops.library && ops.library->find(plan.kernel) != nullptr;
        sim::execute(plan, installed ? *ops.library : sim::Library::builtin(), sim::Schedule::forward, 0,
                     installed && ops.race_check);
      }
      return;
    }
    case Backend::metal:
#ifdef QMETAL_HAVE_METAL
      metal::execute(device, plans);
      return;
#else
      runtime_error("the Metal backend is not part of this build");
#endif
    case Backend::cuda:
#ifdef QMETAL_HAVE_CUDA
      // Synchronous, as the simulator: copies in, launches in order on one
      // stream, copies out (csrc/cuda/cuda.h).
      cuda::execute(device, plans);
      return;
#else
      runtime_error("the CUDA backend is not part of this build");
#endif
  }
}

Stream::Stream(DevicePtr device) : device_(std::move(device)) {
  if (!device_) value_error("device is required");
#ifdef QMETAL_HAVE_METAL
  if (device_->backend() == Backend::metal) backend_ = std::make_shared<metal::Stream>(device_);
#endif
}

Stream::~Stream() = default;

void Stream::enqueue(const std::vector<DispatchPlan>& plans) {
  for (const DispatchPlan& plan : plans) queued_kernels_.push_back(plan.kernel);
#ifdef QMETAL_HAVE_METAL
  if (backend_) {
    auto* stream = static_cast<metal::Stream*>(backend_.get());
    for (const DispatchPlan& plan : plans) stream->encode(plan);
    return;
  }
#endif
  // Backends without a command queue of their own (sim, cuda) run a
  // stream's plans at synchronize, as a GPU runs queued work after the
  // host's later writes: whatever reads a stream's inputs on the host
  // before then is wrong on every backend.
  pending_.insert(pending_.end(), plans.begin(), plans.end());
}

void Stream::add_check(DeviceCheck check) {
  if (!check.flags || check.flags->dtype() != DType::u32 || check.flags->size() != 1) {
    value_error("a device check needs one uint32 of flags");
  }
  checks_.push_back(std::move(check));
}

void Stream::synchronize() {
  // Checks are taken first: whatever fails below, none is reported twice.
  std::vector<DeviceCheck> checks = std::move(checks_);
  checks_.clear();
  queued_kernels_.clear();
#ifdef QMETAL_HAVE_METAL
  if (backend_) static_cast<metal::Stream*>(backend_.get())->synchronize();
#endif
  if (!pending_.empty()) {
    std::vector<DispatchPlan> plans = std::move(pending_);
    pending_.clear();
    execute(*device_, plans);
  }
  for (const DeviceCheck& check : checks) {
    const uint32_t flags = *static_cast<const uint32_t*>(check.flags->data());
    for (const auto& [bit, message] : check.messages) {
      if (flags & bit) value_error(message);
    }
  }
}

}  // namespace qmetal
