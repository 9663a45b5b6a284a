#include "faults.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace qmetal::sim {

// The executor's side (executor.cpp): whether an address is the guard page
// below the running fiber's stack, and stopping the running fiber from a
// signal handler (switches to the scheduler; returns only if no fiber runs).
bool fault_in_fiber_guard(uintptr_t address);
void stop_running_fiber(const char* reason, uintptr_t address = 0);
bool running_a_fiber();

namespace faults {

namespace {

constexpr int kStopSignal = SIGUSR2;
constexpr size_t kAltStackBytes = 64 * 1024;
constexpr int kWatchSlots = 512;

size_t page() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_up_pages(size_t bytes) { return (bytes + page() - 1) / page() * page(); }

struct Watch {
  std::atomic<uintptr_t> guard{0};  // the guard page's address; 0: free slot
  std::atomic<uintptr_t> first{0};  // first faulting address
};
Watch watches[kWatchSlots];

std::atomic<uint64_t> division_count{0};

struct sigaction previous_segv, previous_bus, previous_fpe;

// The address of the last fault passed on (below).
std::atomic<uintptr_t> passed_on_address{~uintptr_t(0)};  // none yet (0 is a fault address)

// A fault that is not ours: the handler installed before ours, or the
// default action (the instruction faults again and the process ends as it
// would have without the simulator). A previous handler that only reports
// (Python's faulthandler under pytest) returns, or restores ours and raises
// again, so the same access faults once more: that second time the default
// action ends the process, rather than the two handlers taking turns forever.
void pass_on(int signal, siginfo_t* info, void* context, const struct sigaction& previous) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  if (passed_on_address.exchange(address, std::memory_order_relaxed) != address) {
    if (previous.sa_flags & SA_SIGINFO) {
      if (previous.sa_sigaction != nullptr) return previous.sa_sigaction(signal, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
      return previous.sa_handler(signal);
    }
  }
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, nullptr);
}

void on_segv(int signal, siginfo_t* info, void* context) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t page_start = address & ~(uintptr_t(page()) - 1);
  for (Watch& w : watches) {
    // A free slot's guard is 0, the page of null-pointer faults and of every
    // general-protection fault (a non-canonical address reports 0).
    const uintptr_t guard = w.guard.load(std::memory_order_acquire);
    if (guard != 0 && guard == page_start) {
      uintptr_t none = 0;
      w.first.compare_exchange_strong(none, address);
      mprotect(reinterpret_cast<void*>(page_start), page(), PROT_READ | PROT_WRITE);  // let the access complete
      return;
    }
  }
  if (fault_in_fiber_guard(address)) {
    stop_running_fiber("overflowed its stack (each simulated thread has QMETAL_SIM_STACK_KB, default 128, KB; "
                       "large private arrays need more)");
  }
  // Any other fault of kernel code is a wild access (far past a buffer, or
  // through a bad pointer): stop the kernel, not the process.
  if (running_a_fiber()) stop_running_fiber("made an invalid memory access", address);
  pass_on(signal, info, context, signal == SIGBUS ? previous_bus : previous_segv);
}

#if defined(__x86_64__) && defined(__linux__)
// Integer division by zero traps on x86-64 (#DE); a GPU gives an undefined
// value instead, and arm64 gives 0. Decode the faulting DIV/IDIV, complete
// it as arm64 would (quotient 0, remainder the dividend) and go on.
bool complete_division(ucontext_t* uc) {
  greg_t* regs = uc->uc_mcontext.gregs;
  const auto* code = reinterpret_cast<const uint8_t*>(regs[REG_RIP]);
  size_t n = 0;
  bool operand16 = false, rex_w = false;
  for (;; ++n) {
    const uint8_t b = code[n];
    if (b == 0x66) operand16 = true;
    else if (b == 0x67 || b == 0xF0 || b == 0xF2 || b == 0xF3 || b == 0x2E || b == 0x36 || b == 0x3E ||
             b == 0x26 || b == 0x64 || b == 0x65) continue;
    else break;
  }
  if ((code[n] & 0xF0) == 0x40) {
    rex_w = (code[n] & 0x08) != 0;
    ++n;
  }
  const uint8_t opcode = code[n++];
  if (opcode != 0xF6 && opcode != 0xF7) return false;
  const uint8_t modrm = code[n++];
  const uint8_t mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
  if (reg != 6 && reg != 7) return false;  // not DIV or IDIV
  if (mod != 3) {
    if (rm == 4) {
      const uint8_t sib = code[n++];
      if (mod == 0 && (sib & 7) == 5) n += 4;
    }
    if (mod == 1) n += 1;
    else if (mod == 2) n += 4;
    else if (mod == 0 && rm == 5) n += 4;  // RIP-relative
  }
  const uint64_t dividend = static_cast<uint64_t>(regs[REG_RAX]);
  if (opcode == 0xF6) {  // AX / r/m8: AL quotient, AH remainder
    regs[REG_RAX] = static_cast<greg_t>((dividend & ~uint64_t(0xFFFF)) | ((dividend & 0xFF) << 8));
  } else if (rex_w) {
    regs[REG_RAX] = 0;
    regs[REG_RDX] = static_cast<greg_t>(dividend);
  } else if (operand16) {
    regs[REG_RDX] = static_cast<greg_t>((static_cast<uint64_t>(regs[REG_RDX]) & ~uint64_t(0xFFFF)) | (dividend & 0xFFFF));
    regs[REG_RAX] = static_cast<greg_t>(dividend & ~uint64_t(0xFFFF));
  } else {  // 32-bit results zero-extend
    regs[REG_RAX] = 0;
    regs[REG_RDX] = static_cast<greg_t>(dividend & 0xFFFFFFFFu);
  }
  regs[REG_RIP] += static_cast<greg_t>(n);
  return true;
}
#endif

