// CacheStore: the cache server's domain. Namespaces of binary keys and
// values with expiry, a memory budget, single-flight get-or-load with
// leases, watchers and persistence; it knows nothing of gRPC.
//
// It composes small parts, each in its own file with its own tests:
//   LeaseTable    leases, parked get-or-load calls, hand-off, live Holds
//   ExpiryIndex   the keys with a TTL, soonest first (per namespace)
//   MemoryBudget  bytes used, the budget, the LRU order of evictable keys
//   WatchHistory  watchers and recent changes for resuming (per namespace)
//   TimerQueue    the `wait` deadlines of parked calls (thread "cache-timers")
//   NamespaceLog  a persistent namespace's files (cache_log.h)
//
// Get-or-load: GetOrLease on a miss grants the first caller a lease (a
// token); every later caller is parked and its Waiter is called once: with
// the value when the key is set, with the load error when the holder gives
// up (ReleaseLease), with a lease of its own when the lease passes on (the
// holder retried, its Hold ended, its TTL passed, the key was deleted), or
// with an error when its own Hold ends (HOLD_LOST) or its `wait` passes
// (WAIT_EXPIRED). Nothing polls: each of these is an event or a timer.
//
// Limits: namespace names [A-Za-z0-9._-]{1,128}, keys 1..max_key bytes,
// values up to max_value bytes (INVALID_ARGUMENT / RESOURCE_EXHAUSTED).
// With a memory budget a write that would exceed it first evicts the least
// recently used keys of non-persistent namespaces (watchers see kEvict);
// persistent keys are never evicted, so when they alone fill the budget a
// write gets RESOURCE_EXHAUSTED (MEMORY_FULL).
//
// Revisions are one counter for the whole store, starting at the wall
// clock's microseconds (or past the largest recovered revision), so they
// keep increasing across restarts: a watcher resuming from a revision of a
// previous run is told to resync instead of silently missing changes.
//
// Persistence: namespaces with `persist` write every change to their
// NamespaceLog before applying it; with FsyncPolicy::kAlways the call syncs
// before returning. A write the log refuses fails with the log's code
// (RESOURCE_EXHAUSTED for a full disk; never UNAVAILABLE, which clients
// read as "no server") and is not applied; a namespace whose files were
// refused or could not be rewritten at recovery is read-only
// (FAILED_PRECONDITION, NAMESPACE_READ_ONLY). Maintain() syncs `everysec`
// logs and compacts logs that grew past twice their live data.
//
// Errors carry a CacheError (cache_server/cache_errors.h) where a caller
// may need to act on their meaning.
//
// Thread-safe. Threads: the callers' own, plus the TimerQueue's one thread,
// which only expires parked calls (CancelWaiter, then their waiter).
// Lock order: CacheStore::mu_, then TimerQueue's lock, then the watchers'
// locks (CacheWatcher::OnEvent runs under mu_ and must only queue).
// Waiters run with no store lock held, on the thread of the call that
// completed them (a Set, a Delete, a ReleaseLease, an EndHold, Sweep) or on
// the timer thread; they may call the store.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_server/internal/cache_backend.h"
#include "cache_server/internal/cache_log.h"
#include "cache_server/internal/cache_types.h"
#include "cache_server/internal/expiry_index.h"
#include "cache_server/internal/lease_table.h"
#include "cache_server/internal/memory_budget.h"
#include "cache_server/internal/timer_queue.h"
#include "cache_server/internal/watch_history.h"
#include "common/clock.h"

namespace cluster2 {

class CacheStore final : public CacheBackend {
 public:
  struct Limits {
    size_t max_key = 1024;
    size_t max_value = 4 << 20;
    uint64_t max_bytes = 0;  // memory budget; 0 = none
    size_t history = 10000;  // changes kept per namespace for resuming
    uint64_t history_bytes = 16 << 20;  // and at most this many bytes of them
  };
  // Bytes counted for each key besides its key and value.
  static constexpr uint64_t kEntryOverhead = MemoryBudget::kEntryOverhead;
  using Waiter = CacheBackend::Waiter;

  // `data_dir`: where persistent namespaces live; empty = persistence is
  // refused (Use with persist gets FAILED_PRECONDITION). Borrows `clock`.
  // Starts the timer thread.
  CacheStore(Limits limits, Clock* clock, std::string data_dir = "");
  // Parked calls still waiting are dropped, their waiters never called.
  ~CacheStore() override;

  // Loads the persistent namespaces of data_dir. Call once, before serving.
  // Problems found in the files (torn tails, corrupt files) are appended to
  // `problems`; only an unusable directory is an error.
  absl::Status Recover(std::vector<std::string>* problems)
      ABSL_LOCKS_EXCLUDED(mu_) override;

