// WorkerSession.Attach on the master's loop: one AttachCall per worker.
#include "master/internal/session_calls.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

HeartbeatFigures FromProto(const v1::Heartbeat& heartbeat) {
  HeartbeatFigures figures;
  figures.rss_bytes = heartbeat.rss_bytes();
  figures.cpu_time = cluster2::FromProto(heartbeat.cpu_time());
  figures.open_fds = heartbeat.open_fds();
  figures.threads = heartbeat.threads();
  figures.uptime = cluster2::FromProto(heartbeat.uptime());
  figures.requests_total = heartbeat.requests_total();
  figures.requests_in_flight = heartbeat.requests_in_flight();
  figures.latency_p50 = cluster2::FromProto(heartbeat.latency_p50());
  figures.latency_p99 = cluster2::FromProto(heartbeat.latency_p99());
  figures.lag = cluster2::FromProto(heartbeat.lag());
  if (heartbeat.has_sent_at())
    figures.sent_at = cluster2::FromProto(heartbeat.sent_at());
  if (heartbeat.has_latency()) {
    const v1::LatencyHistogram& latency = heartbeat.latency();
    figures.latency_bounds.assign(latency.bounds().begin(),
                                  latency.bounds().end());
    figures.latency_counts.assign(latency.counts().begin(),
                                  latency.counts().end());
    figures.latency_sum_seconds = latency.sum_seconds();
  }
  return figures;
}

