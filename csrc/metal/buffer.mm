// MTLBuffer views of qmetal Buffers: shared storage over the Buffer's own
// memory (newBufferWithBytesNoCopy), so the GPU, C++ and NumPy all see one
// allocation.
//
// newBufferWithBytesNoCopy takes a page-aligned pointer and length, and an
// Apple-silicon page is 16 KB, which ordinary NumPy arrays (16 or 64-byte
// aligned) never are. So a view wraps every page that holds a byte of the
// Buffer, [floor_page(data), ceil_page(data + n)), and the binding's offset
// points at the data inside it, as llama.cpp's ggml_metal_buffer_map does.
// Those pages are mapped (each holds a byte of the Buffer); the bytes of
// them outside the Buffer are never bound.
#import <Metal/Metal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "metal/metal_objc.h"
#include "qmetal/error.h"

namespace qmetal::metal {

namespace {

// Kept in Buffer::backend_handle(): the views made so far, by (start,
// length) in bytes from the first page. One, unless the Buffer is larger
// than the device's maxBufferLength. (A process has one Metal device:
// get_device creates it once.)
struct Views {
  std::map<std::pair<size_t, size_t>, id<MTLBuffer>> by_range;
};

std::mutex views_mutex;

size_t round_down(size_t value, size_t step) { return value / step * step; }
size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

}  // namespace

BufferView buffer_view(const MetalDevice& device, const Buffer& buffer, size_t offset, size_t extent) {
  const size_t page = page_size();
  const auto data = reinterpret_cast<uintptr_t>(buffer.data());
  const size_t lead = data % page;  // bytes of the first page before the data
  const size_t capacity = buffer.capacity();
  const size_t total = round_up(lead + std::max<size_t>(capacity, 1), page);
  const size_t max_length = round_down(device.capabilities().max_buffer_length, page);
  const size_t at = lead + std::min(offset, capacity);  // the binding's first byte, from the first page
  size_t start = 0, length = total;
  if (total > max_length) {
    // Shared views of max_length bytes every max_length / 2 hold any binding
    // of up to half the limit; a larger one gets a view of its own, sized to
    // its extent (llama.cpp sizes its view overlap from the largest tensor).
    const size_t need = extent != 0 ? extent : capacity - std::min(offset, capacity);
    const size_t step = round_down(max_length / 2, page);
    start = round_down(at, step);
    length = std::min(max_length, total - start);
    if (at + need > start + length) {
      start = round_down(at, page);
      length = round_up(at + need, page) - start;
      if (length > max_length) {
        value_error("Metal: a binding of ", need, " bytes at offset ", offset, " of a ", capacity,
                    "-byte buffer does not fit one MTLBuffer (this GPU's maxBufferLength is ",
                    device.capabilities().max_buffer_length, " bytes)",
                    extent != 0 ? "" : "; the plan gives no extent for it, so it reaches the end of the buffer");
      }
    }
  }

  std::lock_guard<std::mutex> lock(views_mutex);
  auto views = std::static_pointer_cast<Views>(buffer.backend_handle());
  if (!views) {
    views = std::make_shared<Views>();
    buffer.set_backend_handle(views);
  }
  id<MTLBuffer> view = views->by_range[{start, length}];
  if (view == nil) {
    void* base = reinterpret_cast<void*>(data - lead + start);
    view = [device.device() newBufferWithBytesNoCopy:base
                                              length:length
                                             options:MTLResourceStorageModeShared
                                         deallocator:nil];
    if (view == nil) runtime_error("Metal: cannot wrap ", length, " bytes of buffer memory without copying");
    views->by_range[{start, length}] = view;
  }
  return {view, at - start};
}

}  // namespace qmetal::metal
