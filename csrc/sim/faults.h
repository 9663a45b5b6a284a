// Faults of simulated kernels that would otherwise kill the process: a
// thread overflowing its fiber stack, an access past a bound buffer, an
// integer division by zero, and a kernel that never ends. The simulator
// turns each into an error naming the kernel (or, for division by zero, the
// result a GPU gives: an undefined value, here arm64's 0), never a crash.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qmetal::sim::faults {

// Installs the process's handlers (once): SIGSEGV/SIGBUS for guard pages,
// SIGFPE for integer division (x86-64), and the signal that stops a fiber
// (timeouts and Ctrl-C). A fault that is not the simulator's goes to the
// handler installed before (Python's faulthandler, say) or the default.
void install();

// Gives the calling OS thread an alternate signal stack (once), so a fiber
// that overflowed its stack can still be stopped.
void prepare_thread();

// Memory with a PROT_NONE page right after `bytes` usable bytes (rounded up
// to whole pages); `end` is where the guard page starts. Without
// guard_below, kFarGuardBytes of PROT_NONE address space also lie before
// the block and after its guard page, so that an access far past either
// end (a grid larger than the buffer) faults rather than landing in
// another mapping; `mapping` is the usable start, `reservation` the whole.
inline constexpr size_t kFarGuardBytes = size_t(1) << 20;
struct GuardedBlock {
  void* mapping = nullptr;
  void* reservation = nullptr;
  size_t mapped = 0;  // bytes of the reservation
  char* end = nullptr;
};
GuardedBlock map_guarded(size_t bytes, bool guard_below = false);
void unmap(GuardedBlock& block);

// Watches a block's guard page: an access there is recorded (the first
// faulting address) and the page opened so the access completes; the
// launcher reports it afterwards. Returns a handle, or -1 if all slots are taken.
int watch(const GuardedBlock& block);
// The first faulting address (0: none), and the slot released.
uintptr_t unwatch(int handle);

// Stack memory for fibers: whole pages with a guard page below, reused
// across launches. `bytes` is rounded up to pages.
void* acquire_stack(size_t bytes);
void release_stack(void* stack, size_t bytes);

// Integer divisions by zero the simulator completed (quotient 0) since the
// process started.
uint64_t divisions_by_zero();

// Signals `thread` (a pthread_t) to stop the fiber it runs, if any.
void interrupt_thread(unsigned long thread);

}  // namespace qmetal::sim::faults
