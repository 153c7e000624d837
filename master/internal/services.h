// The master's control services on gRPC's sync API (Cluster, Ecv, Status).
// Each only translates between protos and the domain types (and
// absl::Status <-> grpc::Status); the logic lives in Supervisor,
// DebugSession, Ecv and StatusRegistry. The event path (WorkerSession,
// Emitter) is served on the master's I/O loop: session_server.h.
//
// Thread-safe: gRPC calls these from its threads concurrently.
#ifndef CLUSTER2_MASTER_INTERNAL_SERVICES_H_
#define CLUSTER2_MASTER_INTERNAL_SERVICES_H_

#include <functional>

#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/ecv.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "master/internal/debug_session.h"
#include "master/internal/ecv.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

// Fills a v1::Worker from a snapshot.
void ToProto(const WorkerSnapshot& snapshot, v1::Worker* worker);

// Ecv: the load-balancer state over gRPC. Borrows `ecv`.
class EcvService final : public v1::Ecv::Service {
 public:
  explicit EcvService(Ecv* ecv) : ecv_(ecv) {}

  grpc::Status GetEcv(grpc::ServerContext* context,
                      const v1::GetEcvRequest* request,
                      v1::EcvState* response) override;
  grpc::Status MarkUp(grpc::ServerContext* context,
                      const v1::MarkRequest* request,
                      v1::EcvState* response) override;
  grpc::Status MarkDown(grpc::ServerContext* context,
                        const v1::MarkRequest* request,
                        v1::EcvState* response) override;

 private:
  Ecv* const ecv_;
};

// Status: named values of the cluster's processes. Borrows `registry`.
class StatusService final : public v1::Status::Service {
 public:
  explicit StatusService(StatusRegistry* registry) : registry_(registry) {}

  grpc::Status ListStatuses(grpc::ServerContext* context,
                            const v1::ListStatusesRequest* request,
                            v1::ListStatusesResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context,
                         const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override;
  grpc::Status SetStatus(grpc::ServerContext* context,
                         const v1::SetStatusRequest* request,
                         v1::GetStatusResponse* response) override;

 private:
  StatusRegistry* const registry_;
};

// Cluster: the control API. Borrows `supervisor` and `debug`; `config` is
// the effective configuration; `request_stop(fast)` begins a cluster stop.
class ClusterService final : public v1::Cluster::Service {
 public:
  // What the master does for the calls that are not the supervisor's.
  struct Hooks {
    // The effective configuration now (GetConfig).
    std::function<v1::ClusterConfig()> config;
    // Shutdown.
    std::function<void(bool fast, absl::Duration grace)> request_stop;
    // Reload; null: UNIMPLEMENTED.
    std::function<absl::StatusOr<v1::ReloadResponse>(bool restart_all)> reload;
  };
  ClusterService(Supervisor* supervisor, DebugSession* debug, Hooks hooks)
      : supervisor_(supervisor), debug_(debug), hooks_(std::move(hooks)) {}

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
  grpc::Status Reload(grpc::ServerContext* context,
                      const v1::ReloadRequest* request,
                      v1::ReloadResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context,
                        const v1::ShutdownRequest* request,
                        v1::ShutdownResponse* response) override;
  grpc::Status GetConfig(grpc::ServerContext* context,
                         const v1::GetConfigRequest* request,
                         v1::GetConfigResponse* response) override;
  // Pause and Resume return once the worker confirmed (DEADLINE_EXCEEDED
  // after 5 s if it does not).
  grpc::Status Pause(grpc::ServerContext* context,
                     const v1::PauseRequest* request,
                     v1::Worker* response) override;
  grpc::Status Resume(grpc::ServerContext* context,
                      const v1::ResumeRequest* request,
                      v1::Worker* response) override;
  // Debug and Stacks block until the debugger listens / gdb is done.
  grpc::Status Debug(grpc::ServerContext* context,
                     const v1::DebugRequest* request,
                     v1::DebugResponse* response) override;
  grpc::Status Stacks(grpc::ServerContext* context,
                      const v1::StacksRequest* request,
                      v1::StacksResponse* response) override;

 private:
  grpc::Status ChangePause(pid_t pid, bool pause, v1::Worker* response);

  Supervisor* const supervisor_;
  DebugSession* const debug_;
  const Hooks hooks_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SERVICES_H_