void on_fpe(int signal, siginfo_t* info, void* context) {
#if defined(__x86_64__) && defined(__linux__)
  if ((info->si_code == FPE_INTDIV || info->si_code == FPE_INTOVF) && running_a_fiber() &&
      complete_division(static_cast<ucontext_t*>(context))) {
    division_count.fetch_add(1, std::memory_order_relaxed);
    return;
  }
#endif
  pass_on(signal, info, context, previous_fpe);
}

void on_stop(int, siginfo_t*, void*) { stop_running_fiber("was stopped"); }

void handle(int signal, void (*handler)(int, siginfo_t*, void*), struct sigaction* previous) {
  struct sigaction action {};
  action.sa_sigaction = handler;
  // SA_NODEFER: a handler that switches to the scheduler never returns, so
  // the signal must not stay blocked on the worker thread.
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, previous);
}

}  // namespace

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    handle(SIGSEGV, &on_segv, &previous_segv);
    handle(SIGBUS, &on_segv, &previous_bus);
    handle(SIGFPE, &on_fpe, &previous_fpe);
    handle(kStopSignal, &on_stop, nullptr);
  });
}

void prepare_thread() {
  struct AltStack {
    void* memory = nullptr;
    AltStack() {
      memory = std::malloc(kAltStackBytes);
      stack_t stack{};
      stack.ss_sp = memory;
      stack.ss_size = kAltStackBytes;
      if (memory != nullptr) sigaltstack(&stack, nullptr);
    }
    ~AltStack() {
      stack_t disable{};
      disable.ss_flags = SS_DISABLE;
      sigaltstack(&disable, nullptr);
      std::free(memory);
    }
  };
  thread_local AltStack alt;
  (void)alt;
}

GuardedBlock map_guarded(size_t bytes, bool guard_below) {
  GuardedBlock block;
  const size_t usable = round_up_pages(bytes == 0 ? 1 : bytes);
  if (guard_below) {
    block.mapped = usable + page();
    void* mapping = mmap(nullptr, block.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) throw std::bad_alloc();
    block.mapping = block.reservation = mapping;
    char* base = static_cast<char*>(mapping);
    mprotect(base, page(), PROT_NONE);
    block.end = base + block.mapped;
    return block;
  }
  // [far guard][usable][watched guard page][far guard], all but usable PROT_NONE.
  block.mapped = kFarGuardBytes + usable + page() + kFarGuardBytes;
  void* reservation = mmap(nullptr, block.mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reservation == MAP_FAILED) throw std::bad_alloc();
  block.reservation = reservation;
  block.mapping = static_cast<char*>(reservation) + kFarGuardBytes;
  if (mprotect(block.mapping, usable, PROT_READ | PROT_WRITE) != 0) {
    munmap(reservation, block.mapped);
    throw std::bad_alloc();
  }
  block.end = static_cast<char*>(block.mapping) + usable;
  return block;
}

void unmap(GuardedBlock& block) {
  if (block.reservation != nullptr) munmap(block.reservation, block.mapped);
  block = GuardedBlock{};
}

int watch(const GuardedBlock& block) {
  const auto guard = reinterpret_cast<uintptr_t>(block.end);
  for (int i = 0; i < kWatchSlots; ++i) {
    uintptr_t free_slot = 0;
    if (watches[i].guard.compare_exchange_strong(free_slot, guard)) {
      watches[i].first.store(0);
      return i;
    }
  }
  return -1;
}

uintptr_t unwatch(int handle) {
  if (handle < 0) return 0;
  const uintptr_t first = watches[handle].first.exchange(0);
  watches[handle].guard.store(0, std::memory_order_release);
  return first;
}

namespace {
std::mutex stack_pool_mutex;
std::vector<std::pair<size_t, void*>> stack_pool;  // (bytes, mapping) of released stacks
}  // namespace

void* acquire_stack(size_t bytes) {
  bytes = round_up_pages(bytes);
  {
    std::lock_guard<std::mutex> lock(stack_pool_mutex);
    for (size_t i = 0; i < stack_pool.size(); ++i) {
      if (stack_pool[i].first == bytes) {
        void* mapping = stack_pool[i].second;
        stack_pool[i] = stack_pool.back();
        stack_pool.pop_back();
        return static_cast<char*>(mapping) + page();
      }
    }
  }
  GuardedBlock block = map_guarded(bytes, /*guard_below=*/true);
  return static_cast<char*>(block.mapping) + page();
}

void release_stack(void* stack, size_t bytes) {
  if (stack == nullptr) return;
  bytes = round_up_pages(bytes);
  std::lock_guard<std::mutex> lock(stack_pool_mutex);
  stack_pool.emplace_back(bytes, static_cast<char*>(stack) - page());
}

uint64_t divisions_by_zero() { return division_count.load(std::memory_order_relaxed); }

void interrupt_thread(unsigned long thread) { pthread_kill(static_cast<pthread_t>(thread), kStopSignal); }

}  // namespace faults
}  // namespace qmetal::sim
