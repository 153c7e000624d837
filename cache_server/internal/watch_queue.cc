#include "cache_server/internal/watch_queue.h"

#include "absl/strings/str_cat.h"
#include "cache_server/cache_errors.h"

namespace cluster2 {

bool WatchQueue::Push(const CacheEvent& event) {
  if (overflowed_) return false;
  if (queue_.size() >= max_events_) {
    overflowed_ = true;
    return false;
  }
  queue_.push_back(event);
  return true;
}

std::optional<CacheEvent> WatchQueue::Pop() {
  if (queue_.empty()) return std::nullopt;
  CacheEvent event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

absl::Status WatchQueue::SlowConsumerError() const {
  return MakeCacheError(
      absl::StatusCode::kResourceExhausted, CacheError::kSlowConsumer,
      absl::StrCat("slow consumer: more than ", max_events_,
                   " changes queued; resume from revision ", last_));
}

}  // namespace cluster2
