// MonitorServer: the master's HTTP server on monPort (libmicrohttpd).
//
//   GET  <ecv.root>              the ECV (see ecv.h)
//   GET|POST <ecv.markUp/markDown> mark the cluster up / down
//   GET  /metrics                Prometheus text format
//   GET  /, /debug               the monitor page (plain HTML/CSS/JS)
//   GET  /api/state              workers, ECV and statuses as JSON
//   GET  /api/events             the same, pushed as server-sent events
//   POST /api/restart, /api/recycle?pid=N, /api/markup, /api/markdown
//
// Changing state over HTTP is allowed from loopback addresses only, unless
// `allow_remote_control`; others get 403.
//
// Thread-safe: one thread per connection (server-sent events hold theirs).
#ifndef CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_
#define CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "master/internal/ecv.h"
#include "master/internal/event_router.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

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
  // The cache server ("unix:..."), asked for its figures at each scrape of
  // /metrics; empty: none.
  std::string cache_address;
};

class MonitorServer {
 public:
  // Serves on `listen_fd` (bound; this calls listen) until destroyed.
  // Borrows the other arguments.
  static absl::StatusOr<std::unique_ptr<MonitorServer>> Start(
      int listen_fd, MonitorOptions options, Ecv* ecv, Supervisor* supervisor,
      StatusRegistry* registry, EventRouter* router);
  ~MonitorServer();

  // Request handling, public for the C callback; not for other callers.
  struct Request;
  int Handle(Request& request);

  // The Prometheus text of the cluster's metrics now.
  std::string Metrics();
  // The JSON pushed to the monitor page.
  std::string StateJson();

 private:
  MonitorServer(MonitorOptions options, Ecv* ecv, Supervisor* supervisor,
                StatusRegistry* registry, EventRouter* router);

  // The cache server's figures (cluster2_cache_*); cluster2_cache_up 0 if
  // it does not answer within a fraction of a second.
  void AppendCacheMetrics(std::string* text);

  const MonitorOptions options_;
  Ecv* const ecv_;
  Supervisor* const supervisor_;
  StatusRegistry* const registry_;
  EventRouter* const router_;
  MHD_Daemon* daemon_ = nullptr;
  struct CacheProbe;                         // a stub of the cache server
  std::unique_ptr<CacheProbe> cache_probe_;  // with cache_address
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_SERVER_H_
