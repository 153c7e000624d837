#include "master/internal/cluster_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/version.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace cluster2 {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

namespace {

constexpr const char* kWorkerStates[] = {
    "starting", "ready", "paused", "draining", "exited", "failed", "debugging"};

Labels SlotLabels(unsigned slot, const std::string& group) {
  return {{"slot", absl::StrCat(slot)}, {"group", group}};
}

// Adds what `value` grew by since `*seen` to `counter`; a value below the
// last one means its source started again from zero (a new process, a
// restarted cache server): all of it is new.
void AddGrowth(Counter& counter, double value, double* seen) {
  counter.Increment(value >= *seen ? value - *seen : value);
  *seen = value;
}

template <typename Builder>
auto& Declare(Builder builder, prometheus::Registry* registry,
              const Labels& constant, const char* name, const char* help) {
  return builder.Name(name).Help(help).Labels(constant).Register(*registry);
}

}  // namespace

// The one place every metric is declared: its name, type and help.
class ClusterMetrics::Families {
 public:
  explicit Families(const std::string& cluster)
      : registry(std::make_shared<prometheus::Registry>()),
        constant{{"cluster", cluster}} {}

  std::shared_ptr<prometheus::Registry> registry;
  const Labels constant;

  // Cluster.
  Family<Gauge>& info =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_info",
              "1; the master's version and connection balance as labels.");
  Family<Gauge>& workers =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_workers",
              "Worker processes and empty slots, by state.");
  Family<Gauge>& workers_desired =
      Declare(BuildGauge(), registry.get(), constant,
              "cluster2_workers_desired", "The configured number of workers.");
  Family<Gauge>& worker_max_rss = Declare(
      BuildGauge(), registry.get(), constant,
      "cluster2_worker_max_resident_memory_bytes",
      "recycle.maxRssBytes: a worker above it is recycled (0 = no limit).");
  Family<Gauge>& debug_open = Declare(
      BuildGauge(), registry.get(), constant, "cluster2_debug_session_open",
      "1 while a debug session (cluster2ctl debug) is open.");
  Family<Gauge>& ecv_up =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_ecv_up",
              "1 when the ECV tells load balancers to send traffic.");
  Family<Gauge>& ecv_state =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_ecv_state",
              "The ECV state (1 for the current one).");
  Family<Counter>& events_routed =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_events_routed_total", "Events routed by the master.");
  Family<Counter>& event_deliveries = Declare(
      BuildCounter(), registry.get(), constant,
      "cluster2_event_deliveries_total", "Deliveries of events to processes.");
  Family<Counter>& events_refused = Declare(
      BuildCounter(), registry.get(), constant, "cluster2_events_refused_total",
      "Events refused (bad name or size).");
  Family<Counter>& bridge_events = Declare(
      BuildCounter(), registry.get(), constant,
      "cluster2_event_bridge_events_total",
      "Events of the emitter bridge, by what happened: sent (appended to the "
      "Redis stream), received (read from it, this host's included), "
      "repeated (a retried append, skipped), dropped (queued too long while "
      "Redis was away).");
  double bridge_seen[4] = {0, 0, 0, 0};
  Family<Gauge>& status_registrations = Declare(
      BuildGauge(), registry.get(), constant, "cluster2_status_registrations",
      "Processes that registered each status name.");

  // Per slot: every process the slot ran.
  Family<Histogram>& request_duration = Declare(
      BuildHistogram(), registry.get(), constant,
      "cluster2_worker_request_duration_seconds",
      "Request latency the slot's workers reported in their heartbeats.");
  Family<Counter>& requests =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_worker_requests_total",
              "Requests the slot's workers reported as completed.");
  Family<Counter>& cpu = Declare(BuildCounter(), registry.get(), constant,
                                 "cluster2_worker_cpu_seconds_total",
                                 "CPU time of the slot's worker processes.");
  Family<Counter>& restarts =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_worker_restarts_total",
              "Processes started in the slot after its first.");
  Family<Counter>& lifecycle =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_worker_lifecycle_events_total",
              "What happened to the slot's workers, by event (started, ready, "
              "replacing, recycled, scaled_down, exited, crashed, hung, "
              "start_timeout, session_lost, gave_up).");
  // Per slot: its current process.
  Family<Gauge>& rss = Declare(BuildGauge(), registry.get(), constant,
                               "cluster2_worker_resident_memory_bytes",
                               "Resident memory of the slot's current worker.");
  Family<Gauge>& fds = Declare(
      BuildGauge(), registry.get(), constant, "cluster2_worker_open_fds",
      "Open file descriptors of the slot's current worker.");
  Family<Gauge>& threads =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_worker_threads",
              "Threads of the slot's current worker.");
  Family<Gauge>& in_flight =
      Declare(BuildGauge(), registry.get(), constant,
              "cluster2_worker_requests_in_flight",
              "Requests the slot's current worker is serving.");
  Family<Gauge>& lag =
      Declare(BuildGauge(), registry.get(), constant,
              "cluster2_worker_heartbeat_lag_seconds",
              "How late the slot's current worker sent its last heartbeat.");
  Family<Gauge>& start_time =
      Declare(BuildGauge(), registry.get(), constant,
              "cluster2_worker_start_time_seconds",
              "When the slot's current worker started (Unix time).");

  // Cache.
  Family<Gauge>& cache_up = Declare(
      BuildGauge(), registry.get(), constant, "cluster2_cache_up",
      "1 when the cache server answered its health check in the last 3 s.");
  Family<Counter>& cache_restarts =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_cache_server_restarts_total",
              "Times the master restarted the cache server (it died or hung).");
  Family<Gauge>& cache_max_memory = Declare(
      BuildGauge(), registry.get(), constant, "cluster2_cache_max_memory_bytes",
      "cache.maxMemory: the cache's memory budget (0 = none).");
  Family<Counter>& cache_hits =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_cache_hits_total", "Reads that found a value.");
  Family<Counter>& cache_misses =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_cache_misses_total", "Plain reads that found nothing.");
  Family<Counter>& cache_loads = Declare(
      BuildCounter(), registry.get(), constant, "cluster2_cache_loads_total",
      "Get-or-load leases granted (one loader run each).");
  Family<Counter>& cache_load_errors =
      Declare(BuildCounter(), registry.get(), constant,
              "cluster2_cache_load_errors_total",
              "Loads that failed (parked callers told the error).");
  Family<Gauge>& cache_keys = Declare(BuildGauge(), registry.get(), constant,
                                      "cluster2_cache_keys", "Keys held.");
  Family<Gauge>& cache_bytes =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_cache_bytes",
              "Bytes of keys and values held (plus a fixed overhead per key).");
  Family<Gauge>& cache_waiters =
      Declare(BuildGauge(), registry.get(), constant, "cluster2_cache_waiters",
              "Get-or-load calls parked on a lease now.");

  // The per-process gauges of each slot's current process, to remove them
  // when the slot has none.
  struct SlotGauges {
    Labels labels;
    Gauge* rss;
    Gauge* fds;
    Gauge* threads;
    Gauge* in_flight;
    Gauge* lag;
    Gauge* start_time;
  };
  std::map<unsigned, SlotGauges> slot_gauges;
  // The cache figures' source counters as last seen, and the status names
  // and namespaces exported, to remove the ones that went.
  double cache_restarts_seen = 0;
  double events_seen[3] = {0, 0, 0};
  std::set<std::string> status_names;
  std::set<std::string> namespaces;
};

