// grpc.health.v1.Health on the master's loop, instead of gRPC's default
// health service: that one is built on the callback API, whose threads
// ("nexting_thread") poll the same sockets as the loop and took most of
// the session traffic's wake-ups (bench/emitter_bench, docs/BENCHMARKS.md).
// The server ("") is SERVING or NOT_SERVING as SessionServer::SetServing
// says (the ECV); any other service is unknown: NOT_FOUND from Check,
// SERVICE_UNKNOWN from Watch, as the protocol says. Watch sends the status
// and then every change until the client leaves.
#include <memory>
#include <utility>

#include "master/internal/session_calls.h"

namespace cluster2 {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse::ServingStatus StatusOf(SessionServer::Shared* s,
                                            const std::string& service) {
  if (!service.empty()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return s->serving.load() ? HealthCheckResponse::SERVING
                           : HealthCheckResponse::NOT_SERVING;
}

class HealthCheckCall final {
 public:
  static void Listen(SessionServer::Shared* shared) {
    auto* call = new HealthCheckCall(shared);
    shared->health.RequestCheck(&call->context_, &call->request_,
                                &call->responder_, shared->cq, shared->cq,
                                call->tag_.Arm());
  }

 private:
  explicit HealthCheckCall(SessionServer::Shared* shared)
      : s_(shared),
        responder_(&context_),
        tag_(*shared->loop, [this](bool ok) { OnEvent(ok); }) {}

  void OnEvent(bool ok) {
    if (!ok || answered_) {
      s_->loop->Post([this] { delete this; });
      return;
    }
    Listen(s_);
    answered_ = true;
    HealthCheckResponse::ServingStatus status =
        StatusOf(s_, request_.service());
    if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"),
          tag_.Arm());
      return;
    }
    HealthCheckResponse response;
    response.set_status(status);
    responder_.Finish(response, grpc::Status::OK, tag_.Arm());
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  grpc::ServerAsyncResponseWriter<HealthCheckResponse> responder_;
  IoLoop::Tag tag_;
  bool answered_ = false;
};

}  // namespace

// One Watch: registered in Shared::health_watchers while its client is
// there; Changed() writes the status if it differs from the last written.
class HealthWatchCall final {
 public:
  static void Listen(SessionServer::Shared* shared) {
    auto* call = new HealthWatchCall(shared);
    call->context_.AsyncNotifyWhenDone(&call->done_);
    shared->health.RequestWatch(&call->context_, &call->request_,
                                &call->writer_, shared->cq, shared->cq,
                                call->accept_.Arm());
  }

  // The serving status may have changed.
  void Changed() {
    if (writing_ || done_seen_) return;
    HealthCheckResponse::ServingStatus status =
        StatusOf(s_, request_.service());
    if (status == last_) return;
    last_ = status;
    HealthCheckResponse response;
    response.set_status(status);
    writing_ = true;
    writer_.Write(response, write_.Arm());
  }

 private:
  explicit HealthWatchCall(SessionServer::Shared* shared)
      : s_(shared),
        writer_(&context_),
        accept_(*shared->loop, [this](bool ok) { OnAccept(ok); }),
        done_(*shared->loop, [this](bool) { OnDone(); }),
        write_(*shared->loop, [this](bool ok) { OnWrite(ok); }) {}

  void OnAccept(bool ok) {
    if (!ok) {
      s_->loop->Post([this] { delete this; });
      return;
    }
    done_.Arm();  // delivered once the call has started
    Listen(s_);
    s_->health_watchers.insert(this);
    Changed();
  }

  void OnWrite(bool ok) {
    writing_ = false;
    if (ok) Changed();  // a change while writing
    MaybeRelease();
  }

  void OnDone() {
    done_seen_ = true;
    s_->health_watchers.erase(this);
    MaybeRelease();
  }

  void MaybeRelease() {
    if (done_seen_ && !writing_) s_->loop->Post([this] { delete this; });
  }

  SessionServer::Shared* const s_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  IoLoop::Tag accept_;
  IoLoop::Tag done_;
  IoLoop::Tag write_;
  HealthCheckResponse::ServingStatus last_ = HealthCheckResponse::UNKNOWN;
  bool writing_ = false;
  bool done_seen_ = false;
};

void ListenForHealth(SessionServer::Shared* shared) {
  HealthCheckCall::Listen(shared);
  HealthWatchCall::Listen(shared);
}

void HealthChanged(SessionServer::Shared* shared) {
  for (HealthWatchCall* watcher : shared->health_watchers) watcher->Changed();
}

}  // namespace cluster2
