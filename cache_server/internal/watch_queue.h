// WatchQueue: the changes waiting to be sent to one watcher, bounded so
// that a slow consumer cannot make the server hold unbounded memory or
// stall it. Past max_events queued changes the watcher is a slow consumer:
// nothing more is queued, and once what is queued is sent its stream ends
// with SlowConsumerError (it resumes from the last revision it got).
//
// Thread-compatible: the transport's watch stream guards it with its lock.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_QUEUE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_QUEUE_H_

#include <cstdint>
#include <deque>
#include <optional>

#include "absl/status/status.h"
#include "cache_server/internal/cache_types.h"

namespace cluster2 {

class WatchQueue {
 public:
  // Changes queued for one watcher before it counts as a slow consumer.
  static constexpr size_t kDefaultMaxEvents = 10000;

  // `last_revision`: what the watcher resumes from (0 = now).
  explicit WatchQueue(uint64_t last_revision,
                      size_t max_events = kDefaultMaxEvents)
      : max_events_(max_events), last_(last_revision) {}

  // Queues `event`; false if the watcher is (now) a slow consumer and the
  // event was dropped.
  bool Push(const CacheEvent& event);
  // The next change to send, if any.
  std::optional<CacheEvent> Pop();
  // `revision` reached the watcher: it resumes after it.
  void Delivered(uint64_t revision) {
    if (revision != 0) last_ = revision;
  }
  void Clear() { queue_.clear(); }

  bool empty() const { return queue_.empty(); }
  bool overflowed() const { return overflowed_; }
  // RESOURCE_EXHAUSTED (SLOW_CONSUMER), naming the revision to resume from.
  absl::Status SlowConsumerError() const;

 private:
  const size_t max_events_;
  std::deque<CacheEvent> queue_;
  uint64_t last_;
  bool overflowed_ = false;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_QUEUE_H_