const std::vector<double>& ClusterMetrics::LatencyBounds() {
  static const std::vector<double> bounds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return bounds;
}

ClusterMetrics::ClusterMetrics(const std::string& cluster,
                               const std::string& balance)
    : families_(std::make_unique<Families>(cluster)) {
  families_->info.Add({{"version", kCluster2Version}, {"balance", balance}})
      .Set(1);
}

ClusterMetrics::~ClusterMetrics() = default;

std::optional<std::vector<double>> MapLatencyBuckets(
    const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
    const std::vector<double>& onto) {
  if (counts.size() != bounds.size() + 1) return std::nullopt;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      return std::nullopt;
  }
  std::vector<double> mapped(onto.size() + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) {
    size_t target = onto.size();  // past the last bound
    if (i < bounds.size()) {
      // The first of ours at or above theirs (a hair of tolerance for
      // bounds printed in decimal by another language).
      target =
          std::lower_bound(onto.begin(), onto.end(), bounds[i] * (1 - 1e-9)) -
          onto.begin();
    }
    mapped[target] += static_cast<double>(counts[i]);
  }
  return mapped;
}

double BucketQuantile(double q, const std::vector<double>& bounds,
                      const std::vector<double>& buckets) {
  double total = 0;
  for (double count : buckets) total += count;
  if (total <= 0) return 0;
  const double rank = q * total;
  double below = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (below + buckets[i] >= rank && buckets[i] > 0) {
      // Past the last bound: the last bound, as histogram_quantile says.
      if (i >= bounds.size()) return bounds.empty() ? 0 : bounds.back();
      const double low = i == 0 ? 0 : bounds[i - 1];
      return low + (bounds[i] - low) * (rank - below) / buckets[i];
    }
    below += buckets[i];
  }
  return bounds.empty() ? 0 : bounds.back();
}

