// cluster2-cache: the cluster's cache server, serving Cache (and
// grpc.health.v1, reflection) on a Unix socket.
#ifndef CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_
#define CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_

#include <string>

namespace cluster2 {

struct CacheServerOptions {
  // The socket to serve on ("<run_dir>/cache.sock"). Required.
  std::string socket_path;
  // Largest value accepted, bytes. Default 4 MiB.
  size_t max_value_bytes = 4 << 20;
};

// Serves until SIGTERM or SIGINT; returns the process exit code. Call it
// before starting threads: it blocks those signals for a signal loop.
int RunCacheServer(const CacheServerOptions& options);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_
