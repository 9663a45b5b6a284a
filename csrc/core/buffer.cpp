#include "qmetal/buffer.h"

#include <algorithm>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>

#include "qmetal/error.h"

namespace qmetal {

int64_t shape_size(const Shape& shape, const char* what) {
  int64_t size = 1;
  for (int64_t extent : shape) {
    if (extent < 0) value_error(what, ": extents must be >= 0, got ", shape_str(shape));
    if (extent != 0 && size > std::numeric_limits<int64_t>::max() / extent) {
      value_error(what, ": ", shape_str(shape), " has too many elements");
    }
    size *= extent;
  }
  return size;
}

std::string shape_str(const Shape& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) out += ",";
    if (i + 1 < shape.size()) out += " ";
  }
  return out + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* a_name, const char* b_name) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t from_end = out.size() - 1 - i;
    const int64_t da = from_end < a.size() ? a[a.size() - 1 - from_end] : 1;
    const int64_t db = from_end < b.size() ? b[b.size() - 1 - from_end] : 1;
    if (da != db && da != 1 && db != 1) {
      value_error(a_name, ": shape ", shape_str(a), " does not broadcast with ", b_name, "'s ", shape_str(b));
    }
    out[i] = da == 1 ? db : da;  // NumPy's rule: 1 broadcasts to anything, 0 included
  }
  return out;
}

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

namespace {
size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

std::shared_ptr<void> allocate_pages(size_t nbytes, size_t* capacity) {
  // At least one page, so that even an empty buffer has a valid address.
  *capacity = round_up(nbytes == 0 ? 1 : nbytes, page_size());
  void* memory = nullptr;
  if (posix_memalign(&memory, page_size(), *capacity) != 0) {
    runtime_error("Buffer: cannot allocate ", *capacity, " bytes");
  }
  return std::shared_ptr<void>(memory, [](void* p) { std::free(p); });
}

size_t checked_nbytes(DType dtype, const Shape& shape) {
  const int64_t size = shape_size(shape);
  const size_t item = dtype_size(dtype);
  if (static_cast<uint64_t>(size) > std::numeric_limits<size_t>::max() / item) {
    value_error("shape: ", shape_str(shape), " is too large for ", dtype_name(dtype));
  }
  return static_cast<size_t>(size) * item;
}
}  // namespace

BufferPtr Buffer::allocate(DType dtype, Shape shape) {
  BufferPtr buffer(new Buffer());
  buffer->nbytes_ = checked_nbytes(dtype, shape);
  buffer->size_ = shape_size(shape);
  buffer->dtype_ = dtype;
  buffer->shape_ = std::move(shape);
  buffer->storage_ = allocate_pages(buffer->nbytes_, &buffer->capacity_);
  buffer->data_ = buffer->storage_.get();
  return buffer;
}

BufferPtr Buffer::wrap(void* data, DType dtype, Shape shape, std::shared_ptr<void> keepalive,
                       size_t required_alignment, bool readonly) {
  if (required_alignment == 0 || (required_alignment & (required_alignment - 1)) != 0) {
    value_error("required_alignment: expected a power of two, got ", required_alignment);
  }
  const size_t nbytes = checked_nbytes(dtype, shape);
  if (data == nullptr && nbytes != 0) value_error("data: null pointer for ", nbytes, " bytes");

  const bool aligned = reinterpret_cast<uintptr_t>(data) % std::max(required_alignment, kKernelLoadAlignment) == 0;
  if (!aligned || data == nullptr) {
    BufferPtr copy = allocate(dtype, std::move(shape));
    if (nbytes != 0) std::memcpy(copy->data_, data, nbytes);
    copy->copied_ = true;
    copy->readonly_ = readonly;
    return copy;
  }
  BufferPtr buffer(new Buffer());
  buffer->data_ = data;
  buffer->dtype_ = dtype;
  buffer->size_ = shape_size(shape);
  buffer->shape_ = std::move(shape);
  buffer->nbytes_ = nbytes;
  buffer->capacity_ = nbytes;
  buffer->readonly_ = readonly;
  buffer->keepalive_ = std::move(keepalive);
  return buffer;
}

}  // namespace qmetal
