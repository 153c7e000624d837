#include "master/internal/monitor_sampler.h"

#include <pthread.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/proto_time.h"

namespace cluster2 {

MonitorSampler::MonitorSampler(Sources sources)
    : sources_(std::move(sources)), thread_([this] { Loop(); }) {}

MonitorSampler::~MonitorSampler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void MonitorSampler::Loop() {
  pthread_setname_np(pthread_self(), "monitor-sample");
  last_at_ = absl::Now();
  last_totals_ = sources_.metrics->Totals();
  for (;;) {
    v1::MonitorSample sample = Sample(absl::Now());
    bool watched;
    {
      absl::MutexLock lock(&mu_);
      samples_.push_back(std::move(sample));
      while (samples_.size() > kSamples) samples_.pop_front();
      watched = absl::Now() < watched_until_;
    }
    if (watched) ReadStatuses();
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), kInterval);
    if (stopping_) return;
  }
}

v1::MonitorSample MonitorSampler::Sample(absl::Time now) {
  v1::MonitorSample sample;
  ToProto(now, sample.mutable_at());
  const double seconds = std::max(1e-3, absl::ToDoubleSeconds(now - last_at_));
  last_at_ = now;
  std::map<unsigned, SlotTotals> totals = sources_.metrics->Totals();
  const std::vector<double>& bounds = ClusterMetrics::LatencyBounds();
  std::set<unsigned> seen;
  for (const WorkerSnapshot& worker : sources_.supervisor->Workers()) {
    // Each slot's current process comes first.
    if (worker.state == WorkerState::kDebugging || worker.pid == 0 ||
        !seen.insert(worker.id).second) {
      continue;
    }
    v1::MonitorSlotSample* slot = sample.add_slots();
    slot->set_slot(worker.id);
    slot->set_group(worker.group);
    if (worker.heartbeat)
      slot->set_rss_bytes(static_cast<double>(worker.heartbeat->rss_bytes));
    auto now_totals = totals.find(worker.id);
    if (now_totals == totals.end()) continue;
    const SlotTotals& at = now_totals->second;
    SlotTotals before = last_totals_.count(worker.id) > 0
                            ? last_totals_[worker.id]
                            : SlotTotals{};
    slot->set_requests_per_second(std::max(0.0, at.requests - before.requests) /
                                  seconds);
    slot->set_cpu_ratio(std::max(0.0, at.cpu_seconds - before.cpu_seconds) /
                        seconds);
    std::vector<double> period = at.latency_buckets;
    for (size_t i = 0; i < period.size() && i < before.latency_buckets.size();
         ++i) {
      period[i] = std::max(0.0, period[i] - before.latency_buckets[i]);
    }
    slot->set_latency_p50_seconds(BucketQuantile(0.5, bounds, period));
    slot->set_latency_p99_seconds(BucketQuantile(0.99, bounds, period));
  }
  last_totals_ = std::move(totals);

  std::optional<CacheStatsSample> cache;
  if (sources_.cache_stats) cache = sources_.cache_stats();
  if (cache) {
    std::map<std::string, v1::NamespaceStats> next;
    for (const v1::NamespaceStats& space : cache->stats.namespaces()) {
      v1::MonitorNamespaceSample* out = sample.add_namespaces();
      out->set_namespace_(space.namespace_());
      out->set_keys(static_cast<double>(space.keys()));
      out->set_bytes(static_cast<double>(space.bytes()));
      const v1::NamespaceStats& before = last_cache_[space.namespace_()];
      auto grown = [](uint64_t now, uint64_t then) {
        return static_cast<double>(now >= then ? now - then : now);
      };
      double hits = grown(space.hits(), before.hits());
      double reads = hits + grown(space.misses(), before.misses()) +
                     grown(space.loads(), before.loads());
      out->set_hit_ratio(reads > 0 ? hits / reads : -1);
      next[space.namespace_()] = space;
    }
    last_cache_ = std::move(next);
  }
  return sample;
}

void MonitorSampler::ReadStatuses() {
  std::map<std::string, v1::MonitorStatus> read;
  for (const std::string& name : sources_.registry->Names()) {
    v1::MonitorStatus& status = read[name];
    status.set_name(name);
    absl::StatusOr<std::vector<StatusEntryValue>> entries =
        sources_.registry->Get(name, kStatusTimeout);
    ToProto(absl::Now(), status.mutable_sampled_at());
    if (!entries.ok()) continue;  // unregistered in between
    for (const StatusEntryValue& entry : *entries) {
      v1::MonitorStatusValue* value = status.add_values();
      value->set_pid(entry.pid);
      value->set_slot(entry.worker_id ? static_cast<int32_t>(*entry.worker_id)
                                      : -1);
      *value->mutable_value() = entry.value;
      value->set_error(entry.error);
    }
  }
  absl::MutexLock lock(&mu_);
  statuses_ = std::move(read);
}

v1::MonitorHistory MonitorSampler::History() const {
  v1::MonitorHistory history;
  history.set_interval_seconds(absl::ToDoubleSeconds(kInterval));
  absl::MutexLock lock(&mu_);
  for (const v1::MonitorSample& sample : samples_)
    *history.add_samples() = sample;
  return history;
}

std::optional<v1::MonitorSample> MonitorSampler::Latest() const {
  absl::MutexLock lock(&mu_);
  if (samples_.empty()) return std::nullopt;
  return samples_.back();
}

std::vector<v1::MonitorStatus> MonitorSampler::Statuses() const {
  std::vector<v1::MonitorStatus> statuses;
  std::map<std::string, v1::MonitorStatus> read;
  {
    absl::MutexLock lock(&mu_);
    read = statuses_;
  }
  for (const std::string& name : sources_.registry->Names()) {
    auto it = read.find(name);
    if (it != read.end()) {
      statuses.push_back(it->second);
    } else {
      statuses.emplace_back().set_name(name);
    }
  }
  return statuses;
}

void MonitorSampler::Watched() {
  absl::MutexLock lock(&mu_);
  watched_until_ = absl::Now() + kWatchedFor;
}

}  // namespace cluster2
