// CacheBackend: what the Cache service asks of the cache's domain. Two
// implementations: CacheStore (local: this server's memory and files, the
// default and the fastest) and RedisStore (a Redis server shared by the
// cache servers of several hosts: redis_store.h). The contracts are
// CacheStore's (cache_store.h), except where RedisStore says otherwise.
//
// Thread-safe in both.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_BACKEND_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_server/internal/cache_types.h"

namespace cluster2 {

class CacheBackend {
 public:
  using Waiter = std::function<void(absl::StatusOr<CacheGetResult> result)>;

  virtual ~CacheBackend() = default;

  // Before serving: what a previous run left (files, a Redis server's
  // contents); problems found are appended to `problems`.
  virtual absl::Status Recover(std::vector<std::string>* problems) = 0;
  virtual absl::StatusOr<CacheNamespaceOptions> Use(
      const std::string& name, const CacheNamespaceOptions& options,
      bool* conflict) = 0;
  virtual absl::StatusOr<CacheGetResult> Get(const std::string& ns,
                                             const std::string& key) = 0;
  virtual absl::Status OpenHold(const std::string& client_id) = 0;
  virtual void EndHold(const std::string& client_id) = 0;
  virtual absl::StatusOr<std::optional<CacheGetResult>> GetOrLease(
      const std::string& ns, const std::string& key,
      const std::string& client_id, absl::Duration lease_ttl, Waiter waiter,
      uint64_t* waiter_id, absl::Duration wait = absl::InfiniteDuration()) = 0;
  virtual bool CancelWaiter(uint64_t waiter_id) = 0;
  virtual absl::StatusOr<CacheSetResult> Set(
      const std::string& ns, const std::string& key, std::string value,
      absl::Duration ttl, bool leave_if_not_null,
      const std::string& lease_token) = 0;
  virtual absl::Status ReleaseLease(const std::string& ns,
                                    const std::string& key,
                                    const std::string& lease_token,
                                    const std::string& error, bool retry) = 0;
  virtual absl::StatusOr<CacheDeleteResult> Delete(const std::string& ns,
                                                   const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<std::string>> Keys(
      const std::string& ns, const std::string& prefix, size_t limit,
      const std::string& after) = 0;
  virtual absl::StatusOr<bool> Watch(const std::string& ns,
                                     const std::string& key,
                                     uint64_t from_revision,
                                     CacheWatcher* watcher) = 0;
  virtual void Unwatch(CacheWatcher* watcher) = 0;
  virtual std::vector<CacheNamespaceInfo> Namespaces(
      const std::string& ns = "") = 0;
  // Once a second, on the maintenance thread.
  virtual void Maintain() = 0;
  // At shutdown.
  virtual void SyncAll() = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_BACKEND_H_
