#include "cache_server/internal/timer_queue.h"

#include <pthread.h>

#include <vector>

namespace cluster2 {

TimerQueue::TimerQueue(Clock* clock) : clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
  pthread_setname_np(thread_.native_handle(), "cache-timers");
}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    ++changes_;
  }
  thread_.join();
}

uint64_t TimerQueue::Schedule(absl::Time when, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  bool earliest = queue_.empty() || Key{when, id} < queue_.begin()->first;
  queue_.emplace(Key{when, id}, std::move(callback));
  deadlines_.emplace(id, when);
  if (earliest) ++changes_;  // the thread sleeps until a later deadline
  return id;
}

bool TimerQueue::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return false;
  queue_.erase(Key{it->second, id});
  deadlines_.erase(it);
  return true;
}

size_t TimerQueue::size() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

size_t TimerQueue::RunDue() {
  std::vector<std::function<void()>> due;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    while (!queue_.empty() && queue_.begin()->first.first <= now) {
      deadlines_.erase(queue_.begin()->first.second);
      due.push_back(std::move(queue_.begin()->second));
      queue_.erase(queue_.begin());
    }
  }
  for (std::function<void()>& callback : due) callback();
  return due.size();
}

void TimerQueue::Loop() {
  while (true) {
    RunDue();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    uint64_t seen = changes_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return changes_ != seen;
    };
    if (queue_.empty()) {
      mu_.Await(absl::Condition(&changed));
    } else {
      absl::Duration left = queue_.begin()->first.first - clock_->Now();
      if (left > absl::ZeroDuration())
        mu_.AwaitWithTimeout(absl::Condition(&changed), left);
    }
  }
}

}  // namespace cluster2
