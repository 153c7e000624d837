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
//
// Thread-safe. Waiter callbacks run after the store's lock is released, on
// the thread of the call that completed them.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace cluster2 {

struct CacheNamespaceOptions {
  bool persist = false;
  absl::Duration expire = absl::ZeroDuration();  // 0 = keys never expire
  bool operator==(const CacheNamespaceOptions& other) const {
    return persist == other.persist && expire == other.expire;
  }
};

struct CacheGetResult {
  bool found = false;
  std::string value;
  uint64_t revision = 0;
  std::string lease_token;  // set when the caller got the lease
  std::string load_error;   // set when a parked caller is told the load failed
};

struct CacheSetResult {
  bool written = false;
  std::string current;  // the value kept, when leave_if_not_null found one
  uint64_t revision = 0;
};

class CacheStore {
 public:
  struct Limits {
    size_t max_key = 1024;
    size_t max_value = 4 << 20;
  };
  using Waiter = std::function<void(const CacheGetResult& result)>;

  CacheStore(Limits limits, Clock* clock) : limits_(limits), clock_(clock) {}

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
  // A parked call gave up (its deadline passed or it was cancelled).
  void CancelWaiter(uint64_t waiter_id) ABSL_LOCKS_EXCLUDED(mu_);

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
  // The process `client_id` is gone: each of its leases passes to the next
  // parked caller at once.
  void ReleaseClient(const std::string& client_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes `key`; returns its old value if it had one.
  absl::StatusOr<std::optional<std::string>> Delete(const std::string& ns,
                                                    const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Live keys with `prefix`, sorted, at most `limit`, after `after`.
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& ns,
                                                const std::string& prefix,
                                                size_t limit,
                                                const std::string& after)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Reclaims expired keys and passes on leases whose TTL ran out. Returns
  // the number of keys reclaimed.
  size_t Sweep() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string value;
    uint64_t revision = 0;
    std::optional<absl::Time> expires_at;
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
  struct Namespace {
    CacheNamespaceOptions options;
    std::map<std::string, Entry> entries;
    std::map<std::string, Lease> leases;
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

  const Limits limits_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::string, Namespace> namespaces_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// INVALID_ARGUMENT unless `name` is 1..128 characters of [A-Za-z0-9._-].
absl::Status ValidateNamespaceName(const std::string& name);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_STORE_H_
