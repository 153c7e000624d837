#include "cache_server/cache_server.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache_server/internal/cache_service.h"
#include "cache_server/internal/cache_store.h"
#include "cache_server/internal/redis_store.h"
#include "common/clock.h"
#include "common/keepalive.h"
#include "common/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"

namespace cluster2 {

namespace {

// The store of `options.backend` (checked by Start).
std::unique_ptr<CacheBackend> MakeStore(const CacheServerOptions& options,
                                        Clock* clock) {
  if (!options.backend.empty()) {
    RedisStore::Options redis;
    redis.address = *ParseRedisAddress(options.backend);
    redis.max_value = options.max_value_bytes;
    return std::make_unique<RedisStore>(std::move(redis), clock);
  }
  CacheStore::Limits limits;
  limits.max_value = options.max_value_bytes;
  limits.max_bytes = options.max_memory_bytes;
  return std::make_unique<CacheStore>(limits, clock, options.data_dir);
}

}  // namespace

struct CacheServer::State {
  explicit State(const CacheServerOptions& options)
      : options(options),
        store_owner(MakeStore(options, &clock)),
        store(*store_owner),
        service(&store) {}

  const CacheServerOptions options;
  RealClock clock;
  std::unique_ptr<CacheBackend> store_owner;
  CacheBackend& store;
  CacheService service;
  std::unique_ptr<grpc::Server> server;
  absl::Notification stop;
  std::thread maintenance;
};

CacheServer::CacheServer(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<CacheServer>> CacheServer::Start(
    const CacheServerOptions& options) {
  if (options.socket_path.empty() || options.socket_path.size() > 107) {
    return absl::InvalidArgumentError(
        "the cache socket must be a path of 1..107 bytes");
  }
  if (options.max_value_bytes == 0 || options.max_value_bytes > (64 << 20)) {
    return absl::InvalidArgumentError(
        "the largest value must be 1 byte to 64 MiB");
  }
  if (!options.backend.empty()) {
    if (absl::StatusOr<RedisAddress> address =
            ParseRedisAddress(options.backend);
        !address.ok()) {
      return address.status();
    }
  }
  auto state = std::make_unique<State>(options);
  std::vector<std::string> problems;
  if (absl::Status status = state->store.Recover(&problems); !status.ok()) {
    // The message names the directory and why (not ours, writable by
    // others, cannot be created).
    return absl::FailedPreconditionError(status.message());
  }
  for (const std::string& problem : problems) LogWarning(problem);
  for (const CacheNamespaceInfo& info : state->store.Namespaces()) {
    LogInfo(absl::StrCat("recovered namespace '", info.name, "': ", info.keys,
                         " keys, ", info.bytes, " bytes"));
  }

  // grpc.health.v1 is the service's own (CacheService::Register): gRPC's
  // default one would add two polling threads competing for every event.
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  unlink(options.socket_path.c_str());  // a stale socket of a dead server
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + options.socket_path,
                           grpc::InsecureServerCredentials());
  // Room for a Batch of a few maximal values; larger messages get
  // RESOURCE_EXHAUSTED from gRPC itself.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::max<size_t>(4 * options.max_value_bytes + (1 << 20), 8 << 20)));
  AllowClientKeepalive(&builder);
  state->service.Register(builder);
  state->server = builder.BuildAndStart();
  if (state->server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on unix:", options.socket_path));
  }
  state->service.Start();
  chmod(options.socket_path.c_str(), 0600);
  State* raw = state.get();
  state->maintenance = std::thread([raw] {
    while (!raw->stop.WaitForNotificationWithTimeout(absl::Seconds(1)))
      raw->store.Maintain();
  });
  pthread_setname_np(state->maintenance.native_handle(), "maintenance");
  LogInfo(absl::StrCat(
      "serving on unix:", options.socket_path,
      !options.backend.empty()   ? ", keys in Redis at " + options.backend
      : options.data_dir.empty() ? " (no data directory: nothing persists)"
                                 : ", data in " + options.data_dir));
  return std::unique_ptr<CacheServer>(new CacheServer(std::move(state)));
}

CacheServer::~CacheServer() {
  state_->server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(200));
  state_->service.Stop();
  state_->stop.Notify();
  state_->maintenance.join();
  state_->store.SyncAll();
  unlink(state_->options.socket_path.c_str());
}

int RunCacheServer(const CacheServerOptions& options) {
  SetLogComponent("cache");
#ifdef NDEBUG
  // Debian's abseil checks every Mutex acquisition for lock-order cycles
  // (~3% of the server's time); optimized builds skip it, tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::StatusOr<std::unique_ptr<CacheServer>> server =
      CacheServer::Start(options);
  if (!server.ok()) {
    std::cerr << "cluster2-cache: " << server.status().message() << "\n";
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  int signal;
  sigwait(&signals, &signal);
  LogInfo("stopping");
  server->reset();
  return 0;
}

}  // namespace cluster2
