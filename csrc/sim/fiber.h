// Fibers: each simulated GPU thread runs on its own small stack and gives the
// CPU back at barriers and simdgroup collectives. On x86-64 the switch is a
// few instructions of assembly (ucontext's swapcontext makes a syscall and is
// 5-10x slower); other hosts use ucontext.
#pragma once

#include <cstddef>
#include <memory>

namespace qmetal::sim {

class Fiber {
 public:
  using Entry = void (*)(void* arg);

  // A fiber that will run entry(arg) on its own stack of `stack_bytes`.
  // entry must never return: it ends by switching away for the last time.
  Fiber(size_t stack_bytes);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  void reset(Entry entry, void* arg);

  // Whether `address` lies on this fiber's own stack (thread-private memory).
  const void* stack_base() const { return stack_; }
  bool owns(const void* address) const {
    const auto* p = static_cast<const char*>(address);
    const auto* base = static_cast<const char*>(stack_);
    return p >= base && p < base + stack_bytes_;
  }

  // Saves the running context into `from` and resumes `to`.
  static void switch_to(Fiber& from, Fiber& to);

  // A fiber standing for the OS thread that runs the scheduler.
  static std::unique_ptr<Fiber> for_current_thread();

 private:
  Fiber() = default;
  static void start(void* self);  // first code a fiber runs, then entry_(arg_)
  struct Context;
  void* stack_ = nullptr;
  size_t stack_bytes_ = 0;
  std::unique_ptr<Context> context_;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  void* fake_stack_ = nullptr;  // AddressSanitizer's, kept across switches
};

}  // namespace qmetal::sim