void ClusterMetrics::OnWorkerEvent(const WorkerEvent& event) {
  // A debug session's process is out of the slots (a fresh one's id is
  // past them): cluster2_debug_session_open tells of it.
  if (event.kind == WorkerEvent::Kind::kDebugOpened) return;
  absl::MutexLock lock(&mu_);
  Labels labels = SlotLabels(event.slot, event.group);
  if (event.kind == WorkerEvent::Kind::kStarted && !event.detail.empty()) {
    families_->restarts.Add(labels).Increment();  // "restart N"
  } else if (event.kind == WorkerEvent::Kind::kStarted) {
    families_->restarts.Add(labels);  // the series exists from the start
  }
  labels.emplace("event", std::string(WorkerEventName(event.kind)));
  families_->lifecycle.Add(labels).Increment();
}

void ClusterMetrics::OnHeartbeat(unsigned slot, const std::string& group,
                                 pid_t pid, bool, const HeartbeatFigures& b) {
  absl::MutexLock lock(&mu_);
  const Labels labels = SlotLabels(slot, group);
  LastBeat& last = last_beats_[pid];
  SlotTotals& totals = totals_[slot];
  totals.group = group;
  const std::vector<double>& bounds = LatencyBounds();
  if (totals.latency_buckets.empty())
    totals.latency_buckets.assign(bounds.size() + 1, 0);

  double requests = static_cast<double>(b.requests_total);
  totals.requests +=
      requests >= last.requests ? requests - last.requests : requests;
  AddGrowth(families_->requests.Add(labels), requests, &last.requests);
  double cpu = absl::ToDoubleSeconds(b.cpu_time);
  totals.cpu_seconds += cpu >= last.cpu_seconds ? cpu - last.cpu_seconds : cpu;
  AddGrowth(families_->cpu.Add(labels), cpu, &last.cpu_seconds);

  if (b.latency_counts.empty()) return;
  std::optional<std::vector<double>> buckets =
      MapLatencyBuckets(b.latency_bounds, b.latency_counts, bounds);
  if (!buckets) {
    if (!last.bad_histogram_logged) {
      LogWarning(absl::StrCat("worker ", slot, " pid ", pid,
                              ": latency histogram ignored (bounds must "
                              "increase and counts be one more)"));
      last.bad_histogram_logged = true;
    }
    return;
  }
  // Totals since the process started: the growth since its last beat is
  // what is new (all of it for a new process, or one that went back).
  bool went_back = last.buckets.size() != buckets->size();
  for (size_t i = 0; !went_back && i < buckets->size(); ++i)
    went_back = (*buckets)[i] < last.buckets[i];
  std::vector<double> increments = *buckets;
  double sum = b.latency_sum_seconds;
  if (!went_back) {
    for (size_t i = 0; i < increments.size(); ++i)
      increments[i] -= last.buckets[i];
    sum = std::max(0.0, sum - last.latency_sum);
  }
  for (size_t i = 0; i < increments.size(); ++i)
    totals.latency_buckets[i] += increments[i];
  families_->request_duration.Add(labels, bounds)
      .ObserveMultiple(increments, sum);
  last.buckets = *std::move(buckets);
  last.latency_sum = b.latency_sum_seconds;
}