// The master's end of one worker's session. States, all on the loop:
//   listening -> (accepted) waiting for hello [timer] -> attached -> ending
//   -> finished (freed once no operation or timer is outstanding).
// One Read is outstanding while the session runs, at most one Write (the
// rest queue in `queue_`), and the hello timer until the hello came.
// It keeps itself alive (`self_`) until then; work posted for it by other
// threads holds a reference too.
class AttachCall final : public WorkerChannel,
                         public EventSink,
                         public StatusChannel,
                         public std::enable_shared_from_this<AttachCall> {
 public:
  static void Listen(SessionServer::Shared* shared) {
    std::shared_ptr<AttachCall> call(new AttachCall(shared));
    call->self_ = call;
    shared->sessions.RequestAttach(&call->context_, &call->stream_, shared->cq,
                                   shared->cq, call->accept_.Arm());
  }

  // WorkerChannel, EventSink, StatusChannel: any thread, while attached.
  void SendWelcome(absl::Duration heartbeat_interval) override {
    v1::MasterMessage message;
    v1::Welcome* welcome = message.mutable_welcome();
    ToProto(heartbeat_interval, welcome->mutable_heartbeat_interval());
    welcome->set_cluster_name(s_->options.cluster_name);
    welcome->set_cache_address(s_->options.cache_address);
    Send(std::move(message));
  }
  void Deliver(const v1::Event& event) override {
    v1::MasterMessage message;
    *message.mutable_event() = event;
    Send(std::move(message));
  }
  void SendQuery(uint64_t id, const std::string& name) override {
    v1::MasterMessage message;
    message.mutable_status_query()->set_id(id);
    message.mutable_status_query()->set_name(name);
    Send(std::move(message));
  }
  void SendUpdate(uint64_t id, const std::string& name,
                  const google::protobuf::Value& value) override {
    v1::MasterMessage message;
    message.mutable_status_update()->set_id(id);
    message.mutable_status_update()->set_name(name);
    *message.mutable_status_update()->mutable_value() = value;
    Send(std::move(message));
  }
  void SendPause() override {
    v1::MasterMessage message;
    message.mutable_pause();
    Send(std::move(message));
  }
  void SendResume() override {
    v1::MasterMessage message;
    message.mutable_resume();
    Send(std::move(message));
  }
  void SendOpenDebugger(absl::string_view protocol, absl::string_view host,
                        uint16_t port) override {
    v1::MasterMessage message;
    message.mutable_open_debugger()->set_protocol(std::string(protocol));
    message.mutable_open_debugger()->set_host(std::string(host));
    message.mutable_open_debugger()->set_port(port);
    Send(std::move(message));
  }
  void SendDrain(absl::Duration grace, absl::string_view reason) override {
    v1::MasterMessage message;
    ToProto(grace, message.mutable_drain()->mutable_grace());
    message.mutable_drain()->set_reason(std::string(reason));
    Send(std::move(message));
  }

 private:
  explicit AttachCall(SessionServer::Shared* shared)
      : s_(shared),
        stream_(&context_),
        accept_(*shared->loop, [this](bool ok) { OnAccept(ok); }),
        read_(*shared->loop, [this](bool ok) { OnRead(ok); }),
        write_(*shared->loop, [this](bool ok) { OnWrite(ok); }),
        finish_(*shared->loop, [this](bool) { OnFinish(); }),
        hello_timer_(*shared->loop,
                     [this](bool fired) { OnHelloTimer(fired); }) {}

  void OnAccept(bool ok) {
    if (!ok) {  // the server is shutting down
      Release();
      return;
    }
    Listen(s_);
    if (s_->waiting_for_hello >= s_->options.max_sessions_before_hello) {
      End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "too many sessions are waiting to say hello"));
      return;
    }
    ++s_->waiting_for_hello;
    awaiting_hello_ = true;
    hello_timer_.Set(absl::Now() + s_->options.hello_timeout);
    stream_.Read(&in_, read_.Arm());
  }

  void OnHelloTimer(bool fired) {
    if (fired && awaiting_hello_) context_.TryCancel();  // the read fails
    MaybeRelease();
  }

  void OnRead(bool ok) {
    if (awaiting_hello_) {
      awaiting_hello_ = false;
      --s_->waiting_for_hello;
      hello_timer_.Cancel();
      if (!ok) {
        End(grpc::Status::OK);  // gone (or cut) before hello
      } else if (!in_.has_hello()) {
        End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "the first message of a session must be hello"));
      } else {
        Attach();
      }
      return;
    }
    if (!ok) {
      End(grpc::Status::OK);  // the worker is gone
      return;
    }
    grpc::Status status = Handle();
    if (!status.ok()) {
      End(std::move(status));
      return;
    }
    stream_.Read(&in_, read_.Arm());
  }

  void Attach() {
    token_ = in_.hello().token();
    SessionHello hello;
    hello.pid = in_.hello().pid();
    hello.debug_protocols.assign(in_.hello().debug_protocols().begin(),
                                 in_.hello().debug_protocols().end());
    // Sends the welcome through this channel, inline.
    absl::StatusOr<AttachedWorker> attached =
        s_->supervisor->Attach(token_, this, std::move(hello));
    if (!attached.ok()) {
      End(ToGrpcStatus(attached.status()));
      return;
    }
    attached_ = true;
    pid_ = attached->pid;
    worker_id_ = attached->id;
    s_->router->AddWorker(pid_, this);
    stream_.Read(&in_, read_.Arm());
  }

  // One message of an attached worker.
  grpc::Status Handle() {
    switch (in_.kind_case()) {
      case v1::WorkerMessage::kReady:
        s_->supervisor->Ready(token_);
        break;
      case v1::WorkerMessage::kAck:
        if (in_.ack().what() == v1::Ack::WHAT_REFUSED) {
          s_->supervisor->RefusePause(token_, in_.ack().reason());
        } else if (in_.ack().what() != v1::Ack::WHAT_UNSPECIFIED) {
          s_->supervisor->Acknowledge(token_,
                                      in_.ack().what() == v1::Ack::WHAT_PAUSED);
        }
        break;
      case v1::WorkerMessage::kHeartbeat:
        s_->supervisor->Heartbeat(token_, FromProto(in_.heartbeat()));
        break;
      case v1::WorkerMessage::kEvent: {
        const uint64_t sequence = in_.event().sequence();
        // Delivers to the target sessions' queues, inline.
        absl::StatusOr<RouteResult> routed =
            s_->router->Route(std::move(*in_.mutable_event()), pid_);
        v1::MasterMessage message;
        v1::EmitReply* reply = message.mutable_emit_reply();
        reply->set_sequence(sequence);
        if (routed.ok()) {
          reply->set_delivered(routed->delivered);
          for (int32_t unknown : routed->unknown_pids)
            reply->add_unknown_pids(unknown);
        } else {
          reply->set_error(std::string(routed.status().message()));
          reply->set_error_code(static_cast<int32_t>(routed.status().code()));
        }
        Send(std::move(message));
        break;
      }
      case v1::WorkerMessage::kStatusRegistration: {
        const v1::StatusRegistration& registration = in_.status_registration();
        if (registration.registered()) {
          s_->registry->Register(pid_, worker_id_, registration.name(), this);
        } else {
          s_->registry->Unregister(pid_, registration.name());
        }
        break;
      }
      case v1::WorkerMessage::kStatusAnswer:
        s_->registry->Answer(pid_, in_.status_answer().id(),
                             in_.status_answer().value(),
                             in_.status_answer().error());
        break;
      case v1::WorkerMessage::kDebuggerOpened:
        s_->debug->DebuggerOpened(pid_, in_.debugger_opened().url(),
                                  in_.debugger_opened().error());
        break;
      case v1::WorkerMessage::kHello:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "hello may only be the first message");
      case v1::WorkerMessage::KIND_NOT_SET:
        break;  // a newer worker's message this master does not know
    }
    return grpc::Status::OK;
  }

  // No Read is outstanding: the session ends with `status` once the Write
  // in progress (if any) is back. What is still queued is dropped: the
  // worker is gone or being cut off.
  void End(grpc::Status status) {
    if (attached_) {
      attached_ = false;
      s_->router->RemoveWorker(pid_);
      s_->registry->RemoveProcess(pid_);
      s_->supervisor->Detach(token_);
    }
    ending_ = true;
    status_ = std::move(status);
    DropQueued();
    MaybeFinish();
  }

  // Any thread: in call order, whatever thread each send came from.
  void Send(v1::MasterMessage message) {
    if (s_->loop->InLoop()) {
      TakeInbox();
      Enqueue(std::move(message));
      return;
    }
    if (inbox_.Push(std::move(message))) {
      s_->loop->Post([self = shared_from_this()] { self->TakeInbox(); });
    }
  }

  void TakeInbox() {
    for (v1::MasterMessage& message : inbox_.Take())
      Enqueue(std::move(message));
  }

  void Enqueue(v1::MasterMessage message) {
    if (ending_ || cut_) return;
    if (queue_.size() >= s_->options.max_session_queue) {
      LogError(absl::StrCat("the session of worker pid ", pid_, " has ",
                            queue_.size(),
                            " messages it does not read: closing it"));
      cut_ = true;
      DropQueued();
      context_.TryCancel();  // the read fails and ends the session
      return;
    }
    queue_.push_back(std::move(message));
    if (!writing_) WriteFront();
  }

  void WriteFront() {
    writing_ = true;
    stream_.Write(queue_.front(), write_.Arm());
  }

  void OnWrite(bool ok) {
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      cut_ = true;  // the stream is broken; the read ends the session
      DropQueued();
    }
    if (!queue_.empty()) {
      WriteFront();
      return;
    }
    MaybeFinish();
  }

  // Drops every queued message but the one being written.
  void DropQueued() {
    if (queue_.empty()) return;
    if (!writing_) {
      queue_.clear();
      return;
    }
    queue_.erase(queue_.begin() + 1, queue_.end());
  }

  void MaybeFinish() {
    if (!ending_ || writing_ || finishing_) return;
    finishing_ = true;
    stream_.Finish(status_, finish_.Arm());
  }

  void OnFinish() {
    finished_ = true;
    MaybeRelease();
  }

  void MaybeRelease() {
    if (finished_ && !hello_timer_.set()) Release();
  }

  // Frees the call after the current event (its tags are still in use).
  void Release() {
    s_->loop->Post([self = std::move(self_)] {});
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::MasterMessage, v1::WorkerMessage> stream_;
  IoLoop::Tag accept_;
  IoLoop::Tag read_;
  IoLoop::Tag write_;
  IoLoop::Tag finish_;
  IoLoop::Timer hello_timer_;
  std::shared_ptr<AttachCall> self_;

  v1::WorkerMessage in_;
  std::deque<v1::MasterMessage> queue_;  // front: being written
  CrossThreadInbox<v1::MasterMessage> inbox_;
  bool awaiting_hello_ = false;
  bool attached_ = false;
  bool writing_ = false;
  bool cut_ = false;  // no more writes: overflowed or broken
  bool ending_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  grpc::Status status_;
  std::string token_;
  pid_t pid_ = 0;
  unsigned worker_id_ = 0;
};

}  // namespace

void ListenForSession(SessionServer::Shared* shared) {
  AttachCall::Listen(shared);
}

}  // namespace cluster2
