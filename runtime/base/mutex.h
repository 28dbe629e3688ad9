// zerorun::Mutex, MutexLock and Condition: absl's, except in ThreadSanitizer builds, where a
// std::mutex-based stand-in with the same API is used: Debian's libabsl is not instrumented, so
// TSan cannot see absl::Mutex's happens-before edges and would report every guarded access.
#ifndef ZERORUN_RUNTIME_BASE_MUTEX_H_
#define ZERORUN_RUNTIME_BASE_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/cpu_clones.h"  // ZR_TSAN_BUILD

#ifdef ZR_TSAN_BUILD
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#endif

namespace zerorun {

#ifndef ZR_TSAN_BUILD

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using Condition = absl::Condition;

#else

class Condition {
 public:
  template <typename T>
  Condition(bool (*func)(T*), T* arg) : eval_([func, arg] { return func(arg); }) {}
  explicit Condition(const bool* cond) : eval_([cond] { return *cond; }) {}
  template <typename T>  // A functor (a lambda): bool T::operator()() const.
  explicit Condition(const T* obj) : eval_([obj] { return (*obj)(); }) {}
  bool Eval() const { return eval_(); }

 private:
  std::function<bool()> eval_;
};

// Every Unlock wakes the waiters, which re-evaluate their conditions: absl's Await semantics.
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    mu_.unlock();
    cv_.notify_all();
  }
  void Await(const Condition& cond) {
    while (!cond.Eval()) cv_.wait(mu_);
  }
  bool AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    while (!cond.Eval()) {
      if (cv_.wait_until(mu_, deadline) == std::cv_status::timeout) return cond.Eval();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

#endif  // ZR_TSAN_BUILD

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_MUTEX_H_
