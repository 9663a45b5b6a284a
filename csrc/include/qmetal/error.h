// Errors raised by the core. The Python bindings translate each kind into the
// matching Python exception, so messages should name the argument at fault and
// what was expected.
#pragma once

#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
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
// Messages are built without iostreams: a statically linked libstdc++ beside
// the process's shared one (as the H200 machine's toolchain links it) breaks
// the locale facets that stream number formatting goes through, and an error
// message must never crash. Integers go through std::to_chars, floating
// point through snprintf; both are locale-free for the digits we print.
inline void append(std::string& out, std::string_view text) { out.append(text); }
inline void append(std::string& out, const char* text) { out.append(text ? text : "(null)"); }
inline void append(std::string& out, char c) { out.push_back(c); }
inline void append(std::string& out, bool b) { out.append(b ? "1" : "0"); }

template <class T>
std::enable_if_t<std::is_integral_v<T>> append(std::string& out, T value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

template <class T>
std::enable_if_t<std::is_floating_point_v<T>> append(std::string& out, T value) {
  char digits[32];
  const int n = std::snprintf(digits, sizeof digits, "%g", static_cast<double>(value));
  if (n > 0) out.append(digits, static_cast<size_t>(n) < sizeof digits ? static_cast<size_t>(n) : sizeof digits - 1);
}

template <class T>
std::enable_if_t<std::is_enum_v<T>> append(std::string& out, T value) {
  append(out, static_cast<std::underlying_type_t<T>>(value));
}

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::string out;
  (append(out, std::forward<Parts>(parts)), ...);
  return out;
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
