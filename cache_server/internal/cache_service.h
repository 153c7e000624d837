// CacheService: the Cache gRPC service over a CacheStore. It only
// translates: protos to and from the store's types, absl::Status to
// grpc::Status (common/grpc_status.h), and a status's CacheError to the
// call's trailing metadata or a batch result's `reason`
// (cache_server/cache_errors.h). Counters, Holds, leases and the waits of
// parked calls are the store's.
//
// Every method runs on gRPC's callback API: no thread per call or stream.
// A parked get-or-load holds no thread: the store calls its waiter when it
// is answered (or its wait passes), and its cancellation is seen at once
// (OnCancel), not by polling.
//
// Thread-safe: gRPC calls it from many threads; it keeps no state of its
// own beyond the borrowed store.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_

#include "cache_server/internal/cache_store.h"
#include "cluster2/v1/cache.grpc.pb.h"

namespace cluster2 {

class CacheService final : public v1::Cache::CallbackService {
 public:
  // Borrows `store`.
  explicit CacheService(CacheStore* store) : store_(store) {}

  grpc::ServerUnaryReactor* Use(grpc::CallbackServerContext* context,
                                const v1::UseRequest* request,
                                v1::UseResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetRequest* request,
                                v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* context,
                                const v1::SetRequest* request,
                                v1::SetResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseLease(
      grpc::CallbackServerContext* context,
      const v1::ReleaseLeaseRequest* request,
      v1::ReleaseLeaseResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Keys(grpc::CallbackServerContext* context,
                                 const v1::KeysRequest* request,
                                 v1::KeysResponse* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;
  grpc::ServerUnaryReactor* Batch(grpc::CallbackServerContext* context,
                                  const v1::BatchRequest* request,
                                  v1::BatchResponse* response) override;
  grpc::ServerBidiReactor<v1::BatchRequest, v1::BatchResponse>* Pipeline(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<v1::HoldEvent>* Hold(
      grpc::CallbackServerContext* context,
      const v1::HoldRequest* request) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(
      grpc::CallbackServerContext* context,
      const v1::WatchRequest* request) override;

  // Runs the operations of `request` in order (no get-or-load).
  void RunBatch(const v1::BatchRequest& request, v1::BatchResponse* response);

 private:
  CacheStore* const store_;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
