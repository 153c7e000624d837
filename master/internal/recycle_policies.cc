#include "master/internal/recycle_policies.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cluster2 {
namespace {

std::string Mebibytes(uint64_t bytes) {
  return absl::StrFormat("%.0fMiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

double JitterFactor(pid_t pid, double jitter) {
  // splitmix64 of the pid: a fixed, well-spread draw per worker.
  uint64_t x = static_cast<uint64_t>(pid) + 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  double unit =
      static_cast<double>(x >> 11) / static_cast<double>(1ULL << 53);  // [0, 1)
  return 1.0 + jitter * (2.0 * unit - 1.0);
}

std::optional<std::string> MaxAgePolicy::Evaluate(const WorkerView& worker) {
  absl::Duration limit = max_age_ * JitterFactor(worker.pid, jitter_);
  absl::Duration age = worker.now - worker.started_at;
  if (age < limit) return std::nullopt;
  return absl::StrCat(
      "max_age: ", absl::FormatDuration(absl::Trunc(age, absl::Seconds(1))),
      " >= ", absl::FormatDuration(absl::Trunc(limit, absl::Seconds(1))));
}

std::optional<std::string> MaxRequestsPolicy::Evaluate(
    const WorkerView& worker) {
  auto limit = static_cast<uint64_t>(static_cast<double>(max_requests_) *
                                     JitterFactor(worker.pid, jitter_));
  if (worker.heartbeat.requests_total < limit) return std::nullopt;
  return absl::StrCat("max_requests: ", worker.heartbeat.requests_total,
                      " >= ", limit);
}

std::optional<std::string> MaxRssPolicy::Evaluate(const WorkerView& worker) {
  if (worker.heartbeat.rss_bytes <= max_rss_bytes_) return std::nullopt;
  return absl::StrCat("max_rss: ", Mebibytes(worker.heartbeat.rss_bytes), " > ",
                      Mebibytes(max_rss_bytes_));
}

std::optional<std::string> DegradationPolicy::Evaluate(
    const WorkerView& worker) {
  History& history = history_[worker.pid];
  std::deque<Sample>& samples = history.samples;
  samples.push_back({worker.now, worker.heartbeat.requests_total,
                     worker.heartbeat.cpu_time, worker.heartbeat.rss_bytes});
  if (samples.size() < 2) return std::nullopt;
  const Sample& previous = samples[samples.size() - 2];
  const Sample& latest = samples.back();
  double seconds = absl::ToDoubleSeconds(latest.at - previous.at);
  if (seconds <= 0 || latest.requests < previous.requests) return std::nullopt;
  double rate =
      static_cast<double>(latest.requests - previous.requests) / seconds;
  double cpu = absl::ToDoubleSeconds(latest.cpu - previous.cpu) / seconds;
  if (rate > history.peak_rate) {
    history.peak_rate = rate;
    history.cpu_at_peak = cpu;
  }
  while (samples.size() > window_ + 1) samples.pop_front();
  if (samples.size() < window_ + 1 || history.peak_rate <= 0)
    return std::nullopt;
  bool slow = rate < history.peak_rate * (1.0 - margin_);
  bool busy = cpu >= history.cpu_at_peak * 0.9;  // as much CPU for less work
  bool growing = true;
  for (size_t i = 1; i < samples.size(); ++i) {
    growing = growing && samples[i].rss >= samples[i - 1].rss;
  }
  growing = growing && samples.back().rss > samples.front().rss;
  if (!slow || !busy || !growing) return std::nullopt;
  return absl::StrFormat(
      "degraded: %.0f req/s, peak %.0f, cpu %.0f%%, rss %s -> %s", rate,
      history.peak_rate, cpu * 100, Mebibytes(samples.front().rss),
      Mebibytes(samples.back().rss));
}

std::vector<std::shared_ptr<RecyclePolicy>> PoliciesFromConfig(
    const v1::ClusterConfig& config) {
  std::vector<std::shared_ptr<RecyclePolicy>> policies;
  const v1::ClusterConfig::Recycle& recycle = config.recycle();
  double jitter = recycle.jitter_percent() / 100.0;
  if (config.max_age() > 0) {
    policies.push_back(std::make_shared<MaxAgePolicy>(
        absl::Seconds(config.max_age()), jitter));
  }
  if (recycle.max_requests() > 0) {
    policies.push_back(
        std::make_shared<MaxRequestsPolicy>(recycle.max_requests(), jitter));
  }
  if (recycle.max_rss_bytes() > 0) {
    policies.push_back(std::make_shared<MaxRssPolicy>(recycle.max_rss_bytes()));
  }
  if (recycle.degradation_margin_percent() > 0) {
    policies.push_back(std::make_shared<DegradationPolicy>(
        recycle.degradation_margin_percent() / 100.0,
        recycle.degradation_window()));
  }
  return policies;
}

}  // namespace cluster2
