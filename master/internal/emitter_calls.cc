// Emitter.Emit, Emitter.EmitStream and Emitter.Subscribe on the master's
// loop: events from clients that are not workers, routed inline.
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "master/internal/session_calls.h"

namespace cluster2 {
namespace {

// Routes one event from the master side; errors as EventRouter::Route.
absl::Status RouteFromClient(SessionServer::Shared* s, const v1::Event& event,
                             v1::EmitResponse* response) {
  absl::StatusOr<RouteResult> routed = s->router->Route(event, 0);
  if (!routed.ok()) return routed.status();
  response->set_delivered(routed->delivered);
  for (int32_t pid : routed->unknown_pids) response->add_unknown_pids(pid);
  return absl::OkStatus();
}

// Frees `call` after the current event (its tags are still in use).
template <typename Call>
void ReleaseLater(SessionServer::Shared* s, std::shared_ptr<Call>* self) {
  s->loop->Post([self = std::move(*self)] {});
}

// Emit: one event, one answer.
class EmitCall final {
 public:
  static void Listen(SessionServer::Shared* shared) {
    std::shared_ptr<EmitCall> call(new EmitCall(shared));
    call->self_ = call;
    shared->emitter.RequestEmit(&call->context_, &call->request_,
                                &call->responder_, shared->cq, shared->cq,
                                call->tag_.Arm());
  }

 private:
  explicit EmitCall(SessionServer::Shared* shared)
      : s_(shared),
        responder_(&context_),
        tag_(*shared->loop, [this](bool ok) { OnEvent(ok); }) {}

  void OnEvent(bool ok) {
    if (!ok || answered_) {  // not started (shutdown), or answered
      ReleaseLater(s_, &self_);
      return;
    }
    Listen(s_);
    answered_ = true;
    v1::EmitResponse response;
    absl::Status status = RouteFromClient(s_, request_.event(), &response);
    if (status.ok()) {
      responder_.Finish(response, grpc::Status::OK, tag_.Arm());
    } else {
      responder_.FinishWithError(ToGrpcStatus(status), tag_.Arm());
    }
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  v1::EmitRequest request_;
  grpc::ServerAsyncResponseWriter<v1::EmitResponse> responder_;
  IoLoop::Tag tag_;
  bool answered_ = false;
  std::shared_ptr<EmitCall> self_;
};

// EmitStream: requests read one at a time, each routed and answered in
// order. Answers the client has not read yet queue up to
// max_emit_stream_queue; past that the next Read waits for a Write.
class EmitStreamCall final {
 public:
  static void Listen(SessionServer::Shared* shared) {
    std::shared_ptr<EmitStreamCall> call(new EmitStreamCall(shared));
    call->self_ = call;
    shared->emitter.RequestEmitStream(&call->context_, &call->stream_,
                                      shared->cq, shared->cq,
                                      call->accept_.Arm());
  }

 private:
  explicit EmitStreamCall(SessionServer::Shared* shared)
      : s_(shared),
        stream_(&context_),
        accept_(*shared->loop, [this](bool ok) { OnAccept(ok); }),
        read_(*shared->loop, [this](bool ok) { OnRead(ok); }),
        write_(*shared->loop, [this](bool ok) { OnWrite(ok); }),
        finish_(*shared->loop, [this](bool) { ReleaseLater(s_, &self_); }) {}

  void OnAccept(bool ok) {
    if (!ok) {
      ReleaseLater(s_, &self_);
      return;
    }
    Listen(s_);
    StartRead();
  }

  void StartRead() {
    reading_ = true;
    stream_.Read(&request_, read_.Arm());
  }

  void OnRead(bool ok) {
    reading_ = false;
    if (!ok) {  // the client half-closed (or is gone)
      read_done_ = true;
      MaybeFinish();
      return;
    }
    v1::EmitResponse response;
    absl::Status status = RouteFromClient(s_, request_.event(), &response);
    if (!status.ok()) {
      response.set_error(std::string(status.message()));
      response.set_error_code(static_cast<int32_t>(status.code()));
    }
    if (!broken_) {
      queue_.push_back(std::move(response));
      if (!writing_) WriteFront();
    }
    if (queue_.size() < s_->options.max_emit_stream_queue) StartRead();
  }

  void WriteFront() {
    writing_ = true;
    stream_.Write(queue_.front(), write_.Arm());
  }

  void OnWrite(bool ok) {
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      broken_ = true;  // the client is gone: its reads fail too
      queue_.clear();
    }
    if (!queue_.empty()) WriteFront();
    if (!reading_ && !read_done_ &&
        queue_.size() < s_->options.max_emit_stream_queue) {
      StartRead();
    }
    MaybeFinish();
  }