std::map<unsigned, SlotTotals> ClusterMetrics::Totals() const {
  absl::MutexLock lock(&mu_);
  return totals_;
}

void ClusterMetrics::UpdateWorkerGauges(const MetricsSnapshot& snapshot) {
  Families& f = *families_;
  std::map<std::string, int> by_state;
  for (const char* state : kWorkerStates) by_state[state] = 0;
  std::set<pid_t> alive;
  std::set<unsigned> with_process;
  for (const WorkerSnapshot& worker : snapshot.workers) {
    ++by_state[std::string(WorkerStateName(worker.state))];
    if (worker.pid != 0) alive.insert(worker.pid);
    // Each slot's current process comes first in Workers(); successors
    // and draining processes share its id and do not set its gauges.
    if (worker.state == WorkerState::kDebugging || worker.pid == 0 ||
        !worker.heartbeat || !with_process.insert(worker.id).second) {
      continue;
    }
    auto it = f.slot_gauges.find(worker.id);
    Labels labels = SlotLabels(worker.id, worker.group);
    if (it != f.slot_gauges.end() && it->second.labels != labels) {
      for (auto* family :
           {&f.rss, &f.fds, &f.threads, &f.in_flight, &f.lag, &f.start_time}) {
        family->Remove(&family->Add(it->second.labels));
      }
      f.slot_gauges.erase(it);
      it = f.slot_gauges.end();
    }
    if (it == f.slot_gauges.end()) {
      Families::SlotGauges gauges{labels,
                                  &f.rss.Add(labels),
                                  &f.fds.Add(labels),
                                  &f.threads.Add(labels),
                                  &f.in_flight.Add(labels),
                                  &f.lag.Add(labels),
                                  &f.start_time.Add(labels)};
      it = f.slot_gauges.emplace(worker.id, gauges).first;
    }
    const HeartbeatFigures& beat = *worker.heartbeat;
    it->second.rss->Set(static_cast<double>(beat.rss_bytes));
    it->second.fds->Set(beat.open_fds);
    it->second.threads->Set(beat.threads);
    it->second.in_flight->Set(beat.requests_in_flight);
    it->second.lag->Set(absl::ToDoubleSeconds(beat.lag));
    it->second.start_time->Set(
        absl::ToDoubleSeconds(worker.started_at - absl::UnixEpoch()));
  }
  for (auto it = f.slot_gauges.begin(); it != f.slot_gauges.end();) {
    if (with_process.count(it->first) > 0) {
      ++it;
      continue;
    }
    f.rss.Remove(it->second.rss);
    f.fds.Remove(it->second.fds);
    f.threads.Remove(it->second.threads);
    f.in_flight.Remove(it->second.in_flight);
    f.lag.Remove(it->second.lag);
    f.start_time.Remove(it->second.start_time);
    it = f.slot_gauges.erase(it);
  }
  for (const auto& [state, count] : by_state)
    f.workers.Add({{"state", state}}).Set(count);
  f.debug_open.Add({}).Set(by_state["debugging"] > 0 ? 1 : 0);
  // Processes that are gone send no more beats.
  for (auto it = last_beats_.begin(); it != last_beats_.end();) {
    it = alive.count(it->first) > 0 ? std::next(it) : last_beats_.erase(it);
  }
}

