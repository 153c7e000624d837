// NearCache: the values of one namespace kept in this process, kept
// coherent from a watch of the whole namespace (the guarantee is written in
// cache_client/cache.h). Pure logic: the namespace feeds it its reads, its
// own writes and the watch's events; time comes from the injected Clock.
//
// A read or write to the server is bracketed: Begin* before it is sent
// returns a ticket, End* with its outcome. Changes seen on the watch while
// any is in flight are remembered, so that an answer older than a change
// already received never enters the cache. A resync or a break of the watch
// starts a new epoch: answers begun before it are not kept.
//
// Thread-safe.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_NEAR_CACHE_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_NEAR_CACHE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_client/cache.h"
#include "common/clock.h"

namespace cluster2::cache_internal {

class NearCache {
 public:
  // At most `max_entries` values; `clock` is borrowed.
  NearCache(size_t max_entries, Clock& clock)
      : max_entries_(max_entries), clock_(clock) {}

  // The kept value of `key`, if the watch is live and it has not expired.
  std::optional<CacheValue> Lookup(const std::string& key);

  // A read or write is sent: its ticket.
  uint64_t Begin();
  // The read ended: `found` (null on a miss or an error) expiring at
  // `expires_unix_micros` (0 = never) is kept unless the watch saw a newer
  // change of the key meanwhile or the epoch changed.
  void EndRead(uint64_t ticket, const std::string& key, const CacheValue* found,
               int64_t expires_unix_micros);
  // This client's own write succeeded (read-your-writes): `value` null for
  // a delete. A change of the key newer than the write, already received on
  // the watch, wins.
  void EndWrite(uint64_t ticket, const std::string& key,
                const std::string* value, uint64_t revision,
                int64_t expires_unix_micros);
  // The read or write failed: it changed nothing here.
  void Abandon();

  // An event of the namespace's watch.
  void OnEvent(const CacheWatchEvent& event);
  // The watch became live or broke: empty either way; bypassed while down.
  void SetLive(bool live);

  size_t size() const;

 private:
  struct Entry {
    std::string value;
    uint64_t revision;
    int64_t expires;  // unix micros, 0 = never
  };
  bool ExpiredLocked(int64_t expires) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteLocked(const std::string& key, uint64_t revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutLocked(const std::string& key, const std::string& value,
                 uint64_t revision, int64_t expires)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_entries_;
  Clock& clock_;
  mutable absl::Mutex mu_;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Changes seen while reads or writes were in flight: key -> latest
  // revision.
  std::unordered_map<std::string, uint64_t> recent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_NEAR_CACHE_H_
