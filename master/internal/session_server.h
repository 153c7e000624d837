// SessionServer: the master's event path on one I/O thread. It serves
// WorkerSession.Attach and the Emitter service (Emit, EmitStream, Subscribe)
// with gRPC's completion-queue API on an IoLoop ("master-io"): every read,
// write and timer of those calls completes on that thread and is handled
// inline, so an event goes socket -> EventRouter -> socket without a thread
// hand-off, and no thread is held per session.
//
// Each call is a small state machine (session_calls.h): a session reads its
// worker's messages one at a time and calls the Supervisor, EventRouter and
// StatusRegistry from the loop; what the master sends a worker (events,
// replies, status queries, pause/drain/debug) goes to the session's outgoing
// queue, written one message at a time. Sends made on another thread (the
// supervisor's timers, control calls, the monitor, an embedding app) are
// handed to the loop in call order.
//
// grpc.health.v1.Health is served here too (SetServing), instead of gRPC's
// default health service, whose callback-API threads would poll the same
// sockets and take the loop's wake-ups. The other services (Cluster,
// Status, Ecv, reflection) stay on gRPC's sync API: they are not on the
// data path, and some block (Pause waits for the worker's confirmation),
// which the loop must never do.
//
// Thread-safe: Register, Start and the destructor from the thread that owns
// the grpc::Server, in that order around BuildAndStart and Shutdown;
// SetServing from any thread.
#ifndef CLUSTER2_MASTER_INTERNAL_SESSION_SERVER_H_
#define CLUSTER2_MASTER_INTERNAL_SESSION_SERVER_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/io_loop.h"
#include "grpcpp/server_builder.h"
#include "master/internal/debug_session.h"
#include "master/internal/event_router.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

struct SessionServerOptions {
  // Sessions that may wait for their hello at once; another one is refused
  // with RESOURCE_EXHAUSTED. Workers say hello first, so only a flood of
  // stray clients fills this. Default 64.
  size_t max_sessions_before_hello = 64;
  // A session that has not said hello this long after it opened is
  // cancelled. Default 10 s.
  absl::Duration hello_timeout = absl::Seconds(10);
  // Messages a session may hold for its worker beyond what the socket took.
  // A worker that stops reading would make them grow without bound: past
  // this the session is cancelled (the worker sees it end and drains; its
  // slot is restarted) rather than dropping messages. Default 100,000.
  size_t max_session_queue = 100000;
  // Events a Subscribe stream may hold; past this it ends with
  // RESOURCE_EXHAUSTED. Default 10,000.
  size_t max_subscriber_queue = 10000;
  // Answers an EmitStream may hold for a client that does not read them;
  // past this the master stops reading its requests until it does.
  // Default 1,024.
  size_t max_emit_stream_queue = 1024;
  // Told to every worker in its Welcome: the cluster's name and the cache
  // server's address ("unix:PATH"; empty when the cache is off).
  std::string cluster_name;
  std::string cache_address;
};

class SessionServer {
 public:
  // Borrows its arguments, which must outlive it.
  SessionServer(SessionServerOptions options, Supervisor* supervisor,
                EventRouter* router, StatusRegistry* registry,
                DebugSession* debug);
  // Call after grpc::Server::Shutdown: ends the loop once every call it
  // served has come back.
  ~SessionServer();

  // Adds the WorkerSession, Emitter and grpc.health.v1.Health services and
  // the loop's completion queue to `builder`. Before BuildAndStart. The
  // caller turns gRPC's default health service off
  // (grpc::EnableDefaultHealthCheckService(false)).
  void Register(grpc::ServerBuilder* builder);
  // Starts the loop and waits for calls. After BuildAndStart.
  void Start();

  // What grpc.health.v1 says of the server (""): SERVING or NOT_SERVING.
  // NOT_SERVING until called.
  void SetServing(bool serving);

  // The loop (for tests and for work that must run on it); null before
  // Start.
  IoLoop* loop() { return loop_.get(); }

  struct Shared;  // what every call uses (session_calls.h)

 private:
  std::unique_ptr<Shared> shared_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;  // until Start
  std::unique_ptr<IoLoop> loop_;
  std::atomic<bool> started_{false};
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SESSION_SERVER_H_
