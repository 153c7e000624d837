#include "master/internal/services.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "grpc/grpc_security_constants.h"

namespace cluster2 {
namespace {

v1::WorkerState StateToProto(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting:
      return v1::WORKER_STATE_STARTING;
    case WorkerState::kReady:
      return v1::WORKER_STATE_READY;
    case WorkerState::kPaused:
      return v1::WORKER_STATE_PAUSED;
    case WorkerState::kDraining:
      return v1::WORKER_STATE_DRAINING;
    case WorkerState::kExited:
      return v1::WORKER_STATE_EXITED;
    case WorkerState::kFailed:
      return v1::WORKER_STATE_FAILED;
    case WorkerState::kDebugging:
      return v1::WORKER_STATE_DEBUGGING;
  }
  return v1::WORKER_STATE_UNSPECIFIED;
}

}  // namespace

void ToProto(const WorkerSnapshot& snapshot, v1::Worker* worker) {
  worker->set_id(snapshot.id);
  worker->set_group(snapshot.group);
  worker->set_pid(snapshot.pid);
  worker->set_state(StateToProto(snapshot.state));
  if (snapshot.pid != 0)
    ToProto(snapshot.started_at, worker->mutable_started_at());
  if (snapshot.ready_at)
    ToProto(*snapshot.ready_at, worker->mutable_ready_at());
  worker->set_restarts(snapshot.restarts);
  worker->set_attached(snapshot.attached);
  worker->set_last_exit(snapshot.last_exit);
  worker->set_reason(snapshot.reason);
  for (const std::string& protocol : snapshot.debug_protocols)
    worker->add_debug_protocols(protocol);
  if (snapshot.heartbeat) {
    const HeartbeatFigures& figures = *snapshot.heartbeat;
    v1::Heartbeat* heartbeat = worker->mutable_last_heartbeat();
    heartbeat->set_rss_bytes(figures.rss_bytes);
    ToProto(figures.cpu_time, heartbeat->mutable_cpu_time());
    heartbeat->set_open_fds(figures.open_fds);
    heartbeat->set_threads(figures.threads);
    ToProto(figures.uptime, heartbeat->mutable_uptime());
    heartbeat->set_requests_total(figures.requests_total);
    heartbeat->set_requests_in_flight(figures.requests_in_flight);
    ToProto(figures.latency_p50, heartbeat->mutable_latency_p50());
    ToProto(figures.latency_p99, heartbeat->mutable_latency_p99());
    ToProto(figures.lag, heartbeat->mutable_lag());
    if (figures.sent_at)
      ToProto(*figures.sent_at, heartbeat->mutable_sent_at());
    if (!figures.latency_counts.empty()) {
      v1::LatencyHistogram* latency = heartbeat->mutable_latency();
      for (double bound : figures.latency_bounds) latency->add_bounds(bound);
      for (uint64_t count : figures.latency_counts) latency->add_counts(count);
      latency->set_sum_seconds(figures.latency_sum_seconds);
    }
  }
  if (snapshot.heartbeat_at) {
    ToProto(*snapshot.heartbeat_at, worker->mutable_last_heartbeat_at());
  }
}

grpc::Status ClusterService::ListWorkers(grpc::ServerContext*,
                                         const v1::ListWorkersRequest*,
                                         v1::ListWorkersResponse* response) {
  for (const WorkerSnapshot& snapshot : supervisor_->Workers()) {
    ToProto(snapshot, response->add_workers());
  }
  response->set_desired(supervisor_->desired_workers());
  response->set_master_pid(getpid());
  return grpc::Status::OK;
}

grpc::Status ClusterService::GetWorker(grpc::ServerContext*,
                                       const v1::GetWorkerRequest* request,
                                       v1::Worker* response) {
  absl::StatusOr<WorkerSnapshot> snapshot =
      supervisor_->WorkerByPid(request->pid());
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  ToProto(*snapshot, response);
  return grpc::Status::OK;
}

grpc::Status ClusterService::Restart(grpc::ServerContext*,
                                     const v1::RestartRequest* request,
                                     v1::RestartResponse* response) {
  absl::StatusOr<std::vector<pid_t>> pids =
      supervisor_->Restart(request->pid(), request->surge(), request->group());
  if (!pids.ok()) return ToGrpcStatus(pids.status());
  for (pid_t pid : *pids) response->add_pids(pid);
  return grpc::Status::OK;
}

grpc::Status ClusterService::Scale(grpc::ServerContext*,
                                   const v1::ScaleRequest* request,
                                   v1::ScaleResponse* response) {
  absl::StatusOr<unsigned> previous =
      supervisor_->Scale(request->workers(), request->group());
  if (!previous.ok()) return ToGrpcStatus(previous.status());
  response->set_previous(*previous);
  response->set_workers(request->workers());
  return grpc::Status::OK;
}

