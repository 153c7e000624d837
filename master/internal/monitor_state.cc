// MonitorServer's views of the cluster: /metrics (ClusterMetrics over a
// snapshot) and the JSON of /api/state and /api/history (monitor.proto's
// messages through protobuf's JSON printer).
#include <cmath>
#include <map>
#include <string>

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/proto_time.h"
#include "common/version.h"
#include "google/protobuf/util/json_util.h"
#include "master/internal/monitor_server.h"

namespace cluster2 {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    // Only a Value holding NaN or infinity cannot be printed.
    LogError(absl::StrCat("monitor: cannot print ",
                          message.GetDescriptor()->name(),
                          " as JSON: ", status.ToString()));
    return "{}";
  }
  return json;
}

void FillWorker(const WorkerSnapshot& worker, absl::Time now,
                v1::MonitorWorker* out) {
  out->set_slot(worker.id);
  out->set_group(worker.group);
  out->set_pid(worker.pid);
  out->set_state(std::string(WorkerStateName(worker.state)));
  out->set_restarts(worker.restarts);
  // Whole seconds: the state pushed to pages changes once a second.
  if (worker.pid != 0) {
    out->set_uptime_seconds(
        std::floor(absl::ToDoubleSeconds(now - worker.started_at)));
  }
  if (worker.heartbeat) {
    const HeartbeatFigures& beat = *worker.heartbeat;
    out->set_rss_bytes(beat.rss_bytes);
    out->set_cpu_seconds(absl::ToDoubleSeconds(beat.cpu_time));
    out->set_requests_total(beat.requests_total);
    out->set_requests_in_flight(beat.requests_in_flight);
    out->set_latency_p50_seconds(absl::ToDoubleSeconds(beat.latency_p50));
    out->set_latency_p99_seconds(absl::ToDoubleSeconds(beat.latency_p99));
    out->set_heartbeat_lag_seconds(absl::ToDoubleSeconds(beat.lag));
    out->set_open_fds(beat.open_fds);
  }
  out->set_note(worker.reason.empty() && !worker.last_exit.empty()
                    ? "last exit: " + worker.last_exit
                    : worker.reason);
}

}  // namespace

std::string MonitorServer::StateJson() {
  const absl::Time now = absl::Now();
  v1::MonitorState state;
  state.set_cluster(options_.cluster_name);
  state.set_version(kCluster2Version);
  Ecv::State ecv = ecv_->Get();
  v1::MonitorEcv* out_ecv = state.mutable_ecv();
  out_ecv->set_health(std::string(Ecv::HealthName(ecv.health)));
  out_ecv->set_mode(ecv.mode);
  out_ecv->set_changed_by(ecv.changed_by);
  out_ecv->set_ready_workers(ecv.ready_workers);
  for (const WorkerSnapshot& worker : supervisor_->Workers())
    FillWorker(worker, now, state.add_workers());
  for (v1::MonitorStatus& status : sampler_->Statuses())
    *state.add_statuses() = std::move(status);
  if (options_.cache_stats) {
    v1::MonitorCache* cache = state.mutable_cache();
    std::optional<CacheStatsSample> sample = options_.cache_stats();
    cache->set_up(sample && now - sample->at <= absl::Seconds(3));
    if (sample) *cache->mutable_namespaces() = sample->stats.namespaces();
  }
  for (v1::MonitorEvent& event : options_.timeline->Recent())
    *state.add_timeline() = std::move(event);
  if (std::optional<DebugInfo> session = debug_->Current()) {
    v1::MonitorDebug* out = state.mutable_debug();
    out->set_pid(session->pid);
    out->set_supervised_pid(session->supervised_pid);
    out->set_gdbserver_pid(session->gdbserver_pid);
    out->set_protocol(session->protocol);
    out->set_address(session->address);
    out->set_url(session->url);
    out->set_executable(session->executable);
    out->set_fresh(session->fresh);
    out->set_instructions(session->Instructions());
  }
  // `at` is the latest sample's: the state changes when the figures do.
  if (std::optional<v1::MonitorSample> latest = sampler_->Latest()) {
    *state.mutable_at() = latest->at();
    *state.mutable_latest() = *std::move(latest);
  }
  return ToJson(state);
}

std::string MonitorServer::HistoryJson() { return ToJson(sampler_->History()); }

std::string MonitorServer::Metrics() {
  MetricsSnapshot snapshot;
  snapshot.now = absl::Now();
  snapshot.workers = supervisor_->Workers();
  snapshot.desired_workers = supervisor_->desired_workers();
  snapshot.ecv = ecv_->Get();
  snapshot.events = router_->counters();
  snapshot.statuses = registry_->Registrants();
  if (options_.worker_max_rss_bytes)
    snapshot.worker_max_rss_bytes = options_.worker_max_rss_bytes();
  if (options_.cache_restarts)
    snapshot.cache_server_restarts = options_.cache_restarts();
  if (options_.bridge) snapshot.bridge = options_.bridge();
  if (options_.cache_stats) {
    snapshot.cache_max_memory_bytes = options_.cache_max_memory_bytes;
    snapshot.cache = options_.cache_stats();
  }
  return options_.metrics->Render(snapshot);
}

}  // namespace cluster2