  void MaybeFinish() {
    if (!read_done_ || writing_ || finishing_) return;
    finishing_ = true;
    stream_.Finish(grpc::Status::OK, finish_.Arm());
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::EmitResponse, v1::EmitRequest> stream_;
  IoLoop::Tag accept_;
  IoLoop::Tag read_;
  IoLoop::Tag write_;
  IoLoop::Tag finish_;
  std::shared_ptr<EmitStreamCall> self_;
  v1::EmitRequest request_;
  std::deque<v1::EmitResponse> queue_;  // front: being written
  bool reading_ = false;
  bool read_done_ = false;
  bool writing_ = false;
  bool broken_ = false;
  bool finishing_ = false;
};

// Subscribe: a master listener whose events are written to the client. It
// learns that the client went away from the done notification (a server
// stream has no read to fail).
class SubscribeCall final : public EventSink,
                            public std::enable_shared_from_this<SubscribeCall> {
 public:
  static void Listen(SessionServer::Shared* shared) {
    std::shared_ptr<SubscribeCall> call(new SubscribeCall(shared));
    call->self_ = call;
    // Delivered once the call has started (never if it does not).
    call->context_.AsyncNotifyWhenDone(&call->done_);
    shared->emitter.RequestSubscribe(&call->context_, &call->request_,
                                     &call->writer_, shared->cq, shared->cq,
                                     call->accept_.Arm());
  }

  // EventSink: any thread, while listening.
  void Deliver(const v1::Event& event) override {
    if (!names_.empty() && names_.count(event.name()) == 0) return;
    if (s_->loop->InLoop()) {
      TakeInbox();
      Enqueue(event);
      return;
    }
    if (inbox_.Push(event)) {
      s_->loop->Post([self = shared_from_this()] { self->TakeInbox(); });
    }
  }

 private:
  explicit SubscribeCall(SessionServer::Shared* shared)
      : s_(shared),
        writer_(&context_),
        accept_(*shared->loop, [this](bool ok) { OnAccept(ok); }),
        done_(*shared->loop, [this](bool) { OnDone(); }),
        write_(*shared->loop, [this](bool ok) { OnWrite(ok); }),
        finish_(*shared->loop, [this](bool) { OnFinish(); }) {}

  void OnAccept(bool ok) {
    if (!ok) {
      ReleaseLater(s_, &self_);
      return;
    }
    done_.Arm();  // the done notification is on its way now
    Listen(s_);
    names_.insert(request_.events().begin(), request_.events().end());
    listener_ = s_->router->AddMasterListener(this);
  }

  void TakeInbox() {
    for (v1::Event& event : inbox_.Take()) Enqueue(event);
  }

  void Enqueue(const v1::Event& event) {
    if (ending_) return;
    if (queue_.size() >= s_->options.max_subscriber_queue) {
      End(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("subscriber fell ", s_->options.max_subscriber_queue,
                       " events behind; subscribe again")));
      return;
    }
    queue_.push_back(event);
    if (!writing_) WriteFront();
  }

  void WriteFront() {
    writing_ = true;
    writer_.Write(queue_.front(), write_.Arm());
  }

  void OnWrite(bool ok) {
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      End(grpc::Status::CANCELLED);  // the client is gone
    } else if (!queue_.empty()) {
      WriteFront();
      return;
    }
    MaybeFinish();
    MaybeRelease();
  }

  // Stops listening; finishes with `status` once no Write is in progress.
  void End(grpc::Status status) {
    if (ending_) return;
    ending_ = true;
    s_->router->RemoveMasterListener(listener_);
    status_ = std::move(status);
    if (writing_) {
      queue_.erase(queue_.begin() + 1, queue_.end());
    } else {
      queue_.clear();
    }
    MaybeFinish();
  }

  void MaybeFinish() {
    if (!ending_ || writing_ || finishing_ || done_seen_) return;
    finishing_ = true;
    writer_.Finish(status_, finish_.Arm());
  }

  void OnDone() {
    done_seen_ = true;
    End(grpc::Status::CANCELLED);  // no-op unless the client cancelled
    MaybeRelease();
  }

  void OnFinish() {
    finished_ = true;
    MaybeRelease();
  }

  void MaybeRelease() {
    if (done_seen_ && !writing_ && (!finishing_ || finished_))
      ReleaseLater(s_, &self_);
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  v1::SubscribeRequest request_;
  grpc::ServerAsyncWriter<v1::Event> writer_;
  IoLoop::Tag accept_;
  IoLoop::Tag done_;
  IoLoop::Tag write_;
  IoLoop::Tag finish_;
  std::shared_ptr<SubscribeCall> self_;
  std::set<std::string> names_;  // set before the listener is added
  uint64_t listener_ = 0;
  std::deque<v1::Event> queue_;  // front: being written
  CrossThreadInbox<v1::Event> inbox_;
  bool writing_ = false;
  bool ending_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  bool done_seen_ = false;
  grpc::Status status_;
};

}  // namespace

void ListenForEmit(SessionServer::Shared* shared) { EmitCall::Listen(shared); }
void ListenForEmitStream(SessionServer::Shared* shared) {
  EmitStreamCall::Listen(shared);
}
void ListenForSubscribe(SessionServer::Shared* shared) {
  SubscribeCall::Listen(shared);
}

}  // namespace cluster2