grpc::Status ClusterService::Recycle(grpc::ServerContext*,
                                     const v1::RecycleRequest* request,
                                     v1::RecycleResponse*) {
  return ToGrpcStatus(supervisor_->Recycle(request->pid(), request->reason()));
}

grpc::Status ClusterService::Reload(grpc::ServerContext*,
                                    const v1::ReloadRequest* request,
                                    v1::ReloadResponse* response) {
  if (!hooks_.reload) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "this master has no configuration file to reload "
                        "(an embedded cluster)");
  }
  absl::StatusOr<v1::ReloadResponse> reloaded =
      hooks_.reload(request->restart_all());
  if (!reloaded.ok()) return ToGrpcStatus(reloaded.status());
  *response = *std::move(reloaded);
  return grpc::Status::OK;
}

namespace {

// Pause and Resume answer once the worker confirmed, within this time.
constexpr absl::Duration kConfirmTimeout = absl::Seconds(5);

}  // namespace

grpc::Status ClusterService::Pause(grpc::ServerContext*,
                                   const v1::PauseRequest* request,
                                   v1::Worker* response) {
  return ChangePause(request->pid(), /*pause=*/true, response);
}

grpc::Status ClusterService::Resume(grpc::ServerContext*,
                                    const v1::ResumeRequest* request,
                                    v1::Worker* response) {
  return ChangePause(request->pid(), /*pause=*/false, response);
}

grpc::Status ClusterService::ChangePause(pid_t pid, bool pause,
                                         v1::Worker* response) {
  absl::Status status =
      pause ? supervisor_->Pause(pid) : supervisor_->Resume(pid);
  if (!status.ok()) return ToGrpcStatus(status);
  const absl::Time deadline = absl::Now() + kConfirmTimeout;
  // A pause may also be refused (Ack WHAT_REFUSED), which ends the wait.
  const bool confirmed =
      pause ? [&] {
        absl::Status paused = supervisor_->AwaitPause(pid, deadline);
        if (!paused.ok() && !absl::IsDeadlineExceeded(paused)) status = paused;
        return paused.ok();
      }()
            : supervisor_->AwaitState(pid, WorkerState::kReady, deadline);
  if (!status.ok()) return ToGrpcStatus(status);
  if (!confirmed) {
    return grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        absl::StrCat("worker pid ", pid, " did not confirm the ",
                     pause ? "pause" : "resume", " within ",
                     absl::FormatDuration(kConfirmTimeout),
                     " (does it handle Pause/Resume?)"));
  }
  absl::StatusOr<WorkerSnapshot> snapshot = supervisor_->WorkerByPid(pid);
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  ToProto(*snapshot, response);
  return grpc::Status::OK;
}

namespace {

void ToProto(const DebugInfo& info, v1::DebugResponse* response) {
  response->set_address(info.address);
  response->set_instructions(info.Instructions());
  response->set_pid(info.pid);
  response->set_protocol(info.protocol);
  response->set_url(info.url);
  response->set_executable(info.executable);
  response->set_fresh(info.fresh);
  response->set_gdbserver_pid(info.gdbserver_pid);
}

}  // namespace

grpc::Status ClusterService::Debug(grpc::ServerContext*,
                                   const v1::DebugRequest* request,
                                   v1::DebugResponse* response) {
  if (request->stack_dump()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "stack_dump is replaced by Cluster.Stacks");
  }
  if ((request->end() ? 1 : 0) + (request->fresh() ? 1 : 0) +
          (request->pid() != 0 ? 1 : 0) >
      1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "give one of pid, fresh and end");
  }
  absl::StatusOr<DebugInfo> info;
  if (request->end()) {
    info = debug_->End();
  } else if (request->fresh()) {
    info = debug_->OpenFresh();
  } else if (request->pid() != 0) {
    info = debug_->Open(request->pid(), request->protocol());
  } else if (std::optional<DebugInfo> current = debug_->Current()) {
    info = *current;
  } else {
    info = absl::NotFoundError("no debug session is open");
  }
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(*info, response);
  return grpc::Status::OK;
}

grpc::Status ClusterService::Stacks(grpc::ServerContext*,
                                    const v1::StacksRequest* request,
                                    v1::StacksResponse* response) {
  absl::StatusOr<StackDump> dump = debug_->Stacks(request->pid());
  if (!dump.ok()) return ToGrpcStatus(dump.status());
  for (const ThreadStack& thread : dump->threads) {
    v1::StacksResponse::Thread* out = response->add_threads();
    out->set_number(thread.number);
    out->set_lwp(thread.lwp);
    out->set_name(thread.name);
    for (const std::string& frame : thread.frames) out->add_frames(frame);
  }
  response->set_text(dump->text);
  ToProto(dump->gdb_time, response->mutable_gdb_time());
  return grpc::Status::OK;
}

