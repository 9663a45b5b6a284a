// The assembly below is for x86-64 ELF (Linux); elsewhere (Apple silicon
// among them, until an arm64 switch is written and tested) ucontext is used,
// which on macOS needs _XOPEN_SOURCE before the first system header.
#if defined(__x86_64__) && defined(__ELF__) && !defined(QMETAL_SIM_UCONTEXT)
#define QMETAL_FIBER_ASM 1
#else
#define QMETAL_FIBER_ASM 0
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#endif

#include "fiber.h"

#include <cstdint>
#include <cstdlib>
#include <new>

#if !QMETAL_FIBER_ASM
#include <ucontext.h>
#endif

// AddressSanitizer must be told when the stack changes, or it reports false
// stack overflows and use-after-returns. Weak, so that the calls resolve when
// the process has the sanitizer runtime (an instrumented build, or libasan
// preloaded to run instrumented kernels) and are skipped otherwise.
#if defined(__ELF__)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size) __attribute__((weak));
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old)
    __attribute__((weak));
}
#define QMETAL_FIBER_SANITIZER_HOOKS 1
#else
#define QMETAL_FIBER_SANITIZER_HOOKS 0
#endif

namespace qmetal::sim {

namespace {

// The OS thread's own stack, learnt when the first fiber starts.
thread_local const void* tls_thread_stack_bottom = nullptr;
thread_local size_t tls_thread_stack_size = 0;

void before_switch(void** fake_stack, const void* to_bottom, size_t to_size) {
#if QMETAL_FIBER_SANITIZER_HOOKS
  if (__sanitizer_start_switch_fiber) {
    if (to_bottom == nullptr) {
      to_bottom = tls_thread_stack_bottom;
      to_size = tls_thread_stack_size;
    }
    __sanitizer_start_switch_fiber(fake_stack, to_bottom, to_size);
  }
#else
  (void)fake_stack, (void)to_bottom, (void)to_size;
#endif
}

void after_switch(void* fake_stack, bool first_on_this_fiber) {
#if QMETAL_FIBER_SANITIZER_HOOKS
  if (__sanitizer_finish_switch_fiber) {
    const void* bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
    if (first_on_this_fiber) {  // fibers are always started from the OS thread's stack
      tls_thread_stack_bottom = bottom;
      tls_thread_stack_size = size;
    }
  }
#else
  (void)fake_stack, (void)first_on_this_fiber;
#endif
}

}  // namespace

void Fiber::start(void* self) {
  auto* fiber = static_cast<Fiber*>(self);
  after_switch(nullptr, true);
  fiber->entry_(fiber->arg_);
  std::abort();  // entries end by switching away for good
}

#if QMETAL_FIBER_ASM

extern "C" void qmetal_fiber_switch(void** save_sp, void* load_sp);
extern "C" void qmetal_fiber_start();

// System V x86-64: save the callee-saved registers, the SSE control/status
// word and the x87 control word on the old stack, swap stack pointers, and
// restore the same from the new stack. A fresh stack is laid out so that the
// first switch "returns" into qmetal_fiber_start with r12 = arg, r13 = entry.
asm(R"(
  .text
  .globl qmetal_fiber_switch
  .type qmetal_fiber_switch, @function
qmetal_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size qmetal_fiber_switch, .-qmetal_fiber_switch

  .globl qmetal_fiber_start
  .type qmetal_fiber_start, @function
qmetal_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size qmetal_fiber_start, .-qmetal_fiber_start
)");

struct Fiber::Context {
  void* sp = nullptr;
};

void Fiber::reset(Entry entry, void* arg) {
  entry_ = entry;
  arg_ = arg;
  constexpr uint32_t kDefaultMxcsr = 0x1F80;   // all exceptions masked, round to nearest
  constexpr uint16_t kDefaultX87Control = 0x037F;
  auto top = (reinterpret_cast<uintptr_t>(stack_) + stack_bytes_) & ~uintptr_t(15);
  auto* slots = reinterpret_cast<uint64_t*>(top) - 8;  // control words, 6 registers, return address
  slots[0] = kDefaultMxcsr | (uint64_t(kDefaultX87Control) << 32);
  slots[1] = 0;                                          // r15
  slots[2] = 0;                                          // r14
  slots[3] = reinterpret_cast<uint64_t>(&Fiber::start);  // r13
  slots[4] = reinterpret_cast<uint64_t>(this);           // r12
  slots[5] = 0;                                          // rbx
  slots[6] = 0;                                          // rbp
  slots[7] = reinterpret_cast<uint64_t>(&qmetal_fiber_start);
  context_->sp = slots;
}

void Fiber::switch_to(Fiber& from, Fiber& to) {
  before_switch(&from.fake_stack_, to.stack_, to.stack_bytes_);
  qmetal_fiber_switch(&from.context_->sp, to.context_->sp);
  after_switch(from.fake_stack_, false);
}

#else

struct Fiber::Context {
  ucontext_t context;
};

void Fiber::reset(Entry entry, void* arg) {
  entry_ = entry;
  arg_ = arg;
  getcontext(&context_->context);
  context_->context.uc_stack.ss_sp = stack_;
  context_->context.uc_stack.ss_size = stack_bytes_;
  context_->context.uc_link = nullptr;
  // makecontext passes int arguments only: split the pointer.
  auto trampoline = +[](int self_hi, int self_lo) {
    start(reinterpret_cast<void*>((uintptr_t(uint32_t(self_hi)) << 32) | uint32_t(self_lo)));
  };
  auto self = reinterpret_cast<uintptr_t>(this);
  makecontext(&context_->context, reinterpret_cast<void (*)()>(trampoline), 2, int(self >> 32), int(self));
}

void Fiber::switch_to(Fiber& from, Fiber& to) {
  before_switch(&from.fake_stack_, to.stack_, to.stack_bytes_);
  swapcontext(&from.context_->context, &to.context_->context);
  after_switch(from.fake_stack_, false);
}

#endif

Fiber::Fiber(size_t stack_bytes) : stack_bytes_(stack_bytes), context_(std::make_unique<Context>()) {
  stack_ = std::aligned_alloc(64, (stack_bytes + 63) / 64 * 64);
  if (stack_ == nullptr) throw std::bad_alloc();
}

Fiber::~Fiber() { std::free(stack_); }

std::unique_ptr<Fiber> Fiber::for_current_thread() {
  std::unique_ptr<Fiber> fiber(new Fiber());
  fiber->context_ = std::make_unique<Context>();
  return fiber;
}

}  // namespace qmetal::sim
