#include "master/internal/services.h"

#include <unistd.h>

#include <deque>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/proto_time.h"

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

// The master's end of one session: messages queued by the supervisor are
// written by a dedicated thread, so the supervisor never blocks on a worker.
class SessionChannel final : public WorkerChannel,
                             public EventSink,
                             public StatusChannel {
 public:
  using Stream = grpc::ServerReaderWriter<v1::MasterMessage, v1::WorkerMessage>;

  SessionChannel(grpc::ServerContext* context, Stream* stream)
      : context_(context), stream_(stream), writer_([this] { WriteLoop(); }) {}

  ~SessionChannel() override {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    writer_.join();
  }

  void SendWelcome(absl::Duration heartbeat_interval) override {
    v1::MasterMessage message;
    ToProto(heartbeat_interval,
            message.mutable_welcome()->mutable_heartbeat_interval());
    Enqueue(std::move(message));
  }

  void Deliver(const v1::Event& event) override {
    v1::MasterMessage message;
    *message.mutable_event() = event;
    Enqueue(std::move(message));
  }

  void SendEmitReply(v1::EmitReply reply) {
    v1::MasterMessage message;
    *message.mutable_emit_reply() = std::move(reply);
    Enqueue(std::move(message));
  }

  void SendQuery(uint64_t id, const std::string& name) override {
    v1::MasterMessage message;
    message.mutable_status_query()->set_id(id);
    message.mutable_status_query()->set_name(name);
    Enqueue(std::move(message));
  }

  void SendUpdate(uint64_t id, const std::string& name,
                  const google::protobuf::Value& value) override {
    v1::MasterMessage message;
    message.mutable_status_update()->set_id(id);
    message.mutable_status_update()->set_name(name);
    *message.mutable_status_update()->mutable_value() = value;
    Enqueue(std::move(message));
  }

  void SendPause() override {
    v1::MasterMessage message;
    message.mutable_pause();
    Enqueue(std::move(message));
  }

  void SendResume() override {
    v1::MasterMessage message;
    message.mutable_resume();
    Enqueue(std::move(message));
  }

  void SendOpenDebugger(absl::string_view protocol, absl::string_view host,
                        uint16_t port) override {
    v1::MasterMessage message;
    message.mutable_open_debugger()->set_protocol(std::string(protocol));
    message.mutable_open_debugger()->set_host(std::string(host));
    message.mutable_open_debugger()->set_port(port);
    Enqueue(std::move(message));
  }

  void SendDrain(absl::Duration grace, absl::string_view reason) override {
    v1::MasterMessage message;
    ToProto(grace, message.mutable_drain()->mutable_grace());
    message.mutable_drain()->set_reason(std::string(reason));
    Enqueue(std::move(message));
  }

 private:
  // A worker that stops reading its session would make the outbox grow
  // without bound: past this, the session is closed (the worker sees it
  // end and drains; its slot is restarted) rather than dropping messages.
  static constexpr size_t kMaxOutbox = 100000;

  void Enqueue(v1::MasterMessage message) {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    if (outbox_.size() >= kMaxOutbox) {
      LogError(absl::StrCat("a worker session has ", kMaxOutbox,
                            " messages it does not read: closing the session"));
      closed_ = true;
      outbox_.clear();
      context_->TryCancel();
      return;
    }
    outbox_.push_back(std::move(message));
  }

  void WriteLoop() {
    while (true) {
      v1::MasterMessage message;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](SessionChannel* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->closed_ || !self->outbox_.empty();
            },
            this));
        if (outbox_.empty()) return;  // closed and flushed
        message = std::move(outbox_.front());
        outbox_.pop_front();
      }
      if (!stream_->Write(message)) {
        absl::MutexLock lock(&mu_);
        outbox_.clear();
        closed_ = true;
        return;
      }
    }
  }

  grpc::ServerContext* const context_;
  Stream* const stream_;
  absl::Mutex mu_;
  std::deque<v1::MasterMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;  // last: starts once the members above exist
};

}  // namespace

void ToProto(const WorkerSnapshot& snapshot, v1::Worker* worker) {
  worker->set_id(snapshot.id);
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
  }
  if (snapshot.heartbeat_at) {
    ToProto(*snapshot.heartbeat_at, worker->mutable_last_heartbeat_at());
  }
}

