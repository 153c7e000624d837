// ClusterMetrics: every metric the master exports, declared in one place
// (cluster_metrics.cc) on a prometheus-cpp Registry, and the per-slot
// totals the monitor page's charts are drawn from. docs/metrics.md lists
// them; docs/adr/0005-metrics-on-prometheus-cpp.md says why this shape.
//
// Three kinds of figures, kept current in three ways:
//   - per-slot counters and the latency histogram, from every heartbeat
//     and worker event as it happens (SupervisorObserver): a slot's series
//     adds up every process the slot ran, so a restart makes no new series
//     and a counter never goes back;
//   - gauges (worker states, per-process figures of each slot's current
//     process, the ECV, statuses), set from a snapshot at each Render;
//   - the cache server's figures, from the master's health probe's latest
//     answer (a scrape never calls the cache server), as counters that stay
//     monotonic across cache server restarts.
// Every series carries the label `cluster`. A Family keys its series by
// their labels, so no scrape can hold a series twice.
//
// Thread-safe; the SupervisorObserver calls never block.
#ifndef CLUSTER2_MASTER_INTERNAL_CLUSTER_METRICS_H_
#define CLUSTER2_MASTER_INTERNAL_CLUSTER_METRICS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "master/internal/cache_health_probe.h"
#include "master/internal/ecv.h"
#include "master/internal/event_router.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

// What a scrape reads besides the observed events.
struct MetricsSnapshot {
  std::vector<WorkerSnapshot> workers;  // Supervisor::Workers()
  unsigned desired_workers = 0;
  Ecv::State ecv;
  EventRouter::Counters events;
  // Registrants per status name.
  std::map<std::string, size_t> statuses;
  uint64_t worker_max_rss_bytes = 0;
  // Unset: no cache (then no cache series) / not a standalone server.
  std::optional<uint64_t> cache_max_memory_bytes;
  std::optional<unsigned> cache_server_restarts;
  // The probe's latest answer, if any.
  std::optional<CacheStatsSample> cache;
  // The emitter bridge's totals (emitter.bridge); unset without one.
  struct Bridge {
    uint64_t sent = 0, received = 0, repeated = 0, dropped = 0;
  };
  std::optional<Bridge> bridge;
  absl::Time now;
};

// One slot's totals since the master started (every process it ran).
struct SlotTotals {
  std::string group;
  double requests = 0;
  double cpu_seconds = 0;
  // Requests per latency bucket (ClusterMetrics::LatencyBounds, plus one
  // past the last bound), not cumulative.
  std::vector<double> latency_buckets;
};

class ClusterMetrics final : public SupervisorObserver {
 public:
  // `cluster` and `balance` label every series / cluster2_info.
  ClusterMetrics(const std::string& cluster, const std::string& balance);
  ~ClusterMetrics() override;

  // The histogram's bucket bounds in seconds (LatencyHistogram's
  // recommended ones).
  static const std::vector<double>& LatencyBounds();

  // SupervisorObserver.
  void OnWorkerEvent(const WorkerEvent& event) override;
  void OnHeartbeat(unsigned slot, const std::string& group, pid_t pid,
                   bool current, const HeartbeatFigures& figures) override;

  // Updates the gauges from `snapshot` and returns the text format.
  std::string Render(const MetricsSnapshot& snapshot);

  // Every slot's totals, by slot.
  std::map<unsigned, SlotTotals> Totals() const;

 private:
  class Families;
  // What the last heartbeat of a process said, for the next one's deltas.
  struct LastBeat {
    double requests = 0;
    double cpu_seconds = 0;
    std::vector<double> buckets;  // mapped onto LatencyBounds
    double latency_sum = 0;
    bool bad_histogram_logged = false;
  };

  void UpdateWorkerGauges(const MetricsSnapshot& snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateCache(const MetricsSnapshot& snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<Families> families_;  // the Registry and its families
  std::map<pid_t, LastBeat> last_beats_ ABSL_GUARDED_BY(mu_);
  std::map<unsigned, SlotTotals> totals_ ABSL_GUARDED_BY(mu_);
  // The cache server's own counters as last seen, per namespace and
  // counter, to add only what is new (and all of it after a restart).
  std::map<std::string, std::vector<uint64_t>> cache_seen_ ABSL_GUARDED_BY(mu_);
};

// Maps a worker's histogram (`bounds`, `counts`: HeartbeatFigures) onto
// `onto` (plus one bucket past its last bound): each bucket goes into the
// first of `onto` at or above its own bound. Nullopt if the histogram breaks
// LatencyHistogram's rules.
std::optional<std::vector<double>> MapLatencyBuckets(
    const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
    const std::vector<double>& onto);

// The latency under which a fraction `q` of the requests in `buckets` (not
// cumulative, over `bounds` plus one) fell, interpolated within its bucket
// as PromQL's histogram_quantile does; 0 without requests.
double BucketQuantile(double q, const std::vector<double>& bounds,
                      const std::vector<double>& buckets);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_CLUSTER_METRICS_H_
