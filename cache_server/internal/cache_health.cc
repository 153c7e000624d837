// grpc.health.v1.Health on the cache service's loop: SERVING for the
// server ("") and for "cluster2.v1.Cache" while it runs; any other service
// is unknown (NOT_FOUND from Check, SERVICE_UNKNOWN from Watch, as the
// protocol says). Watch sends the status once and stays open until the
// client leaves or the server stops.
#include "cache_server/internal/cache_calls.h"
#include "cache_server/internal/cache_service.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cluster2 {
namespace {

using cache_calls::Call;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse::ServingStatus StatusOf(const std::string& service) {
  return service.empty() || service == "cluster2.v1.Cache"
             ? HealthCheckResponse::SERVING
             : HealthCheckResponse::SERVICE_UNKNOWN;
}

class HealthCheckCall final : public Call {
 public:
  static void Post(const CacheService::Env& env) { new HealthCheckCall(env); }

 private:
  explicit HealthCheckCall(const CacheService::Env& env)
      : Call(env),
        responder_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        finish_(loop(), On([](bool) {})) {
    env_.health->RequestCheck(&context_, &request_, &responder_, env_.cq,
                              env_.cq, Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;
    Post(env_);
    HealthCheckResponse::ServingStatus status = StatusOf(request_.service());
    if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"),
          Arm(finish_));
      return;
    }
    response_.set_status(status);
    responder_.Finish(response_, grpc::Status::OK, Arm(finish_));
  }

  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncResponseWriter<HealthCheckResponse> responder_;
  IoLoop::Tag accept_, finish_;
};

class HealthWatchCall final : public Call {
 public:
  static void Post(const CacheService::Env& env) { new HealthWatchCall(env); }

 private:
  explicit HealthWatchCall(const CacheService::Env& env)
      : Call(env),
        writer_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        done_(loop(), On([](bool) {})),
        sent_(loop(), On([](bool) {})) {
    context_.AsyncNotifyWhenDone(&done_);
    env_.health->RequestWatch(&context_, &request_, &writer_, env_.cq, env_.cq,
                              Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;
    Post(env_);
    Arm(done_);  // the call lives until its client or the server ends it
    response_.set_status(StatusOf(request_.service()));
    writer_.Write(response_, Arm(sent_));
  }

  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  IoLoop::Tag accept_, done_, sent_;
};

}  // namespace

void CacheService::PostHealthCalls() {
  HealthCheckCall::Post(env_);
  HealthCheckCall::Post(env_);
  HealthWatchCall::Post(env_);
}

}  // namespace cluster2
