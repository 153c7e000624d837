#include "master/internal/cache_health_probe.h"

#include <pthread.h>

#include <chrono>

#include "cluster2/v1/cache.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cluster2 {

CacheHealthProbe::CacheHealthProbe(std::string address, absl::Duration interval,
                                   std::function<pid_t()> current_pid,
                                   std::function<void(pid_t)> answered)
    : address_(std::move(address)),
      interval_(interval),
      current_pid_(std::move(current_pid)),
      answered_(std::move(answered)),
      thread_([this] { Loop(); }) {}

CacheHealthProbe::~CacheHealthProbe() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::optional<CacheStatsSample> CacheHealthProbe::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

void CacheHealthProbe::Loop() {
  pthread_setname_np(pthread_self(), "cache-health");
  // A restarted server is reached again quickly, not after gRPC's default
  // reconnect backoff of up to two minutes.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::unique_ptr<v1::Cache::Stub> stub =
      v1::Cache::NewStub(grpc::CreateCustomChannel(
          address_, grpc::InsecureChannelCredentials(), args));
  auto stopping = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (true) {
    const absl::Time started = absl::Now();
    if (pid_t pid = current_pid_(); pid > 0) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);  // through a reconnection
      context.set_deadline(absl::ToChronoTime(started + interval_));
      v1::StatsResponse stats;
      if (stub->Stats(&context, v1::StatsRequest(), &stats).ok()) {
        if (answered_) answered_(pid);
        absl::MutexLock lock(&mu_);
        latest_ = CacheStatsSample{std::move(stats), absl::Now()};
      }
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithDeadline(absl::Condition(&stopping), started + interval_))
      return;
  }
}

}  // namespace cluster2
