// MonitorServer: the master's HTTP server on monPort (libmicrohttpd).
//
//   GET  <ecv.root>              the ECV (see ecv.h)
//   POST <ecv.markUp/markDown>   mark the cluster up / down
//   GET  /metrics                Prometheus text format
//   GET  /, /debug               the monitor page (plain HTML/CSS/JS)
//   GET  /api/state              workers, ECV, statuses, cache, timeline as
//                                JSON (MonitorState, monitor.proto)
//   GET  /api/events             the same, pushed as server-sent events
//   GET  /api/history            the charts' last 5 minutes (MonitorHistory)
//   POST /api/restart, /api/recycle?pid=N, /api/markup, /api/markdown
//   POST /api/debug?pid=N[&protocol=P], /api/debug?fresh=1, /api/debug/end
//                                open / end the debug session (JSON)
//   POST /api/stacks?pid=N       every thread's stack of a worker (JSON)
//
// Who may change state (monitor_routes.h has the rule): POST only (405 with
// "Allow: POST" otherwise), from loopback unless `allow_remote_control`,
// and a request with any browser header (Origin, Sec-Fetch-Site, Referer)
// must carry the control token in X-Cluster2-Token: 128 random bits drawn
// at Start, embedded in the monitor page. A plain `curl -X POST` passes.
//
// Limits, so that a flood of connections cannot silence the ECV:
//   - epoll, so descriptors past 1,024 are served (select cannot);
//   - kThreadPoolSize threads serve every connection; none ever waits on a
//     stream or on another process (/metrics and /api/state read what the
//     observers, the cache probe and "monitor-sample" keep current),
//     except /api/debug and /api/stacks, which wait for DebugSession (up
//     to its timeouts, seconds): one of them at a time (409 "busy" for
//     another), so at least kThreadPoolSize - 1 threads keep serving
//     (the connections libmicrohttpd gave to the busy thread wait too);
//   - at most kMaxConnections connections at once (fewer if the descriptor
//     limit is low: half of it) and kMaxConnectionsPerAddress from one
//     client address: a flood from one address leaves the load balancer's
//     checks, from another address, their places. Connections past a limit
//     are accepted and closed at once;
//   - a connection idle for kIdleTimeoutSeconds is closed;
//   - at most kMaxEventStreams /api/events streams (503 past that).
// A flood from many addresses at once can still take every place; the
// monitor port is for the load balancer's network (monHost), not the world.
//
// Threads: libmicrohttpd's kThreadPoolSize threads run Handle and the
// event streams' content reader; a stream with nothing to send suspends
// its connection, and one thread, "monitor-events", resumes the suspended
// streams every 500 ms so they look for a change. The destructor stops
// "monitor-events", resuming every stream, before it stops libmicrohttpd.
// Thread-safe: Handle, Metrics and StateJson may run on any thread.
#ifndef CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_
#define CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "master/internal/cache_health_probe.h"
#include "master/internal/cluster_metrics.h"
#include "master/internal/debug_session.h"
#include "master/internal/ecv.h"
#include "master/internal/event_router.h"
#include "master/internal/event_timeline.h"
#include "master/internal/monitor_routes.h"
#include "master/internal/monitor_sampler.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

struct MHD_Connection;
struct MHD_Daemon;

namespace cluster2 {

struct MonitorOptions {
  std::string ecv_root = "/ecv";
  std::string mark_up = "/ecv/markUp";
  std::string mark_down = "/ecv/markDown";
  bool allow_remote_control = false;
  // Shown in the ECV body.
  std::string ip;
  std::string hostname;
  unsigned port = 0;  // the service port
  std::string cluster_name;
  // Where /metrics and the page's timeline come from: the supervisor's
  // observers (borrowed, required).
  ClusterMetrics* metrics = nullptr;
  EventTimeline* timeline = nullptr;
  // The cache server's latest figures, kept current by the master's health
  // probe (a scrape of /metrics never calls the cache server); null: no
  // cache.
  std::function<std::optional<CacheStatsSample>()> cache_stats;
  // How many times the standalone cache server was restarted; null: not
  // standalone.
  std::function<unsigned()> cache_restarts;
  // The cache's memory budget in bytes (cache.maxMemory; 0 = none) and the
  // workers' recycle limit on resident memory (recycle.maxRssBytes, as
  // reloaded; 0 = none), for alerts on "near the budget".
  uint64_t cache_max_memory_bytes = 0;
  std::function<uint64_t()> worker_max_rss_bytes;
  // The emitter bridge's totals; null: no bridge.
  std::function<MetricsSnapshot::Bridge()> bridge;
};

class MonitorServer {
 public:
  // Serves on `listen_fd` (bound; this calls listen) until destroyed.
  // Borrows the other arguments, which must outlive it. `debug` serves
  // /api/debug and /api/stacks, the same object as Cluster.Debug's.
  static absl::StatusOr<std::unique_ptr<MonitorServer>> Start(
      int listen_fd, MonitorOptions options, Ecv* ecv, Supervisor* supervisor,
      StatusRegistry* registry, EventRouter* router, DebugSession* debug);
  ~MonitorServer();

  // The limits described above.
  static constexpr unsigned kThreadPoolSize = 4;
  static constexpr unsigned kMaxConnections = 1000;
  static constexpr unsigned kMaxConnectionsPerAddress = 32;
  static constexpr unsigned kIdleTimeoutSeconds = 10;
  static constexpr int kMaxEventStreams = 16;

  // Request handling, public for the C callback; not for other callers.
  struct Request;
  int Handle(Request& request);

  // The Prometheus text of the cluster's metrics now.
  std::string Metrics();
  // /api/state: MonitorState (monitor.proto) as JSON, also pushed by
  // /api/events.
  std::string StateJson();
  // /api/history: MonitorHistory as JSON.
  std::string HistoryJson();

 private:
  MonitorServer(MonitorOptions options, std::string token, Ecv* ecv,
                Supervisor* supervisor, StatusRegistry* registry,
                EventRouter* router, DebugSession* debug);

  // The answers to /api/debug, /api/debug/end and /api/stacks: JSON, or
  // 409 if another of them is running.
  int ServeDebug(MHD_Connection* connection, MonitorRoute route);

  // The answer to a /api/events request: a stream, or 503 past the limit.
  int OpenEventStream(MHD_Connection* connection);

  const MonitorOptions options_;
  const MonitorRoutePolicy policy_;
  // The monitor page with the control token, and without (for a Host that
  // may not have it).
  const std::string page_with_token_;
  const std::string page_without_token_;
  Ecv* const ecv_;
  Supervisor* const supervisor_;
  StatusRegistry* const registry_;
  EventRouter* const router_;
  DebugSession* const debug_;
  // Whether a debug or stacks request is running (one at a time).
  std::atomic<bool> debug_busy_{false};
  // The charts' samples and the status values ("monitor-sample").
  std::unique_ptr<MonitorSampler> sampler_;
  class EventStreams;  // the suspended streams and "monitor-events"
  std::unique_ptr<EventStreams> event_streams_;
  MHD_Daemon* daemon_ = nullptr;  // stopped after event_streams_
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_
