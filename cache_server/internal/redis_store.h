// RedisStore: the cache's domain on a Redis server shared by the cache
// servers of several hosts (cache.backend "redis://HOST:PORT" or
// "unix:/path"); docs/adr/0006-cache-on-redis.md says why this shape.
//
// Each namespace NS lives in keys with the hash tag {NS}:
//   c2:{NS}:opts     its options (the first Use wins, as locally)
//   c2:{NS}:k:KEY    a hash: v (the value), r (its revision); a TTL = expiry
//   c2:{NS}:l:KEY    a get-or-load lease: the holder's token, with a TTL
//   c2:{NS}:rev      the namespace's revision counter (starts at the wall
//                    clock's microseconds, so that revisions keep growing
//                    if Redis loses its data)
//   c2:{NS}:log      a stream of its changes, in revision order: sets and
//                    deletes for watchers, lease releases for parked calls
// Every change is one Lua script (atomic in Redis): write, revision,
// stream entry. A lease is SET NX with a TTL and the holder's token; it is
// released by compare-and-delete. Parked get-or-load calls and watchers
// of every host follow the namespace's stream (one XREAD BLOCK connection,
// thread "redis-events", following every namespace used by a get-or-load
// or a watch since the server started): a value, a release or a delete
// wakes them at once, on every host; nothing polls. A lease whose host died
// passes on when its TTL ends (a timer per parked call); a lease whose holder
// process died (its Hold ended) is released by its own cache server at once.
//
// Differences from CacheStore: expiry is Redis's TTL, and watchers are not
// told of expiries; there is no memory budget (Redis's maxmemory applies);
// persistence is Redis's (AOF/RDB: `persist` and `fsync` are recorded, not
// acted on); Namespaces() counts keys with SCAN and reports no bytes;
// hit/miss counters are this server's. A Redis that cannot be reached
// makes calls fail with UNAVAILABLE within `timeout`.
//
// Thread-safe. Threads: the callers', "redis-events" and the TimerQueue's
// ("cache-timers"). Lock order: mu_, then the connections' locks (commands
// may run under mu_; the connections call nothing back). Waiters run with
// no lock held; watchers' OnEvent runs under mu_ (they only queue).
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_STORE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/internal/cache_backend.h"
#include "cache_server/internal/timer_queue.h"
#include "common/clock.h"
#include "common/redis_connection.h"

namespace cluster2 {

class RedisStore final : public CacheBackend {
 public:
  struct Options {
    RedisAddress address;
    size_t max_key = 1024;
    size_t max_value = 4 << 20;
    // Each Redis command's deadline (connect and I/O).
    absl::Duration timeout = absl::Milliseconds(500);
    // Changes kept per namespace's stream (for watchers resuming).
    size_t history = 10000;
  };

  // Borrows `clock`. Starts "redis-events" and the timer thread.
  RedisStore(Options options, Clock* clock);
  ~RedisStore() override;

