// Errors raised by the core. The Python bindings translate each kind into the
// matching Python exception, so messages should name the argument at fault and
// what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qmetal {

enum class ErrorKind {
  value,    // ValueError: a shape, size or setting is wrong
  type,     // TypeError: a dtype or object kind is wrong
  runtime,  // RuntimeError: the device or the backend failed
  interrupted,  // KeyboardInterrupt: Ctrl-C reached a long-running call
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

template <class... Parts>
[[noreturn]] void value_error(Parts&&... parts) {
  throw Error(ErrorKind::value, detail::concat(std::forward<Parts>(parts)...));
}

template <class... Parts>
[[noreturn]] void type_error(Parts&&... parts) {
  throw Error(ErrorKind::type, detail::concat(std::forward<Parts>(parts)...));
}

template <class... Parts>
[[noreturn]] void runtime_error(Parts&&... parts) {
  throw Error(ErrorKind::runtime, detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace qmetal