  // Creates `name` or returns its options; `conflict` tells whether they
  // differ from the requested ones (the first Use wins).
  absl::StatusOr<CacheNamespaceOptions> Use(
      const std::string& name, const CacheNamespaceOptions& options,
      bool* conflict) ABSL_LOCKS_EXCLUDED(mu_) override;

  // A plain read (counted as a hit or a miss). NOT_FOUND
  // (NAMESPACE_NOT_FOUND) for an unknown namespace.
  absl::StatusOr<CacheGetResult> Get(const std::string& ns,
                                     const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_) override;

  // The Hold of client process `client_id` began: it may take leases until
  // EndHold. INVALID_ARGUMENT if empty; ALREADY_EXISTS (HOLD_IN_USE).
  absl::Status OpenHold(const std::string& client_id)
      ABSL_LOCKS_EXCLUDED(mu_) override;
  // The Hold ended (the process died or cancelled): its parked calls get
  // HOLD_LOST, then each of its leases passes to the next parked caller of
  // another process at once.
  void EndHold(const std::string& client_id) ABSL_LOCKS_EXCLUDED(mu_) override;

  // Get-or-load for `client_id`, which must have a live Hold
  // (FAILED_PRECONDITION, HOLD_MISSING). A hit or a granted lease is
  // returned at once; otherwise the call is parked: nullopt is returned
  // with `*waiter_id` set, and `waiter` is called once (see above). Shortly
  // before `wait` passes (by a tenth of it, at most 100 ms, so that the
  // answer still reaches a caller whose own deadline is `wait`) the waiter
  // gets DEADLINE_EXCEEDED (WAIT_EXPIRED).
  absl::StatusOr<std::optional<CacheGetResult>> GetOrLease(
      const std::string& ns, const std::string& key,
      const std::string& client_id, absl::Duration lease_ttl, Waiter waiter,
      uint64_t* waiter_id, absl::Duration wait = absl::InfiniteDuration())
      ABSL_LOCKS_EXCLUDED(mu_) override;
  // A parked call gave up (its client went away). True if it was still
  // parked: its waiter is dropped, never called. False if its waiter has
  // been or is being called.
  bool CancelWaiter(uint64_t waiter_id) ABSL_LOCKS_EXCLUDED(mu_) override;

  // Writes `key`. `ttl` 0 = the namespace's. With `leave_if_not_null` only
  // if absent. With `lease_token` it completes that lease
  // (FAILED_PRECONDITION, LEASE_NOT_HELD if the token no longer holds it).
  // A value for a key being loaded ends its lease, whoever wrote it: parked
  // callers get the value.
  absl::StatusOr<CacheSetResult> Set(const std::string& ns,
                                     const std::string& key, std::string value,
                                     absl::Duration ttl, bool leave_if_not_null,
                                     const std::string& lease_token)
      ABSL_LOCKS_EXCLUDED(mu_) override;

  // The lease holder failed: parked callers get `error`, or with `retry` the
  // next one gets the lease. FAILED_PRECONDITION (LEASE_NOT_HELD) for a
  // stale token.
  absl::Status ReleaseLease(const std::string& ns, const std::string& key,
                            const std::string& lease_token,
                            const std::string& error, bool retry)
      ABSL_LOCKS_EXCLUDED(mu_) override;

  // Deletes `key`, returning its old value if it had one. A key being
  // loaded loses its lease too (the load may predate this invalidation):
  // the next parked caller loads afresh; the old holder's Set fails.
  absl::StatusOr<CacheDeleteResult> Delete(const std::string& ns,
                                           const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_) override;
  // Live keys with `prefix`, sorted, at most `limit`, after `after`.
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& ns,
                                                const std::string& prefix,
                                                size_t limit,
                                                const std::string& after)
      ABSL_LOCKS_EXCLUDED(mu_) override;

  // Registers `watcher` for the changes of `key` (empty: every key) of
  // `ns`. With `from_revision` > 0 it first gets the kept changes after it;
  // if they are no longer all kept, it gets none and the result is true
  // (resync: the caller re-reads). `watcher` must outlive Unwatch.
  absl::StatusOr<bool> Watch(const std::string& ns, const std::string& key,
                             uint64_t from_revision, CacheWatcher* watcher)
      ABSL_LOCKS_EXCLUDED(mu_) override;
  void Unwatch(CacheWatcher* watcher) ABSL_LOCKS_EXCLUDED(mu_) override;

