// TimerQueue: runs callbacks at deadlines, on one thread of its own
// ("cache-timers"). The cache uses it for the `wait` deadline of parked
// get-or-load calls, so that no call polls and no call holds a thread
// while it waits.
//
// Thread-safe. Its one thread sleeps until the earliest deadline (or a
// change of the queue) and runs every due callback in deadline order,
// without holding the queue's lock: a callback may Schedule or Cancel,
// and may take locks that are held around Schedule and Cancel elsewhere
// (the queue's lock is a leaf: nothing is called while it is held).
//
// The deadlines are read from the injected Clock; the thread's sleep is in
// real time, so with a fake clock a test calls RunDue() after advancing it.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_TIMER_QUEUE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace cluster2 {

class TimerQueue {
 public:
  // Borrows `clock`. Starts the thread.
  explicit TimerQueue(Clock* clock);
  // Stops the thread; callbacks not yet due are dropped, never run.
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `callback` once, on the queue's thread, at `when` (at once if it
  // is past). Returns an id for Cancel (never 0).
  uint64_t Schedule(absl::Time when, std::function<void()> callback)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the callback `id`. False if it already ran or is running.
  bool Cancel(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs every callback due by the clock now, on the calling thread.
  // Returns how many ran.
  size_t RunDue() ABSL_LOCKS_EXCLUDED(mu_);
  // Callbacks waiting to run.
  size_t size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Key = std::pair<absl::Time, uint64_t>;  // deadline, id
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  Clock* const clock_;
  absl::Mutex mu_;
  std::map<Key, std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // wakes the thread
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_TIMER_QUEUE_H_
