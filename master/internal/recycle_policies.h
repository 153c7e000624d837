// The built-in RecyclePolicy implementations (see master/recycle_policy.h)
// and how the configuration selects them.
//
// Thread-compatible: the supervisor calls a policy under its mutex.
#ifndef CLUSTER2_MASTER_INTERNAL_RECYCLE_POLICIES_H_
#define CLUSTER2_MASTER_INTERNAL_RECYCLE_POLICIES_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "cluster2/v1/config.pb.h"
#include "master/recycle_policy.h"

namespace cluster2 {

// A factor in [1 - jitter, 1 + jitter], fixed for a given pid: each worker
// draws its own limit, so workers started together age apart.
double JitterFactor(pid_t pid, double jitter);

// Recycles a worker older than max_age (+- jitter).
class MaxAgePolicy final : public RecyclePolicy {
 public:
  MaxAgePolicy(absl::Duration max_age, double jitter)
      : max_age_(max_age), jitter_(jitter) {}
  std::optional<std::string> Evaluate(const WorkerView& worker) override;

 private:
  const absl::Duration max_age_;
  const double jitter_;
};

// Recycles a worker that served more than max_requests (+- jitter).
class MaxRequestsPolicy final : public RecyclePolicy {
 public:
  MaxRequestsPolicy(uint64_t max_requests, double jitter)
      : max_requests_(max_requests), jitter_(jitter) {}
  std::optional<std::string> Evaluate(const WorkerView& worker) override;

 private:
  const uint64_t max_requests_;
  const double jitter_;
};

// Recycles a worker whose resident set exceeds max_rss_bytes.
class MaxRssPolicy final : public RecyclePolicy {
 public:
  explicit MaxRssPolicy(uint64_t max_rss_bytes)
      : max_rss_bytes_(max_rss_bytes) {}
  std::optional<std::string> Evaluate(const WorkerView& worker) override;

 private:
  const uint64_t max_rss_bytes_;
};

// The original's assertBadGC, on heartbeats: over the last `window` beats,
// throughput (requests per second) is under its peak by more than `margin`
// while CPU use per second has not fallen below what it was at the peak and
// RSS only grew. An idle worker (less traffic, less CPU) is never flagged;
// a worker burning as much CPU for less work while growing is.
class DegradationPolicy final : public RecyclePolicy {
 public:
  DegradationPolicy(double margin, unsigned window)
      : margin_(margin), window_(window) {}
  std::optional<std::string> Evaluate(const WorkerView& worker) override;
  void Forget(pid_t pid) override { history_.erase(pid); }

 private:
  struct Sample {
    absl::Time at;
    uint64_t requests = 0;
    absl::Duration cpu;
    uint64_t rss = 0;
  };
  struct History {
    std::deque<Sample> samples;
    double peak_rate = 0;    // requests per second
    double cpu_at_peak = 0;  // CPU seconds per second then
  };
  const double margin_;
  const unsigned window_;
  std::map<pid_t, History> history_;
};

// The policies `config` turns on (max age from `maxAge`, the others from
// `recycle`), in evaluation order.
std::vector<std::shared_ptr<RecyclePolicy>> PoliciesFromConfig(
    const v1::ClusterConfig& config);

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_RECYCLE_POLICIES_H_