HeartbeatFigures FromProto(const v1::Heartbeat& heartbeat) {
  HeartbeatFigures figures;
  figures.rss_bytes = heartbeat.rss_bytes();
  figures.cpu_time = FromProto(heartbeat.cpu_time());
  figures.open_fds = heartbeat.open_fds();
  figures.threads = heartbeat.threads();
  figures.uptime = FromProto(heartbeat.uptime());
  figures.requests_total = heartbeat.requests_total();
  figures.requests_in_flight = heartbeat.requests_in_flight();
  figures.latency_p50 = FromProto(heartbeat.latency_p50());
  figures.latency_p99 = FromProto(heartbeat.latency_p99());
  figures.lag = FromProto(heartbeat.lag());
  return figures;
}

grpc::Status WorkerSessionService::Attach(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::MasterMessage, v1::WorkerMessage>* stream) {
  v1::WorkerMessage message;
  std::optional<uint64_t> ticket =
      hello_gate_->Admit([context] { context->TryCancel(); });
  if (!ticket) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "too many sessions are waiting to say hello");
  }
  const bool said_something = stream->Read(&message);
  hello_gate_->Release(*ticket);
  if (!said_something) return grpc::Status::OK;  // gone (or cut) before hello
  if (!message.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a session must be hello");
  }
  const std::string token = message.hello().token();
  auto channel = std::make_unique<SessionChannel>(context, stream);
  SessionHello hello;
  hello.pid = message.hello().pid();
  hello.debug_protocols.assign(message.hello().debug_protocols().begin(),
                               message.hello().debug_protocols().end());
  absl::StatusOr<AttachedWorker> attached =
      supervisor_->Attach(token, channel.get(), std::move(hello));
  if (!attached.ok()) return ToGrpcStatus(attached.status());
  const pid_t pid = attached->pid;
  router_->AddWorker(pid, channel.get());

  grpc::Status result = grpc::Status::OK;
  while (result.ok() && stream->Read(&message)) {
    switch (message.kind_case()) {
      case v1::WorkerMessage::kReady:
        supervisor_->Ready(token);
        break;
      case v1::WorkerMessage::kAck:
        if (message.ack().what() != v1::Ack::WHAT_UNSPECIFIED) {
          supervisor_->Acknowledge(
              token, message.ack().what() == v1::Ack::WHAT_PAUSED);
        }
        break;
      case v1::WorkerMessage::kHeartbeat:
        supervisor_->Heartbeat(token, FromProto(message.heartbeat()));
        break;
      case v1::WorkerMessage::kEvent: {
        uint64_t sequence = message.event().sequence();
        absl::StatusOr<RouteResult> routed =
            router_->Route(std::move(*message.mutable_event()), pid);
        v1::EmitReply reply;
        reply.set_sequence(sequence);
        if (routed.ok()) {
          reply.set_delivered(routed->delivered);
          for (int32_t unknown : routed->unknown_pids)
            reply.add_unknown_pids(unknown);
        } else {
          reply.set_error(std::string(routed.status().message()));
          reply.set_error_code(static_cast<int32_t>(routed.status().code()));
        }
        channel->SendEmitReply(std::move(reply));
        break;
      }
      case v1::WorkerMessage::kStatusRegistration: {
        const v1::StatusRegistration& registration =
            message.status_registration();
        if (registration.registered()) {
          registry_->Register(pid, attached->id, registration.name(),
                              channel.get());
        } else {
          registry_->Unregister(pid, registration.name());
        }
        break;
      }
      case v1::WorkerMessage::kStatusAnswer:
        registry_->Answer(pid, message.status_answer().id(),
                          message.status_answer().value(),
                          message.status_answer().error());
        break;
      case v1::WorkerMessage::kDebuggerOpened:
        debug_->DebuggerOpened(pid, message.debugger_opened().url(),
                               message.debugger_opened().error());
        break;
      case v1::WorkerMessage::kHello:
        result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "hello may only be the first message");
        break;
      case v1::WorkerMessage::KIND_NOT_SET:
        break;  // a newer worker's message this master does not know
    }
  }
  router_->RemoveWorker(pid);
  registry_->RemoveProcess(pid);
  supervisor_->Detach(token);
  return result;
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
      supervisor_->Restart(request->pid(), request->surge());
  if (!pids.ok()) return ToGrpcStatus(pids.status());
  for (pid_t pid : *pids) response->add_pids(pid);
  return grpc::Status::OK;
}