void ClusterMetrics::UpdateCache(const MetricsSnapshot& snapshot) {
  Families& f = *families_;
  if (snapshot.cache_server_restarts) {
    AddGrowth(f.cache_restarts.Add({}), *snapshot.cache_server_restarts,
              &f.cache_restarts_seen);
  }
  if (!snapshot.cache_max_memory_bytes) return;
  f.cache_max_memory.Add({}).Set(
      static_cast<double>(*snapshot.cache_max_memory_bytes));
  // The probe asks every second: older figures mean the server does not
  // answer. While it does not, the namespaces' series keep their values.
  constexpr absl::Duration kFresh = absl::Seconds(3);
  const bool up = snapshot.cache && snapshot.now - snapshot.cache->at <= kFresh;
  f.cache_up.Add({}).Set(up ? 1 : 0);
  if (!up) return;
  std::set<std::string> present;
  for (const v1::NamespaceStats& space : snapshot.cache->stats.namespaces()) {
    const std::string& name = space.namespace_();
    present.insert(name);
    f.namespaces.insert(name);
    const Labels labels = {{"namespace", name}};
    std::vector<uint64_t>& seen = cache_seen_[name];
    seen.resize(4, 0);
    const uint64_t now[4] = {space.hits(), space.misses(), space.loads(),
                             space.errors()};
    Family<Counter>* counters[4] = {&f.cache_hits, &f.cache_misses,
                                    &f.cache_loads, &f.cache_load_errors};
    for (int i = 0; i < 4; ++i) {
      double last = static_cast<double>(seen[i]);
      AddGrowth(counters[i]->Add(labels), static_cast<double>(now[i]), &last);
      seen[i] = now[i];
    }
    f.cache_keys.Add(labels).Set(static_cast<double>(space.keys()));
    f.cache_bytes.Add(labels).Set(static_cast<double>(space.bytes()));
    f.cache_waiters.Add(labels).Set(static_cast<double>(space.waiting()));
  }
  // A namespace the server no longer has (dropped) goes.
  for (auto it = f.namespaces.begin(); it != f.namespaces.end();) {
    if (present.count(*it) > 0) {
      ++it;
      continue;
    }
    const Labels labels = {{"namespace", *it}};
    for (Family<Counter>* family : {&f.cache_hits, &f.cache_misses,
                                    &f.cache_loads, &f.cache_load_errors}) {
      family->Remove(&family->Add(labels));
    }
    for (Family<Gauge>* family :
         {&f.cache_keys, &f.cache_bytes, &f.cache_waiters}) {
      family->Remove(&family->Add(labels));
    }
    cache_seen_.erase(*it);
    it = f.namespaces.erase(it);
  }
}

std::string ClusterMetrics::Render(const MetricsSnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  Families& f = *families_;
  UpdateWorkerGauges(snapshot);
  f.workers_desired.Add({}).Set(snapshot.desired_workers);
  f.worker_max_rss.Add({}).Set(
      static_cast<double>(snapshot.worker_max_rss_bytes));
  f.ecv_up.Add({}).Set(snapshot.ecv.health == Ecv::Health::kUp ? 1 : 0);
  for (Ecv::Health health :
       {Ecv::Health::kUp, Ecv::Health::kMarkedDown, Ecv::Health::kDown}) {
    std::string name = health == Ecv::Health::kMarkedDown
                           ? "marked_down"
                           : std::string(Ecv::HealthName(health));
    f.ecv_state.Add({{"state", name}})
        .Set(snapshot.ecv.health == health ? 1 : 0);
  }
  AddGrowth(f.events_routed.Add({}), snapshot.events.routed, &f.events_seen[0]);
  AddGrowth(f.event_deliveries.Add({}), snapshot.events.delivered,
            &f.events_seen[1]);
  AddGrowth(f.events_refused.Add({}), snapshot.events.refused,
            &f.events_seen[2]);
  for (const auto& [name, count] : snapshot.statuses) {
    f.status_registrations.Add({{"name", name}}).Set(count);
    f.status_names.insert(name);
  }
  for (auto it = f.status_names.begin(); it != f.status_names.end();) {
    if (snapshot.statuses.count(*it) > 0) {
      ++it;
      continue;
    }
    f.status_registrations.Remove(&f.status_registrations.Add({{"name", *it}}));
    it = f.status_names.erase(it);
  }
  if (snapshot.bridge) {
    const uint64_t values[4] = {
        snapshot.bridge->sent, snapshot.bridge->received,
        snapshot.bridge->repeated, snapshot.bridge->dropped};
    const char* names[4] = {"sent", "received", "repeated", "dropped"};
    for (int i = 0; i < 4; ++i) {
      AddGrowth(f.bridge_events.Add({{"direction", names[i]}}),
                static_cast<double>(values[i]), &f.bridge_seen[i]);
    }
  }
  UpdateCache(snapshot);
  return prometheus::TextSerializer().Serialize(f.registry->Collect());
}

}  // namespace cluster2