  absl::Status Recover(std::vector<std::string>* problems) override;
  absl::StatusOr<CacheNamespaceOptions> Use(
      const std::string& name, const CacheNamespaceOptions& options,
      bool* conflict) override;
  absl::StatusOr<CacheGetResult> Get(const std::string& ns,
                                     const std::string& key) override;
  absl::Status OpenHold(const std::string& client_id) override;
  void EndHold(const std::string& client_id) override;
  absl::StatusOr<std::optional<CacheGetResult>> GetOrLease(
      const std::string& ns, const std::string& key,
      const std::string& client_id, absl::Duration lease_ttl, Waiter waiter,
      uint64_t* waiter_id,
      absl::Duration wait = absl::InfiniteDuration()) override;
  bool CancelWaiter(uint64_t waiter_id) override;
  absl::StatusOr<CacheSetResult> Set(const std::string& ns,
                                     const std::string& key, std::string value,
                                     absl::Duration ttl, bool leave_if_not_null,
                                     const std::string& lease_token) override;
  absl::Status ReleaseLease(const std::string& ns, const std::string& key,
                            const std::string& lease_token,
                            const std::string& error, bool retry) override;
  absl::StatusOr<CacheDeleteResult> Delete(const std::string& ns,
                                           const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> Keys(
      const std::string& ns, const std::string& prefix, size_t limit,
      const std::string& after) override;
  absl::StatusOr<bool> Watch(const std::string& ns, const std::string& key,
                             uint64_t from_revision,
                             CacheWatcher* watcher) override;
  void Unwatch(CacheWatcher* watcher) override;
  std::vector<CacheNamespaceInfo> Namespaces(
      const std::string& ns = "") override;
  void Maintain() override {}
  void SyncAll() override {}

 private:
  struct Parked {
    std::string ns, key, client_id;
    absl::Duration lease_ttl;
    Waiter waiter;
    absl::Time deadline;  // of its `wait`
    uint64_t timer = 0;
    // The namespace's log position when it found the lease held: only
    // what comes after may wake it.
    std::string after;
  };
  struct Watching {
    std::string ns, key;  // key empty: every key
  };
  // One entry of a namespace's stream.
  struct LogEntry {
    std::string id;  // the stream's "ms-seq"
    char type = 0;   // 's' set, 'd' delete, 'l' lease released
    uint64_t revision = 0;
    std::string key, value, error;
    int64_t expires_micros = 0;
    bool retry = false;
  };
  // What a get-or-load attempt found.
  struct Attempt {
    enum class Outcome { kHit, kLease, kLeased } outcome;
    CacheGetResult result;      // kHit, kLease
    absl::Duration lease_left;  // kLeased: the holder's lease
    std::string log_position;   // kLeased: the log's last entry
  };

  absl::Status CheckKey(const std::string& key) const;
  absl::StatusOr<Attempt> TryGetOrLease(const std::string& ns,
                                        const std::string& key,
                                        const std::string& client_id,
                                        absl::Duration lease_ttl);
  // Parks `parked` (a get-or-load that found the lease held, for
  // `lease_left` more), with a timer at the earlier of its deadline and the
  // lease's end.
  void ParkLocked(uint64_t id, Parked parked, absl::Duration lease_left)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A parked call's timer: its wait ended, or the lease it waited for did.
  void OnTimer(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Tries again for the parked calls of (ns, key), the first one first; runs
  // the waiters that are done.
  void Retry(const std::string& ns, const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The namespace's stream position as of now ("0-0" if it has none).
  absl::StatusOr<std::string> LastLogId(const std::string& ns);
  // Follows the streams of the namespaces with watchers or parked calls.
  void EventLoop();
  void Deliver(const std::string& ns, const std::vector<LogEntry>& entries)
      ABSL_LOCKS_EXCLUDED(mu_);
  // From now on "redis-events" follows the stream of `ns` (from its end).
  absl::Status Follow(const std::string& ns) ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes "redis-events" out of its XREAD (the set of streams changed).
  void WakeEvents();
  CacheCounters& CountersLocked(const std::string& ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return counters_[ns];
  }

  const Options options_;
  Clock* const clock_;
  RedisConnection commands_;
  RedisConnection events_;  // "redis-events"' blocking reads
  std::atomic<int64_t> events_client_id_{0};
  std::atomic<uint64_t> next_id_{1};

  absl::Mutex mu_;
  std::set<std::string> holds_ ABSL_GUARDED_BY(mu_);
  // Leases granted through this server, by client: released if its Hold
  // ends. (ns, key) -> token.
  std::map<std::string,
           std::map<std::pair<std::string, std::string>, std::string>>
      leases_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Parked> parked_ ABSL_GUARDED_BY(mu_);
  std::map<CacheWatcher*, Watching> watchers_ ABSL_GUARDED_BY(mu_);
  // The followed streams (every namespace a get-or-load or a watch used):
  // namespace -> last entry id delivered.
  std::map<std::string, std::string> cursors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CacheCounters> counters_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  TimerQueue timers_;
  std::thread events_thread_;  // last: started last
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_REDIS_STORE_H_