  // Namespaces (or just `ns`) with their sizes and counters.
  std::vector<CacheNamespaceInfo> Namespaces(const std::string& ns = "")
      ABSL_LOCKS_EXCLUDED(mu_) override;
  uint64_t bytes() ABSL_LOCKS_EXCLUDED(mu_);

  // Reclaims expired keys and passes on leases whose TTL ran out. Returns
  // the number of keys reclaimed.
  size_t Sweep() ABSL_LOCKS_EXCLUDED(mu_);
  // Once a second: Sweep, sync `everysec` logs, compact grown logs.
  void Maintain() ABSL_LOCKS_EXCLUDED(mu_) override;
  // Syncs every persistent namespace's log (at shutdown).
  void SyncAll() ABSL_LOCKS_EXCLUDED(mu_) override;

  // The timers of parked calls, for tests with a fake clock (RunDue).
  TimerQueue& timers_for_test() { return timers_; }

 private:
  struct Entry {
    std::string value;
    uint64_t revision = 0;
    std::optional<absl::Time> expires_at;
    std::optional<MemoryBudget::Handle> lru;  // non-persistent keys
  };
  struct Namespace {
    Namespace(const std::string& name, WatchHistory::Limits history,
              uint64_t floor)
        : name(name), history(history, floor) {}
    const std::string name;
    CacheNamespaceOptions options;
    std::map<std::string, Entry> entries;
    ExpiryIndex expiry;
    uint64_t bytes = 0;
    std::unique_ptr<NamespaceLog> log;  // with persist
    uint64_t snapshot_bytes = 0;        // live bytes at the last compaction
    WatchHistory history;
    CacheCounters counters;
  };
  using Entries = std::map<std::string, Entry>;

  absl::StatusOr<Namespace*> FindLocked(const std::string& ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FindLocked, and checks `key`.
  absl::StatusOr<Namespace*> FindKeyLocked(const std::string& ns,
                                           const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Namespace& AddNamespaceLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The live entry of `key` (an expired one is erased: invisible at once).
  const Entry* LiveLocked(Namespace& ns, const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts what the completions deliver, then runs them: call without mu_.
  void Run(LeaseTable::Completions& done) ABSL_LOCKS_EXCLUDED(mu_);
  // The answer for a live entry.
  static CacheGetResult Hit(const Entry& entry);
  // Removes `it` (a change of kind `kind`, already logged if it must be),
  // telling the watchers.
  void EraseLocked(Namespace& ns, Entries::iterator it, CacheEvent::Kind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts least recently used non-persistent keys (never `keep`) until
  // `incoming` more bytes fit; false if they cannot.
  bool MakeRoomLocked(uint64_t incoming, const Entry* keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AccountLocked(Namespace& ns, int64_t delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the expiry of `it`, keeping the namespace's expiry index.
  void SetExpiryLocked(Namespace& ns, Entries::iterator it,
                       std::optional<absl::Time> when)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs `record` before it is applied; `sync` is set to the log to sync
  // after the lock is released (fsync always).
  absl::Status LogLocked(Namespace& ns, const CacheRecord& record,
                         NamespaceLog** sync)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Parked call `waiter_id` reached its deadline.
  void ExpireWaiter(uint64_t waiter_id, absl::Duration wait)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Persistence (cache_store_persistence.cc).
  // The data directory, opened (and checked) on first use.
  absl::StatusOr<const DataDirectory*> DirectoryLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the log of a new persistent namespace.
  absl::Status OpenLogLocked(Namespace& ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompactLocked(Namespace& ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies one recovered namespace.
  void RecoverLocked(RecoveredNamespace& recovered, absl::Time now,
                     std::vector<std::string>* problems)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::Status Unpersistable(const Namespace& ns);

  const Limits limits_;
  Clock* const clock_;
  const std::string data_dir_;
  absl::Mutex mu_;
  // Set once, never reset: logs keep pointers to it.
  std::unique_ptr<DataDirectory> dir_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Namespace> namespaces_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  MemoryBudget budget_ ABSL_GUARDED_BY(mu_);
  LeaseTable leases_ ABSL_GUARDED_BY(mu_);
  // Last member: destroyed (its thread stopped) first.
  TimerQueue timers_;
};

// A failed write to a namespace's files: "<what>: <the log's message>" with
// the log's code (RESOURCE_EXHAUSTED for a full disk), except UNAVAILABLE,
// which a client reads as "no server answered": INTERNAL instead. Carries
// PERSISTENCE_FAILED.
absl::Status PersistError(const absl::Status& status, absl::string_view what);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
