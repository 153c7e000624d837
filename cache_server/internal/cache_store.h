// CacheStore: the data of the cluster's cache server (groundwork for the
// cache issue: the gRPC server, persistence and watch streams come on top).
//
// Namespaces of binary keys and values with a namespace TTL and per-key TTL
// (an expired key is invisible at once and reclaimed by Sweep), revisions,
// `leave_if_not_null` sets, and single-flight get-or-load with leases:
//
//   GetOrLease(key) on a miss grants the first caller a lease (a token) and
//   parks every later caller; the holder loads and Sets with the token, and
//   every parked caller gets the value. If the holder fails (ReleaseLease
//   with an error) the parked callers get that error, or with `retry` the
//   next one gets the lease; if the holder's process is gone (ReleaseClient)
//   or its lease TTL passes (Sweep), the next parked caller gets the lease at
//   once. The loader thus runs in exactly one process per miss.
//
// Limits: namespace names [A-Za-z0-9._-]{1,128}, keys 1..max_key bytes,
// values up to max_value bytes (INVALID_ARGUMENT / RESOURCE_EXHAUSTED).
// Memory: with a budget (max_bytes, counting each key and value plus
// kEntryOverhead), a write that would exceed it first evicts the least
// recently used keys of non-persistent namespaces (watchers see KIND_EVICT);
// persistent keys are never evicted, so when they alone fill the budget a
// write gets RESOURCE_EXHAUSTED.
//
// Revisions are one counter for the whole store, starting at the wall
// clock's microseconds (or past the largest recovered revision), so they
// keep increasing across restarts of the server: a watcher resuming from a
// revision of a previous run is told to resync instead of silently missing
// changes. Each namespace keeps its last `history` changes for watchers
// that resume.
//
// Persistence: namespaces with `persist` write every change to a
// NamespaceLog (cache_log.h) before applying it; with FsyncPolicy::kAlways
// the call syncs before returning. A write the log refuses fails with the
// log's code (RESOURCE_EXHAUSTED for a full disk; never UNAVAILABLE, which
// clients read as "no server") and is not applied; a namespace whose files
// were refused or could not be rewritten at recovery is read-only (writes
// get FAILED_PRECONDITION). Maintain() syncs `everysec` logs and
// compacts logs that grew past twice their live data.
//
// Thread-safe. Waiter callbacks run after the store's lock is released, on
// the thread of the call that completed them; watchers are called under
// it and must only queue.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_server/internal/cache_log.h"
#include "common/clock.h"

namespace cluster2 {

struct CacheNamespaceOptions {
  bool persist = false;
  absl::Duration expire = absl::ZeroDuration();  // 0 = keys never expire
  FsyncPolicy fsync = FsyncPolicy::kEverySec;    // with persist
  bool operator==(const CacheNamespaceOptions& other) const {
    return persist == other.persist && expire == other.expire &&
           (!persist || fsync == other.fsync);
  }
};

struct CacheGetResult {
  bool found = false;
  std::string value;
  uint64_t revision = 0;
  std::optional<absl::Time> expires_at;
  std::string lease_token;  // set when the caller got the lease
  std::string load_error;   // set when a parked caller is told the load failed
  // Set when a parked caller's own Hold stream ended (ReleaseClient).
  bool hold_lost = false;
};

struct CacheDeleteResult {
  std::optional<std::string> old_value;  // nullopt: there was none
  uint64_t revision = 0;                 // of the delete
};

struct CacheSetResult {
  bool written = false;
  std::string current;  // the value kept, when leave_if_not_null found one
  uint64_t revision = 0;
  std::optional<absl::Time> expires_at;
};

struct CacheEvent {
  enum class Kind { kSet, kDelete, kExpire, kEvict };
  Kind kind = Kind::kSet;
  std::string key;
  std::string value;  // kSet
  uint64_t revision = 0;
  std::optional<absl::Time> expires_at;  // kSet
};

// Receives a namespace's changes, in revision order, under the store's
// lock: it must only queue them (never block, never call the store).
class CacheWatcher {
 public:
  virtual ~CacheWatcher() = default;
  virtual void OnEvent(const CacheEvent& event) = 0;
};

struct CacheNamespaceInfo {
  std::string name;
  CacheNamespaceOptions options;
  uint64_t keys = 0;
  uint64_t bytes = 0;
  uint64_t waiting = 0;  // get-or-load calls parked on a lease
};

class CacheStore {
 public:
  struct Limits {
    size_t max_key = 1024;
    size_t max_value = 4 << 20;
    uint64_t max_bytes = 0;  // memory budget; 0 = none
    size_t history = 10000;  // changes kept per namespace for resuming
    uint64_t history_bytes = 16 << 20;  // and at most this many bytes of them
  };
  // Bytes counted for each key besides its key and value.
  static constexpr uint64_t kEntryOverhead = 96;
  using Waiter = std::function<void(const CacheGetResult& result)>;