grpc::Status ClusterService::Shutdown(grpc::ServerContext*,
                                      const v1::ShutdownRequest* request,
                                      v1::ShutdownResponse*) {
  absl::Duration grace =
      request->has_timeout()
          ? FromProto(request->timeout())
          : absl::Milliseconds(hooks_.config().stop_timeout());
  hooks_.request_stop(request->fast(), grace);
  return grpc::Status::OK;
}

grpc::Status ClusterService::GetConfig(grpc::ServerContext*,
                                       const v1::GetConfigRequest*,
                                       v1::GetConfigResponse* response) {
  *response->mutable_config() = hooks_.config();
  return grpc::Status::OK;
}

namespace {

constexpr absl::Duration kDefaultStatusDeadline = absl::Seconds(1);
constexpr absl::Duration kMaxStatusDeadline = absl::Seconds(30);

absl::Duration StatusDeadline(const google::protobuf::Duration& requested) {
  absl::Duration deadline = FromProto(requested);
  if (deadline <= absl::ZeroDuration()) return kDefaultStatusDeadline;
  return std::min(deadline, kMaxStatusDeadline);
}

void ToProto(const std::string& name,
             const std::vector<StatusEntryValue>& entries,
             v1::GetStatusResponse* response) {
  response->set_name(name);
  for (const StatusEntryValue& entry : entries) {
    v1::StatusEntry* out = response->add_entries();
    out->set_pid(entry.pid);
    if (entry.worker_id) out->set_worker_id(*entry.worker_id);
    *out->mutable_value() = entry.value;
    out->set_error(entry.error);
  }
}

}  // namespace

grpc::Status StatusService::ListStatuses(grpc::ServerContext*,
                                         const v1::ListStatusesRequest*,
                                         v1::ListStatusesResponse* response) {
  for (const std::string& name : registry_->Names()) response->add_names(name);
  return grpc::Status::OK;
}

grpc::Status StatusService::GetStatus(grpc::ServerContext*,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) {
  auto entries =
      registry_->Get(request->name(), StatusDeadline(request->deadline()));
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  ToProto(request->name(), *entries, response);
  return grpc::Status::OK;
}

grpc::Status StatusService::SetStatus(grpc::ServerContext*,
                                      const v1::SetStatusRequest* request,
                                      v1::GetStatusResponse* response) {
  auto entries = registry_->Set(request->name(), request->value(),
                                StatusDeadline(request->deadline()));
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  ToProto(request->name(), *entries, response);
  return grpc::Status::OK;
}

namespace {

void ToProto(const Ecv::State& state, v1::EcvState* out) {
  switch (state.health) {
    case Ecv::Health::kUp:
      out->set_health(v1::EcvState::HEALTH_UP);
      break;
    case Ecv::Health::kMarkedDown:
      out->set_health(v1::EcvState::HEALTH_MARKED_DOWN);
      break;
    case Ecv::Health::kDown:
      out->set_health(v1::EcvState::HEALTH_DOWN);
      break;
  }
  out->set_mode(state.mode);
  out->set_marked_down(state.marked_down);
  out->set_ready_workers(state.ready_workers);
  cluster2::ToProto(state.changed_at, out->mutable_changed_at());
  out->set_changed_by(state.changed_by);
}

// Who asked: the request's `who`, else the peer, with the common name of
// its client certificate on the TCP control port.
std::string Who(grpc::ServerContext* context, const v1::MarkRequest& request) {
  if (!request.who().empty()) return absl::StrCat("grpc: ", request.who());
  std::string who = absl::StrCat("grpc ", context->peer());
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  if (auth != nullptr) {
    for (const grpc::string_ref& name :
         auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      absl::StrAppend(&who, " (", std::string(name.data(), name.size()), ")");
    }
  }
  return who;
}

}  // namespace

grpc::Status EcvService::GetEcv(grpc::ServerContext*, const v1::GetEcvRequest*,
                                v1::EcvState* response) {
  ToProto(ecv_->Get(), response);
  return grpc::Status::OK;
}

grpc::Status EcvService::MarkUp(grpc::ServerContext* context,
                                const v1::MarkRequest* request,
                                v1::EcvState* response) {
  absl::StatusOr<Ecv::State> state = ecv_->MarkUp(Who(context, *request));
  if (!state.ok()) return ToGrpcStatus(state.status());
  ToProto(*state, response);
  return grpc::Status::OK;
}

grpc::Status EcvService::MarkDown(grpc::ServerContext* context,
                                  const v1::MarkRequest* request,
                                  v1::EcvState* response) {
  absl::StatusOr<Ecv::State> state = ecv_->MarkDown(Who(context, *request));
  if (!state.ok()) return ToGrpcStatus(state.status());
  ToProto(*state, response);
  return grpc::Status::OK;
}

}  // namespace cluster2
