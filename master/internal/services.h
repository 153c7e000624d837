// The master's gRPC services. Each only translates between protos and the
// Supervisor's domain types (and absl::Status <-> grpc::Status); the logic
// lives in Supervisor.
//
// Thread-safe: gRPC calls these from its threads concurrently.
#ifndef CLUSTER2_MASTER_INTERNAL_SERVICES_H_
#define CLUSTER2_MASTER_INTERNAL_SERVICES_H_

#include <functional>

#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/worker_session.grpc.pb.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

// Fills a v1::Worker from a snapshot.
void ToProto(const WorkerSnapshot& snapshot, v1::Worker* worker);
HeartbeatFigures FromProto(const v1::Heartbeat& heartbeat);

// WorkerSession.Attach: one stream per worker. Borrows `supervisor`.
class WorkerSessionService final : public v1::WorkerSession::Service {
 public:
  explicit WorkerSessionService(Supervisor* supervisor)
      : supervisor_(supervisor) {}

  grpc::Status Attach(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::MasterMessage, v1::WorkerMessage>* stream)
      override;

 private:
  Supervisor* const supervisor_;
};

// Cluster: the control API. Borrows `supervisor`; `config` is the effective
// configuration; `request_stop(fast)` begins a cluster stop.
class ClusterService final : public v1::Cluster::Service {
 public:
  ClusterService(
      Supervisor* supervisor, v1::ClusterConfig config,
      std::function<void(bool fast, absl::Duration grace)> request_stop)
      : supervisor_(supervisor),
        config_(std::move(config)),
        request_stop_(std::move(request_stop)) {}

  grpc::Status ListWorkers(grpc::ServerContext* context,
                           const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  grpc::Status GetWorker(grpc::ServerContext* context,
                         const v1::GetWorkerRequest* request,
                         v1::Worker* response) override;
  grpc::Status Restart(grpc::ServerContext* context,
                       const v1::RestartRequest* request,
                       v1::RestartResponse* response) override;
  grpc::Status Scale(grpc::ServerContext* context,
                     const v1::ScaleRequest* request,
                     v1::ScaleResponse* response) override;
  grpc::Status Recycle(grpc::ServerContext* context,
                       const v1::RecycleRequest* request,
                       v1::RecycleResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context,
                        const v1::ShutdownRequest* request,
                        v1::ShutdownResponse* response) override;
  grpc::Status GetConfig(grpc::ServerContext* context,
                         const v1::GetConfigRequest* request,
                         v1::GetConfigResponse* response) override;
  // Pause and Resume return once the worker confirmed (DEADLINE_EXCEEDED
  // after 5 s if it does not). Debug answers UNIMPLEMENTED (the generated
  // default) until the debug work lands.
  grpc::Status Pause(grpc::ServerContext* context,
                     const v1::PauseRequest* request,
                     v1::Worker* response) override;
  grpc::Status Resume(grpc::ServerContext* context,
                      const v1::ResumeRequest* request,
                      v1::Worker* response) override;

 private:
  grpc::Status ChangePause(pid_t pid, bool pause, v1::Worker* response);

  Supervisor* const supervisor_;
  const v1::ClusterConfig config_;
  const std::function<void(bool, absl::Duration)> request_stop_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SERVICES_H_
