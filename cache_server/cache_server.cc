#include "cache_server/cache_server.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cache_server/internal/cache_service.h"
#include "cache_server/internal/cache_store.h"
#include "common/clock.h"
#include "common/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace cluster2 {

int RunCacheServer(const CacheServerOptions& options) {
  SetLogComponent("cache");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (options.socket_path.empty() || options.socket_path.size() > 107) {
    std::cerr << "cluster2-cache: --socket must be a path of 1..107 bytes\n";
    return 2;
  }

  RealClock clock;
  CacheStore::Limits limits;
  limits.max_value = options.max_value_bytes;
  CacheStore store(limits, &clock);
  CacheService service(&store);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  unlink(options.socket_path.c_str());  // a stale socket of a dead server
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + options.socket_path,
                           grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_value_bytes) +
                                   (1 << 20));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::cerr << "cluster2-cache: cannot serve on unix:" << options.socket_path
              << "\n";
    return 1;
  }
  chmod(options.socket_path.c_str(), 0600);
  LogInfo(absl::StrCat("serving on unix:", options.socket_path));

  // The signal loop, which also reclaims expired keys and lapsed leases.
  while (true) {
    timespec second = {1, 0};
    int signal = sigtimedwait(&signals, nullptr, &second);
    if (signal == SIGTERM || signal == SIGINT) break;
    store.Sweep();
  }
  LogInfo("stopping");
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(200));
  unlink(options.socket_path.c_str());
  return 0;
}

}  // namespace cluster2
