// What the cache service's calls share (cache_service.cc, cache_streams.cc):
// a call is an object on the heap that lives while any of its operations is
// out on the completion queue or an answer is posted to it, and deletes
// itself when the last one comes back. Everything runs on the loop thread.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_CALLS_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_CALLS_H_

#include <atomic>
#include <functional>
#include <utility>

#include "cache_server/internal/cache_service.h"
#include "common/io_loop.h"

namespace cluster2::cache_calls {

class Call {
 public:
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

 protected:
  explicit Call(const CacheService::Env& env) : env_(env) {
    env_.service->CallStarted();
  }
  virtual ~Call() { env_.service->CallEnded(); }

  // The handler of one of this call's tags: runs `handler`, then deletes
  // the call if nothing of it is out any more.
  std::function<void(bool)> On(std::function<void(bool ok)> handler) {
    return [this, handler = std::move(handler)](bool ok) {
      --out_;
      handler(ok);
      DeleteIfIdle();
    };
  }
  // The tag for an operation about to start.
  void* Arm(IoLoop::Tag& tag) {
    ++out_;
    return tag.Arm();
  }
  // Keeps the call alive for work that will reach it later (a parked
  // get-or-load's answer, a watch's changes). Any thread, while the caller
  // knows the call is alive.
  void Retain() { ++retained_; }
  // Drops one Retain (loop thread).
  void Release() {
    --retained_;
    DeleteIfIdle();
  }
  // Runs `work` on the loop after the current event (from another thread,
  // as soon as the loop gets to it), then drops one Retain. Thread-safe.
  void PostAndRelease(std::function<void()> work) {
    env_.loop->Post([this, work = std::move(work)] {
      work();
      Release();
    });
  }

  IoLoop& loop() { return *env_.loop; }
  const CacheService::Env env_;

 private:
  void DeleteIfIdle() {
    if (out_ == 0 && retained_ == 0) delete this;
  }

  int out_ = 0;                   // loop thread only
  std::atomic<int> retained_{0};  // raised by any thread, lowered on the loop
};

}  // namespace cluster2::cache_calls

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_CALLS_H_