grpc::Status ClusterService::Scale(grpc::ServerContext*,
                                   const v1::ScaleRequest* request,
                                   v1::ScaleResponse* response) {
  absl::StatusOr<unsigned> previous = supervisor_->Scale(request->workers());
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
  WorkerState wanted = pause ? WorkerState::kPaused : WorkerState::kReady;
  if (!supervisor_->AwaitState(pid, wanted, absl::Now() + kConfirmTimeout)) {
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
  absl::Duration grace = request->has_timeout()
                             ? FromProto(request->timeout())
                             : absl::Milliseconds(config_.stop_timeout());
  request_stop_(request->fast(), grace);
  return grpc::Status::OK;
}

grpc::Status ClusterService::GetConfig(grpc::ServerContext*,
                                       const v1::GetConfigRequest*,
                                       v1::GetConfigResponse* response) {
  *response->mutable_config() = config_;
  return grpc::Status::OK;
}

namespace {

constexpr size_t kMaxSubscriberBacklog = 10000;
constexpr absl::Duration kDefaultStatusDeadline = absl::Seconds(1);
constexpr absl::Duration kMaxStatusDeadline = absl::Seconds(30);

// One Subscribe stream's queue: filled by the router, emptied by the stream.
class SubscriberSink final : public EventSink {
 public:
  explicit SubscriberSink(const v1::SubscribeRequest& request)
      : names_(request.events().begin(), request.events().end()) {}

  void Deliver(const v1::Event& event) override {
    if (!names_.empty() && names_.count(event.name()) == 0) return;
    absl::MutexLock lock(&mu_);
    if (queue_.size() >= kMaxSubscriberBacklog) {
      overflow_ = true;
      return;
    }
    queue_.push_back(event);
  }

  // Waits up to `timeout` for events; false once the subscriber overflowed.
  bool Take(absl::Duration timeout, std::deque<v1::Event>* events) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !queue_.empty() || overflow_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    events->swap(queue_);
    return !overflow_;
  }

 private:
  const std::set<std::string> names_;
  absl::Mutex mu_;
  std::deque<v1::Event> queue_ ABSL_GUARDED_BY(mu_);
  bool overflow_ ABSL_GUARDED_BY(mu_) = false;
};

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

grpc::Status EmitterService::Emit(grpc::ServerContext*,
                                  const v1::EmitRequest* request,
                                  v1::EmitResponse* response) {
  absl::StatusOr<RouteResult> routed = router_->Route(request->event(), 0);
  if (!routed.ok()) return ToGrpcStatus(routed.status());
  response->set_delivered(routed->delivered);
  for (int32_t pid : routed->unknown_pids) response->add_unknown_pids(pid);
  return grpc::Status::OK;
}

grpc::Status EmitterService::Subscribe(grpc::ServerContext* context,
                                       const v1::SubscribeRequest* request,
                                       grpc::ServerWriter<v1::Event>* writer) {
  SubscriberSink sink(*request);
  uint64_t id = router_->AddMasterListener(&sink);
  grpc::Status result = grpc::Status::OK;
  std::deque<v1::Event> events;
  while (!context->IsCancelled()) {
    if (!sink.Take(absl::Milliseconds(100), &events)) {
      result =
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "subscriber fell 10000 events behind; subscribe again");
      break;
    }
    bool written = true;
    for (const v1::Event& event : events) {
      if (!(written = writer->Write(event))) break;
    }
    events.clear();
    if (!written) break;
  }
  router_->RemoveMasterListener(id);
  return result;
}

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

std::string Who(grpc::ServerContext* context, const v1::MarkRequest& request) {
  return request.who().empty() ? absl::StrCat("grpc ", context->peer())
                               : absl::StrCat("grpc: ", request.who());
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