  // `data_dir`: where persistent namespaces live; empty = persistence is
  // refused (Use with persist gets FAILED_PRECONDITION).
  CacheStore(Limits limits, Clock* clock, std::string data_dir = "");
  ~CacheStore();

  // Loads the persistent namespaces of data_dir. Call once, before serving.
  // Problems found in the files (torn tails, corrupt files) are appended to
  // `problems`; only an unusable directory is an error.
  absl::Status Recover(std::vector<std::string>* problems)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Creates `name` or returns its options; `conflict` tells whether they
  // differ from the requested ones (the first Use wins).
  absl::StatusOr<CacheNamespaceOptions> Use(
      const std::string& name, const CacheNamespaceOptions& options,
      bool* conflict) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<CacheGetResult> Get(const std::string& ns,
                                     const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Get-or-load. A hit or a granted lease is returned at once; otherwise the
  // call is parked: nullopt is returned with `*waiter_id` set, and `waiter`
  // is called once with the value, the load error or a lease of its own.
  absl::StatusOr<std::optional<CacheGetResult>> GetOrLease(
      const std::string& ns, const std::string& key,
      const std::string& client_id, absl::Duration lease_ttl, Waiter waiter,
      uint64_t* waiter_id) ABSL_LOCKS_EXCLUDED(mu_);
  // A parked call gave up (its deadline passed or it was cancelled). False
  // if it was no longer parked: its waiter has been or is being called.
  bool CancelWaiter(uint64_t waiter_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Writes `key`. `ttl` 0 = the namespace's. With `leave_if_not_null` only
  // if absent. With `lease_token` it completes that lease (FAILED_PRECONDITION
  // if the token no longer holds it): parked callers get the value.
  absl::StatusOr<CacheSetResult> Set(const std::string& ns,
                                     const std::string& key, std::string value,
                                     absl::Duration ttl, bool leave_if_not_null,
                                     const std::string& lease_token)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The lease holder failed: parked callers get `error`, or with `retry` the
  // next one gets the lease. FAILED_PRECONDITION for a stale token.
  absl::Status ReleaseLease(const std::string& ns, const std::string& key,
                            const std::string& lease_token,
                            const std::string& error, bool retry)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The process `client_id` is gone: its parked calls are told so
  // (hold_lost), then each of its leases passes to the next parked caller
  // of another process at once.
  void ReleaseClient(const std::string& client_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes `key`, returning its old value if it had one. A key being
  // loaded loses its lease too (the load may predate this invalidation):
  // the next parked caller loads afresh; the old holder's Set fails.
  absl::StatusOr<CacheDeleteResult> Delete(const std::string& ns,
                                           const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Live keys with `prefix`, sorted, at most `limit`, after `after`.
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& ns,
                                                const std::string& prefix,
                                                size_t limit,
                                                const std::string& after)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Registers `watcher` for the changes of `key` (empty: every key) of
  // `ns`. With `from_revision` > 0 it first gets the kept changes after it;
  // if they are no longer all kept, it gets none and the result is true
  // (resync: the caller re-reads). `watcher` must outlive Unwatch.
  absl::StatusOr<bool> Watch(const std::string& ns, const std::string& key,
                             uint64_t from_revision, CacheWatcher* watcher)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unwatch(CacheWatcher* watcher) ABSL_LOCKS_EXCLUDED(mu_);

  // Namespaces (or just `ns`) with their sizes.
  std::vector<CacheNamespaceInfo> Namespaces(const std::string& ns = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t bytes() ABSL_LOCKS_EXCLUDED(mu_);

  // Reclaims expired keys and passes on leases whose TTL ran out. Returns
  // the number of keys reclaimed.
  size_t Sweep() ABSL_LOCKS_EXCLUDED(mu_);
  // Once a second: Sweep, sync `everysec` logs, compact grown logs.
  void Maintain() ABSL_LOCKS_EXCLUDED(mu_);
  // Syncs every persistent namespace's log (at shutdown).
  void SyncAll() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Namespace;
  struct LruNode {
    Namespace* ns;
    const std::string* key;
  };
  struct Entry {
    std::string value;
    uint64_t revision = 0;
    std::optional<absl::Time> expires_at;
    bool in_lru = false;
    std::list<LruNode>::iterator lru;
  };
  struct Parked {
    uint64_t id = 0;
    std::string client_id;
    absl::Duration lease_ttl;
    Waiter waiter;
  };
  struct Lease {
    std::string token;
    std::string client_id;
    absl::Time expires_at;
    std::vector<Parked> parked;
  };
  struct Subscription {
    std::string key;  // empty = every key
    CacheWatcher* watcher;
  };
  struct Namespace {
    std::string name;
    CacheNamespaceOptions options;
    std::map<std::string, Entry> entries;
    // The entries with a TTL, soonest first, so that Sweep touches only
    // what expired.
    std::set<std::pair<absl::Time, const std::string*>> expiry;
    std::map<std::string, Lease> leases;
    uint64_t bytes = 0;
    std::unique_ptr<NamespaceLog> log;  // with persist
    uint64_t snapshot_bytes = 0;        // live bytes at the last compaction
    // Changes after `history_floor` are all in `history`.
    std::deque<CacheEvent> history;
    uint64_t history_bytes = 0;
    uint64_t history_floor = 0;
    // Revisions a previous run may have handed out but did not keep (lost
    // with the unsynced end of the log): a watcher resuming from one must
    // resync.
    uint64_t lost_after = 0, lost_until = 0;
    std::vector<Subscription> watches;
  };
  // A waiter call to make once the lock is released.
  using Completion = std::pair<Waiter, CacheGetResult>;

  absl::StatusOr<Namespace*> FindLocked(const std::string& ns,
                                        const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Entry* LiveLocked(Namespace& ns, const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewTokenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Passes the lease of `key` to its next parked caller (or drops it).
  void PassLeaseLocked(Namespace& ns, const std::string& key,
                       std::vector<Completion>* done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Complete(std::vector<Completion>& done);
  // The answer for a live entry.
  static CacheGetResult Hit(const Entry& entry);
  // Removes `it` (a change of kind `kind`, already logged if it must be),
  // telling the watchers.
  void EraseLocked(Namespace& ns, std::map<std::string, Entry>::iterator it,
                   CacheEvent::Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a change for resuming watchers and tells the live ones.
  void EmitLocked(Namespace& ns, CacheEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts least recently used non-persistent keys (never `keep`) until
  // `incoming` more bytes fit; false if they cannot.
  bool MakeRoomLocked(uint64_t incoming, const Entry* keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AccountLocked(Namespace& ns, int64_t delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the expiry of `it`, keeping the namespace's expiry index.
  void SetExpiryLocked(Namespace& ns, std::map<std::string, Entry>::iterator it,
                       std::optional<absl::Time> when)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The data directory, opened (and checked) on first use.
  absl::StatusOr<const DataDirectory*> DirectoryLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the log of a new persistent namespace.
  absl::Status OpenLogLocked(Namespace& ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompactLocked(Namespace& ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::Status Unpersistable(const Namespace& ns);

  const Limits limits_;
  Clock* const clock_;
  const std::string data_dir_;
  absl::Mutex mu_;
  // Set once, never reset: logs keep pointers to it.
  std::unique_ptr<DataDirectory> dir_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Namespace> namespaces_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evictable_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // non-persistent
  std::list<LruNode> lru_ ABSL_GUARDED_BY(mu_);        // most recent first
};

// An expiry as microseconds since the Unix epoch (as in the log and the
// protos); 0 = never.
int64_t ExpiryUnixMicros(const std::optional<absl::Time>& expires_at);

// INVALID_ARGUMENT unless `name` is 1..128 characters of [A-Za-z0-9._-].
absl::Status ValidateNamespaceName(const std::string& name);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
