// MonitorSampler: the figures the monitor page draws its charts from, taken
// every 2 s for the last 5 minutes (requests/s, latency p50/p99, RSS and CPU
// per slot; hit ratio, keys and bytes per cache namespace), and the values
// of every status while someone watches the page.
//
// One thread, "monitor-sample". It reads the supervisor, the metrics' slot
// totals and the cache probe's latest answer (none of them blocks); status
// values are asked of their registrants (StatusRegistry::Get, at most
// kStatusTimeout each) only within kWatchedFor of the page's last request.
//
// Thread-safe.
#ifndef CLUSTER2_MASTER_INTERNAL_MONITOR_SAMPLER_H_
#define CLUSTER2_MASTER_INTERNAL_MONITOR_SAMPLER_H_

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster2/v1/monitor.pb.h"
#include "master/internal/cache_health_probe.h"
#include "master/internal/cluster_metrics.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

class MonitorSampler {
 public:
  static constexpr absl::Duration kInterval = absl::Seconds(2);
  static constexpr size_t kSamples = 150;  // 5 minutes
  static constexpr absl::Duration kWatchedFor = absl::Seconds(30);
  static constexpr absl::Duration kStatusTimeout = absl::Seconds(1);

  struct Sources {
    Supervisor* supervisor = nullptr;    // borrowed, required
    ClusterMetrics* metrics = nullptr;   // borrowed, required
    StatusRegistry* registry = nullptr;  // borrowed, required
    // The cache probe's latest answer; null: no cache.
    std::function<std::optional<CacheStatsSample>()> cache_stats;
  };

  // Starts "monitor-sample", which takes a first sample at once.
  explicit MonitorSampler(Sources sources);
  // Stops and joins it.
  ~MonitorSampler();

  v1::MonitorHistory History() const ABSL_LOCKS_EXCLUDED(mu_);
  // The latest sample; unset before the first.
  std::optional<v1::MonitorSample> Latest() const ABSL_LOCKS_EXCLUDED(mu_);
  // Every registered status with its values as last read (names registered
  // since then come without values).
  std::vector<v1::MonitorStatus> Statuses() const ABSL_LOCKS_EXCLUDED(mu_);
  // The page was requested: read status values for the next kWatchedFor.
  void Watched() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  // One sample from the sources, against the previous totals.
  v1::MonitorSample Sample(absl::Time now);
  void ReadStatuses();

  const Sources sources_;
  // Only "monitor-sample" touches these.
  std::map<unsigned, SlotTotals> last_totals_;
  std::map<std::string, v1::NamespaceStats> last_cache_;
  absl::Time last_at_;

  mutable absl::Mutex mu_;
  std::deque<v1::MonitorSample> samples_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::MonitorStatus> statuses_ ABSL_GUARDED_BY(mu_);
  absl::Time watched_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started last
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_SAMPLER_H_
