// NamespaceImpl: a CacheNamespace (cache_client/cache.h) of a ClientImpl.
// Get, Set and Delete go through the client's Batcher; get-or-load is a
// unary lease Get on the client's loop, tied to the client's Hold stream;
// with a near-cache, reads are answered from a NearCache kept coherent by a
// WatchStream of the whole namespace. After a server restart lost the
// namespace, an operation Uses it again and retries once.
//
// Thread-safe. Must not outlive its client.
#ifndef CLUSTER2_CACHE_CLIENT_INTERNAL_NAMESPACE_H_
#define CLUSTER2_CACHE_CLIENT_INTERNAL_NAMESPACE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_client/cache.h"
#include "cache_client/internal/batcher.h"
#include "cache_client/internal/client.h"
#include "cache_client/internal/near_cache.h"

namespace cluster2::cache_internal {

class NamespaceImpl final : public CacheNamespace,
                            public std::enable_shared_from_this<NamespaceImpl> {
 public:
  NamespaceImpl(ClientImpl& client, std::string name,
                CacheNamespaceConfig config);
  ~NamespaceImpl() override;
  // Starts the near-cache and its watch; false if the watch is not live
  // within `wait`.
  bool StartNearCache(absl::Duration wait);

  const std::string& name() const override { return name_; }
  absl::StatusOr<std::optional<CacheValue>> Get(
      const std::string& key) override;
  void GetAsync(const std::string& key,
                Callback<std::optional<CacheValue>> done) override;
  absl::StatusOr<CacheValue> GetOrLoad(const std::string& key,
                                       const Loader& loader,
                                       CacheLoadOptions options) override;
  void GetOrLoadAsync(const std::string& key, AsyncLoader loader,
                      Callback<CacheValue> done,
                      CacheLoadOptions options) override;
  absl::StatusOr<CacheSetOutcome> Set(const std::string& key, std::string value,
                                      CacheSetOptions options) override;
  void SetAsync(const std::string& key, std::string value,
                CacheSetOptions options,
                Callback<CacheSetOutcome> done) override;
  absl::StatusOr<std::optional<std::string>> Delete(
      const std::string& key) override;
  void DeleteAsync(const std::string& key,
                   Callback<std::optional<std::string>> done) override;
  absl::StatusOr<std::vector<std::string>> Keys(
      const std::string& prefix) override;
  std::unique_ptr<CacheWatch> Watch(
      const std::string& key,
      std::function<void(const CacheWatchEvent&)> on_event,
      uint64_t from_revision) override;
  uint64_t near_hits() const override { return near_hits_.load(); }

 private:
  using Result = Batcher::Result;
  using Done = std::function<void(absl::Status, const Result*)>;
  // Runs `op` in a batch; done runs on the loop thread.
  void Run(Batcher::Op op, Done done, bool retried = false);
  // Loop thread: one lease Get and what follows it.
  void LoadAsync(const std::string& key, AsyncLoader loader,
                 Callback<CacheValue> done, CacheLoadOptions options,
                 absl::Time deadline, bool retried);
  void SetWithLease(const std::string& key, std::string value,
                    const std::string& token, const CacheLoadOptions& options,
                    Callback<CacheValue> done);
  void ReleaseLease(const std::string& key, const std::string& token,
                    const absl::Status& error, bool retry);
  // Blocks for the callback `start` is given; FAILED_PRECONDITION on the
  // loop thread.
  template <typename T>
  absl::StatusOr<T> Wait(const std::function<void(Callback<T>)>& start);

  ClientImpl& client_;
  const std::string name_;
  const CacheNamespaceConfig config_;
  std::unique_ptr<NearCache> near_;
  std::unique_ptr<CacheWatch> near_watch_;
  std::atomic<uint64_t> near_hits_{0};
};

}  // namespace cluster2::cache_internal

#endif  // CLUSTER2_CACHE_CLIENT_INTERNAL_NAMESPACE_H_
