// The values the cache's domain classes exchange: namespace options, the
// results of reads and writes, changes for watchers, namespace sizes and
// counters. Plain data, no behaviour beyond the two helpers at the end.
//
// Thread-compatible: plain structs, no shared state.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_TYPES_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cache_server/internal/cache_log.h"

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

// The answer to a read or a get-or-load.
struct CacheGetResult {
  bool found = false;
  std::string value;
  uint64_t revision = 0;
  std::optional<absl::Time> expires_at;
  std::string lease_token;  // set when the caller got the lease
  std::string load_error;   // set when a parked caller is told the load failed
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

// One change of a namespace, as watchers see it.
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

// What get-or-load and plain reads did, per namespace, since the start.
struct CacheCounters {
  uint64_t hits = 0;    // reads answered with a value
  uint64_t misses = 0;  // plain reads that found nothing
  uint64_t loads = 0;   // leases granted (first callers and hand-offs)
  uint64_t errors = 0;  // loads that failed, and waiters told so
};

struct CacheNamespaceInfo {
  std::string name;
  CacheNamespaceOptions options;
  uint64_t keys = 0;
  uint64_t bytes = 0;
  uint64_t waiting = 0;  // get-or-load calls parked on a lease
  CacheCounters counters;
};

// An expiry as microseconds since the Unix epoch (as in the log and the
// protos); 0 = never.
int64_t ExpiryUnixMicros(const std::optional<absl::Time>& expires_at);

// INVALID_ARGUMENT unless `name` is 1..128 characters of [A-Za-z0-9._-].
absl::Status ValidateNamespaceName(const std::string& name);

// The errors both stores return for an unknown namespace (NOT_FOUND,
// NAMESPACE_NOT_FOUND) and a stale lease token (FAILED_PRECONDITION,
// LEASE_NOT_HELD).
absl::Status NamespaceNotFound(const std::string& ns);
absl::Status LeaseNotHeld();

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_TYPES_H_
