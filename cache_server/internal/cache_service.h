// CacheService: the Cache gRPC service over a CacheBackend, on one thread.
//
// Every call is a small state machine on gRPC's completion-queue API,
// driven by one IoLoop thread ("cache-io"): a message is read, run
// against the store and answered on that thread, without a hand-off to
// another thread anywhere between the socket and the store (measured in
// docs/BENCHMARKS.md: the callback API's executor hops cost half the
// throughput). The store's lock stays, uncontended: the maintenance
// thread (once a second) and the store's timer thread are its only other
// users.
//
// It only translates: protos to and from the store's types, absl::Status
// to grpc::Status (common/grpc_status.h), and a status's CacheError to the
// call's trailing metadata or a batch result's `reason`
// (cache_server/cache_errors.h). Counters, Holds, leases and the waits of
// parked calls are the store's. A parked get-or-load holds no thread: the
// store calls its waiter when it is answered (or its wait passes), which
// posts the answer to the loop; the client going away is seen at once
// (the call's done notification), not by polling.
//
// A persistent namespace with `fsync: always` syncs on this thread before
// answering, like Redis' `appendfsync always`: every client waits for it.
//
// Thread-compatible: Register, Start and Stop from one thread, in order.
#ifndef CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
#define CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/internal/cache_backend.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/io_loop.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/server_builder.h"

namespace cluster2 {

class CacheService {
 public:
  // Borrows `store`.
  explicit CacheService(CacheBackend* store);
  ~CacheService();
  CacheService(const CacheService&) = delete;
  CacheService& operator=(const CacheService&) = delete;

  // Before builder.BuildAndStart(): adds the service, grpc.health.v1 (the
  // caller turns gRPC's default one off) and their queue.
  void Register(grpc::ServerBuilder& builder);
  // After BuildAndStart: starts the loop thread, which takes the calls.
  void Start();
  // After grpc::Server::Shutdown: waits until every call has ended, then
  // stops the loop thread.
  void Stop();

  // A call object was made / freed (loop thread; Stop waits for the last).
  void CallStarted() ABSL_LOCKS_EXCLUDED(calls_mu_);
  void CallEnded() ABSL_LOCKS_EXCLUDED(calls_mu_);

  // Runs the operations of `request` in order (no get-or-load).
  void RunBatch(const v1::BatchRequest& request, v1::BatchResponse* response);

  // For the calls (cache_service.cc, cache_streams.cc).
  struct Env {
    CacheService* service;
    CacheBackend* store;
    v1::Cache::AsyncService* async;
    grpc::health::v1::Health::AsyncService* health;
    grpc::ServerCompletionQueue* cq;
    IoLoop* loop;
  };

 private:
  // Posts the first calls of every method (cache_service.cc and
  // cache_streams.cc).
  void PostUnaryCalls();
  void PostStreamCalls();
  void PostHealthCalls();  // cache_health.cc

  CacheBackend* const store_;
  v1::Cache::AsyncService async_;
  grpc::health::v1::Health::AsyncService health_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;  // until Start
  grpc::ServerCompletionQueue* raw_cq_ = nullptr;
  std::unique_ptr<IoLoop> loop_;
  Env env_{};
  absl::Mutex calls_mu_;
  int live_calls_ ABSL_GUARDED_BY(calls_mu_) = 0;
};

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_INTERNAL_CACHE_SERVICE_H_
