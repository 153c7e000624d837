// CacheService: the Cache gRPC service over a CacheStore. It translates
// protos and statuses; the store holds the logic.
//
// Thread-safe: gRPC calls it from many threads.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/internal/cache_store.h"
#include "cluster2/v1/cache.grpc.pb.h"

namespace cluster2 {

// The streams (Hold, Watch, Pipeline) and Batch run on gRPC's callback API:
// no thread per open stream, and the end of a Hold is seen at once. The
// unary methods are sync (a parked Get holds its thread while it waits).
class CacheService final
    : public v1::Cache::WithCallbackMethod_Batch<
          v1::Cache::WithCallbackMethod_Pipeline<
              v1::Cache::WithCallbackMethod_Hold<
                  v1::Cache::WithCallbackMethod_Watch<v1::Cache::Service>>>> {
 public:
  // Borrows `store`.
  explicit CacheService(CacheStore* store) : store_(store) {}

  grpc::Status Use(grpc::ServerContext*, const v1::UseRequest*,
                   v1::UseResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest*,
                   v1::GetResponse*) override;
  grpc::Status Set(grpc::ServerContext*, const v1::SetRequest*,
                   v1::SetResponse*) override;
  grpc::Status ReleaseLease(grpc::ServerContext*,
                            const v1::ReleaseLeaseRequest*,
                            v1::ReleaseLeaseResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*,
                      v1::DeleteResponse*) override;
  grpc::Status Keys(grpc::ServerContext*, const v1::KeysRequest*,
                    v1::KeysResponse*) override;
  grpc::Status Stats(grpc::ServerContext*, const v1::StatsRequest*,
                     v1::StatsResponse*) override;
  grpc::ServerUnaryReactor* Batch(grpc::CallbackServerContext* context,
                                  const v1::BatchRequest* request,
                                  v1::BatchResponse* response) override;
  grpc::ServerBidiReactor<v1::BatchRequest, v1::BatchResponse>* Pipeline(
      grpc::CallbackServerContext* context) override;

  // Runs the operations of `request` in order.
  void RunBatch(const v1::BatchRequest& request, v1::BatchResponse* response);
  grpc::ServerWriteReactor<v1::HoldEvent>* Hold(
      grpc::CallbackServerContext* context,
      const v1::HoldRequest* request) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(
      grpc::CallbackServerContext* context,
      const v1::WatchRequest* request) override;

  // Changes queued for one watcher before it counts as a slow consumer.
  static constexpr size_t kMaxQueuedEvents = 10000;

 private:
  struct Counters {
    uint64_t hits = 0, misses = 0, loads = 0, errors = 0;
  };
  absl::Status DoGet(grpc::ServerContext* context,
                     const v1::GetRequest& request, v1::GetResponse* response);
  absl::Status DoSet(const v1::SetRequest& request, v1::SetResponse* response);
  absl::Status DoDelete(const v1::DeleteRequest& request,
                        v1::DeleteResponse* response);
  void Count(const std::string& ns, uint64_t Counters::*counter)
      ABSL_LOCKS_EXCLUDED(mu_);

  CacheStore* const store_;
  // Taken before the store's lock (lease grants and Hold ends), never after.
  absl::Mutex mu_;
  std::map<std::string, Counters> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> holds_
      ABSL_GUARDED_BY(mu_);  // live Hold client ids
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
