// cluster2-cache: the cluster's cache server, serving Cache (and
// grpc.health.v1, reflection) on a Unix socket. It runs as its own process
// (RunCacheServer, supervised by the master) or inside the master
// (CacheServer::Start, cache.mode "master").
#ifndef CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_
#define CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace cluster2 {

struct CacheServerOptions {
  // The socket to serve on ("<run_dir>/cache.sock"). Required.
  std::string socket_path;
  // Where persistent namespaces are kept; empty (the default): none can be
  // persistent. Created 0700 if missing; Start fails (FAILED_PRECONDITION)
  // unless it belongs to this process's user and nobody else can write it.
  std::string data_dir;
  // Largest value accepted, bytes. Default 4 MiB.
  size_t max_value_bytes = 4 << 20;
  // Memory budget for keys and values, bytes; 0 = none. See cache.proto for
  // the eviction policy.
  uint64_t max_memory_bytes = 0;
  // Where the keys live: empty (the default), this server's memory and
  // data_dir; "redis://HOST:PORT" or "unix:/path/redis.sock", a Redis
  // server shared with other hosts' cache servers (RedisStore).
  std::string backend;
};

// A running cache server: its store (recovered from data_dir), its gRPC
// server (callback API: no thread per call, stream or parked get-or-load)
// and two threads of its own: "maintenance", once a second (expiry sweep,
// lapsed leases, everysec fsync, compaction), and the store's
// "cache-timers" (the wait deadlines of parked get-or-load calls).
// Thread-safe.
class CacheServer {
 public:
  // Recovers the persistent namespaces (problems found in the files are
  // logged, never fatal) and starts serving.
  static absl::StatusOr<std::unique_ptr<CacheServer>> Start(
      const CacheServerOptions& options);
  // Stops serving, syncs the logs and removes the socket.
  ~CacheServer();

 private:
  struct State;
  explicit CacheServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The cluster2-cache process: serves until SIGTERM or SIGINT; returns the
// exit code. Call it before starting threads: it blocks those signals for
// a signal loop.
int RunCacheServer(const CacheServerOptions& options);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_CACHE_SERVER_H_
