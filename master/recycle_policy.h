// RecyclePolicy: decides, from a worker's heartbeats, that it should be
// replaced before it fails (it grew old, slow or leaky).
//
// The master evaluates every policy on each heartbeat of a ready worker. A
// policy that answers with a reason gets the worker replaced the safe way (a
// successor is ready before the old worker drains), within the cluster's
// recycle budget (so a bad policy cannot churn every worker at once), and
// the reason is logged and shown by cluster2ctl.
//
// Built-in policies come from the configuration (max age, max requests, max
// rss, degradation); an embedding app adds its own through
// cluster2::ListenOptions::recycle_policies.
//
// Thread-safety: the master calls a policy from one thread at a time.
#ifndef CLUSTER2_MASTER_RECYCLE_POLICY_H_
#define CLUSTER2_MASTER_RECYCLE_POLICY_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cluster2 {

// What a worker reports with each heartbeat.
struct HeartbeatFigures {
  uint64_t rss_bytes = 0;
  absl::Duration cpu_time;
  uint32_t open_fds = 0;
  uint32_t threads = 0;
  absl::Duration uptime;
  uint64_t requests_total = 0;
  uint32_t requests_in_flight = 0;
  absl::Duration latency_p50;
  absl::Duration latency_p99;
  absl::Duration lag;
  // When the worker sent it, by its clock (unset if it did not say).
  std::optional<absl::Time> sent_at;
  // The latency histogram since the process started (Heartbeat.latency):
  // latency_counts[i] requests took at most latency_bounds[i] seconds (and
  // more than the bound before); one count more than bounds. Empty: none
  // reported.
  std::vector<double> latency_bounds;
  std::vector<uint64_t> latency_counts;
  double latency_sum_seconds = 0;
};

// One ready worker and its latest heartbeat, as a policy sees it.
struct WorkerView {
  unsigned id = 0;  // slot
  pid_t pid = 0;
  absl::Time started_at;  // master's clock
  absl::Time now;         // master's clock, at this evaluation
  HeartbeatFigures heartbeat;
};

class RecyclePolicy {
 public:
  virtual ~RecyclePolicy() = default;
  // A short reason ("max_age", "max_rss: 812MiB > 512MiB") if the worker
  // should be recycled now, else nullopt.
  virtual std::optional<std::string> Evaluate(const WorkerView& worker) = 0;
  // The worker `pid` is gone: drop whatever the policy kept about it.
  virtual void Forget(pid_t pid) { (void)pid; }
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_RECYCLE_POLICY_H_
