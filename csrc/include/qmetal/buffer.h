// Host-visible memory that kernels read and write. On Apple silicon the GPU
// shares memory with the CPU, so a Buffer is also what NumPy sees: one
// allocation, no staging copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qmetal/dtype.h"

namespace qmetal {

using Shape = std::vector<int64_t>;

// Number of elements; throws ValueError naming `what` for a negative extent.
int64_t shape_size(const Shape& shape, const char* what = "shape");
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; ValueError naming both when they clash.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* a_name, const char* b_name);

// The host page size: allocations are aligned to it and padded to a multiple
// of it, which is what Metal needs to wrap memory without copying.
size_t page_size();

// The widest vector load a kernel makes (float4 / uint4; activations are
// read 4 values at a time): every buffer a kernel reads starts on it.
// Allocations are page-aligned; wrap() copies memory that is not.
inline constexpr size_t kKernelLoadAlignment = 16;

class Buffer {
 public:
  // Fresh page-aligned memory, uninitialised.
  static std::shared_ptr<Buffer> allocate(DType dtype, Shape shape);

  // Memory that somebody else owns (a NumPy array, an mmap'd file).
  // `keepalive` is held for as long as this buffer lives. When `data` is
  // aligned to `required_alignment` (and to kKernelLoadAlignment, whatever
  // is asked) the buffer aliases it (zero-copy); otherwise the contents are
  // copied into fresh memory and copied() says so.
  static std::shared_ptr<Buffer> wrap(void* data, DType dtype, Shape shape,
                                      std::shared_ptr<void> keepalive,
                                      size_t required_alignment, bool readonly);

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t size() const { return size_; }
  size_t nbytes() const { return nbytes_; }
  // Bytes reachable from data(): nbytes() rounded up to the page for memory
  // this class allocated, exactly nbytes() for wrapped memory.
  size_t capacity() const { return capacity_; }
  bool copied() const { return copied_; }
  bool owns_memory() const { return storage_ != nullptr; }
  bool readonly() const { return readonly_; }
  // For callers that had to copy before wrapping (a strided NumPy array):
  // the buffer then does not alias the caller's memory either.
  void mark_copied() { copied_ = true; }

  // The backend's object for this memory (the Metal backend keeps its
  // MTLBuffer views here), made on first use and released with the buffer.
  const std::shared_ptr<void>& backend_handle() const { return backend_handle_; }
  void set_backend_handle(std::shared_ptr<void> handle) const { backend_handle_ = std::move(handle); }

 private:
  Buffer() = default;

  void* data_ = nullptr;
  DType dtype_ = DType::u8;
  Shape shape_;
  int64_t size_ = 0;
  size_t nbytes_ = 0;
  size_t capacity_ = 0;
  bool copied_ = false;
  bool readonly_ = false;
  std::shared_ptr<void> storage_;    // memory this buffer allocated
  std::shared_ptr<void> keepalive_;  // owner of memory this buffer aliases
  mutable std::shared_ptr<void> backend_handle_;
};

using BufferPtr = std::shared_ptr<Buffer>;

}  // namespace qmetal
