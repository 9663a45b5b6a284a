// MTLBuffer views of qmetal Buffers: shared storage over the Buffer's own
// page-aligned memory (newBufferWithBytesNoCopy), so the GPU, C++ and NumPy
// all see one allocation.
#import <Metal/Metal.h>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

// Kept in Buffer::backend_handle(): the views made so far, by start offset.
struct Views {
  std::map<size_t, id<MTLBuffer>> by_start;
};

std::mutex views_mutex;

size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

}  // namespace

BufferView buffer_view(const MetalDevice& device, const Buffer& buffer, size_t offset) {
  const size_t page = static_cast<size_t>(getpagesize());
  if (reinterpret_cast<uintptr_t>(buffer.data()) % page != 0) {
    value_error("Metal: buffer memory at ", buffer.data(), " is not page-aligned (wrap it for the Metal device)");
  }
  // Wrapped memory ends anywhere: its last page is mapped all the same.
  const size_t length_total = round_up(std::max<size_t>(buffer.capacity(), 1), page);
  const size_t max_length = device.capabilities().max_buffer_length / page * page;
  size_t start = 0, length = length_total;
  if (length_total > max_length) {
    // Views of max_length bytes every max_length / 2: any binding whose
    // kernel reads less than half the limit past its offset fits one view.
    const size_t step = max_length / 2 / page * page;
    start = offset / step * step;
    length = std::min(max_length, length_total - start);
  }

  std::lock_guard<std::mutex> lock(views_mutex);
  auto views = std::static_pointer_cast<Views>(buffer.backend_handle());
  if (!views) {
    views = std::make_shared<Views>();
    buffer.set_backend_handle(views);
  }
  id<MTLBuffer> view = views->by_start[start];
  if (view == nil) {
    void* base = static_cast<uint8_t*>(buffer.data()) + start;
    view = [device.device() newBufferWithBytesNoCopy:base
                                              length:length
                                             options:MTLResourceStorageModeShared
                                         deallocator:nil];
    if (view == nil) runtime_error("Metal: cannot wrap ", length, " bytes of buffer memory without copying");
    views->by_start[start] = view;
  }
  return {view, offset - start};
}

}  // namespace qmetal::metal
