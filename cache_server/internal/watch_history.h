// WatchHistory: one namespace's watchers and its recent changes, so that a
// watcher that reconnects resumes from the last revision it saw or is told
// to resync.
//
// Every change (Record) goes to the subscribers of its key (or of the whole
// namespace) and is kept; the oldest kept changes are dropped past
// Limits::max_events or max_bytes, raising the floor below which nobody can
// resume. Revisions a previous run of the server may have handed out but
// did not keep (the unsynced end of a log) are marked lost: resuming from
// one of them resyncs too.
//
// Thread-compatible: the owner (CacheStore) guards it with its lock, and
// calls the watchers under it (they only queue: see CacheWatcher).
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_HISTORY_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_HISTORY_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "cache_server/internal/cache_types.h"

namespace cluster2 {

class WatchHistory {
 public:
  struct Limits {
    size_t max_events = 10000;      // changes kept for resuming
    uint64_t max_bytes = 16 << 20;  // and at most this many bytes of them
  };

  // Nobody can resume from a revision before `floor` (the store's revision
  // when the namespace was created).
  WatchHistory(Limits limits, uint64_t floor)
      : limits_(limits), floor_(floor) {}

  // Tells the subscribers, then keeps `event` (its revision above every
  // kept one).
  void Record(CacheEvent event);
  // Subscribes `watcher` (borrowed until Unsubscribe) to `key` (empty:
  // every key). With `from_revision` > 0 it first gets the kept changes
  // after it; if they are not all kept (below the floor, past `current`,
  // or lost) it gets none and the result is true: resync.
  bool Subscribe(const std::string& key, uint64_t from_revision,
                 uint64_t current, CacheWatcher* watcher);
  void Unsubscribe(CacheWatcher* watcher);
  // Recovery: changes after `floor` are those recorded from now on.
  void set_floor(uint64_t floor) { floor_ = floor; }
  // Revisions in (after, until] may have been lost with a previous run.
  void MarkLost(uint64_t after, uint64_t until) {
    lost_after_ = after;
    lost_until_ = until;
  }

 private:
  struct Subscription {
    std::string key;  // empty = every key
    CacheWatcher* watcher;
  };

  const Limits limits_;
  std::deque<CacheEvent> kept_;
  uint64_t kept_bytes_ = 0;
  uint64_t floor_;  // changes after it are all in kept_
  uint64_t lost_after_ = 0, lost_until_ = 0;
  std::vector<Subscription> subscriptions_;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_WATCH_HISTORY_H_
