// Assembly switches for x86-64 ELF (Linux) and arm64 (Linux and Apple
// silicon); elsewhere ucontext, which on macOS needs _XOPEN_SOURCE before the
// first system header. -DQMETAL_SIM_UCONTEXT forces ucontext (tests use it).
#if defined(__x86_64__) && defined(__ELF__) && !defined(QMETAL_SIM_UCONTEXT)
#define QMETAL_FIBER_ASM 1
#elif defined(__aarch64__) && (defined(__ELF__) || defined(__APPLE__)) && !defined(QMETAL_SIM_UCONTEXT)
#define QMETAL_FIBER_ASM 2
#else
#define QMETAL_FIBER_ASM 0
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#endif

#include "fiber.h"

#include "faults.h"

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

#if QMETAL_FIBER_ASM == 1

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

#elif QMETAL_FIBER_ASM == 2

extern "C" void qmetal_fiber_switch(void** save_sp, void* load_sp);
extern "C" void qmetal_fiber_start();

#if defined(__APPLE__)
#define QMETAL_ASM_NAME(name) "_" #name
#define QMETAL_ASM_FUNCTION(name) ".globl _" #name "\n.p2align 2\n_" #name ":\n"
#define QMETAL_ASM_END(name) ""
#else
#define QMETAL_ASM_NAME(name) #name
#define QMETAL_ASM_FUNCTION(name) ".globl " #name "\n.type " #name ", %function\n.p2align 2\n" #name ":\n"
#define QMETAL_ASM_END(name) ".size " #name ", .-" #name "\n"
#endif

// AAPCS64: save x19-x28, fp, lr, d8-d15 and the FP control register in a
// 176-byte frame on the old stack, swap stack pointers, restore from the
// new stack and return through its lr. A fresh stack holds a frame whose lr
// is qmetal_fiber_start, with x19 = arg and x20 = entry.
asm(".text\n"
    QMETAL_ASM_FUNCTION(qmetal_fiber_switch)
    "  sub sp, sp, #176\n"
    "  stp x19, x20, [sp, #0]\n"
    "  stp x21, x22, [sp, #16]\n"
    "  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n"
    "  stp x27, x28, [sp, #64]\n"
    "  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n"
    "  stp d10, d11, [sp, #112]\n"
    "  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mrs x9, fpcr\n"
    "  str x9, [sp, #160]\n"
    "  mov x9, sp\n"
    "  str x9, [x0]\n"
    "  mov sp, x1\n"
    "  ldr x9, [sp, #160]\n"
    "  msr fpcr, x9\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  ldp d12, d13, [sp, #128]\n"
    "  ldp d10, d11, [sp, #112]\n"
    "  ldp d8, d9, [sp, #96]\n"
    "  ldp x29, x30, [sp, #80]\n"
    "  ldp x27, x28, [sp, #64]\n"
    "  ldp x25, x26, [sp, #48]\n"
    "  ldp x23, x24, [sp, #32]\n"
    "  ldp x21, x22, [sp, #16]\n"
    "  ldp x19, x20, [sp, #0]\n"
    "  add sp, sp, #176\n"
    "  ret\n"
    QMETAL_ASM_END(qmetal_fiber_switch)
    QMETAL_ASM_FUNCTION(qmetal_fiber_start)
    "  mov x0, x19\n"
    "  blr x20\n"
    "  brk #0\n"
    QMETAL_ASM_END(qmetal_fiber_start));

struct Fiber::Context {
  void* sp = nullptr;
};

void Fiber::reset(Entry entry, void* arg) {
  entry_ = entry;
  arg_ = arg;
  constexpr int kFrameWords = 22;  // 176 bytes
  auto top = (reinterpret_cast<uintptr_t>(stack_) + stack_bytes_) & ~uintptr_t(15);
  auto* frame = reinterpret_cast<uint64_t*>(top) - kFrameWords;
  for (int i = 0; i < kFrameWords; ++i) frame[i] = 0;       // fpcr 0: round to nearest, no traps
  frame[0] = reinterpret_cast<uint64_t>(this);              // x19
  frame[1] = reinterpret_cast<uint64_t>(&Fiber::start);     // x20
  frame[11] = reinterpret_cast<uint64_t>(&qmetal_fiber_start);  // x30
  context_->sp = frame;
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

// Stacks come from a pool of page-aligned mappings with a guard page below:
// an overflow faults at once, and the executor names it (faults.h).
Fiber::Fiber(size_t stack_bytes) : stack_bytes_(stack_bytes), context_(std::make_unique<Context>()) {
  stack_ = faults::acquire_stack(stack_bytes);
}

Fiber::~Fiber() { faults::release_stack(stack_, stack_bytes_); }

std::unique_ptr<Fiber> Fiber::for_current_thread() {
  std::unique_ptr<Fiber> fiber(new Fiber());
  fiber->context_ = std::make_unique<Context>();
  return fiber;
}

}  // namespace qmetal::sim
