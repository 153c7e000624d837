#include "master/internal/cluster_metrics.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// The samples of `text`: "name{labels}" -> value, failing on a repeat.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    std::string series(line.substr(0, space));
    EXPECT_EQ(samples.count(series), 0u) << "duplicate series " << series;
    samples[series] = std::stod(std::string(line.substr(space + 1)));
  }
  return samples;
}

double Sample(const std::string& text, const std::string& series) {
  auto samples = Samples(text);
  auto it = samples.find(series);
  EXPECT_NE(it, samples.end()) << series << " not in\n" << text;
  return it == samples.end() ? -1 : it->second;
}

WorkerSnapshot Ready(unsigned slot, pid_t pid, uint64_t rss) {
  WorkerSnapshot worker;
  worker.id = slot;
  worker.group = "web";
  worker.pid = pid;
  worker.state = WorkerState::kReady;
  worker.started_at = kNow - absl::Seconds(10);
  HeartbeatFigures beat;
  beat.rss_bytes = rss;
  worker.heartbeat = beat;
  return worker;
}

HeartbeatFigures Beat(uint64_t requests, std::vector<uint64_t> counts,
                      double sum) {
  HeartbeatFigures beat;
  beat.requests_total = requests;
  beat.cpu_time = absl::Seconds(requests);
  beat.latency_bounds = ClusterMetrics::LatencyBounds();
  beat.latency_counts = std::move(counts);
  beat.latency_sum_seconds = sum;
  return beat;
}

std::vector<uint64_t> Counts(std::map<size_t, uint64_t> at) {
  std::vector<uint64_t> counts(ClusterMetrics::LatencyBounds().size() + 1, 0);
  for (auto [index, count] : at) counts[index] = count;
  return counts;
}

MetricsSnapshot Snapshot(std::vector<WorkerSnapshot> workers) {
  MetricsSnapshot snapshot;
  snapshot.now = kNow;
  snapshot.workers = std::move(workers);
  snapshot.desired_workers = 2;
  snapshot.ecv.health = Ecv::Health::kUp;
  return snapshot;
}

const char kSlot0[] = "cluster=\"c\",group=\"web\",slot=\"0\"";

TEST(ClusterMetricsTest, InfoCarriesTheVersionAndEverySeriesTheCluster) {
  ClusterMetrics metrics("c", "even");
  std::string text = metrics.Render(Snapshot({Ready(0, 100, 5)}));
  EXPECT_THAT(text, HasSubstr("cluster2_info{cluster=\"c\",balance=\"even\","
                              "version=\"0."));
  for (const auto& [series, value] : Samples(text)) {
    EXPECT_THAT(series, HasSubstr("cluster=\"c\"")) << series;
    EXPECT_THAT(series, Not(HasSubstr("pid="))) << series;
  }
  EXPECT_EQ(Sample(text, "cluster2_worker_resident_memory_bytes{" +
                             std::string(kSlot0) + "}"),
            5);
  EXPECT_EQ(Sample(text, "cluster2_workers{cluster=\"c\",state=\"ready\"}"), 1);
  EXPECT_EQ(Sample(text, "cluster2_ecv_up{cluster=\"c\"}"), 1);
}

TEST(ClusterMetricsTest, SlotCountersAddUpEveryProcessOfTheSlot) {
  ClusterMetrics metrics("c", "shared");
  metrics.OnHeartbeat(0, "web", 100, true, Beat(10, Counts({{2, 10}}), 0.04));
  metrics.OnHeartbeat(0, "web", 100, true, Beat(15, Counts({{2, 15}}), 0.06));
  // A successor (new pid) starts from zero: its figures add up.
  metrics.OnHeartbeat(0, "web", 101, true, Beat(4, Counts({{5, 4}}), 0.2));
  std::string text = metrics.Render(Snapshot({Ready(0, 101, 5)}));
  const std::string labels = std::string("{") + kSlot0 + "}";
  EXPECT_EQ(Sample(text, "cluster2_worker_requests_total" + labels), 19);
  EXPECT_EQ(Sample(text, "cluster2_worker_cpu_seconds_total" + labels), 19);
  EXPECT_EQ(
      Sample(text, "cluster2_worker_request_duration_seconds_count" + labels),
      19);
  EXPECT_THAT(
      Sample(text, "cluster2_worker_request_duration_seconds_sum" + labels),
      DoubleNear(0.26, 1e-9));
  // Buckets are cumulative in the text format: le=0.005 holds the 15 of
  // bucket 2, le=0.05 the 4 more of bucket 5.
  EXPECT_EQ(Sample(text, "cluster2_worker_request_duration_seconds_bucket{" +
                             std::string(kSlot0) + ",le=\"0.005\"}"),
            15);
  EXPECT_EQ(Sample(text, "cluster2_worker_request_duration_seconds_bucket{" +
                             std::string(kSlot0) + ",le=\"0.05\"}"),
            19);
  SlotTotals totals = metrics.Totals().at(0);
  EXPECT_EQ(totals.requests, 19);
  EXPECT_EQ(totals.latency_buckets[2], 15);
  EXPECT_EQ(totals.latency_buckets[5], 4);
}

TEST(ClusterMetricsTest, ProcessGaugesFollowTheSlotsCurrentProcessOnly) {
  ClusterMetrics metrics("c", "shared");
  WorkerSnapshot successor = Ready(0, 101, 999);
  successor.state = WorkerState::kStarting;
  // Workers() lists the slot's current process first.
  std::string text = metrics.Render(Snapshot({Ready(0, 100, 5), successor}));
  EXPECT_EQ(Sample(text, "cluster2_worker_resident_memory_bytes{" +
                             std::string(kSlot0) + "}"),
            5);
  // A slot without a process has no process gauges; its counters stay.
  metrics.OnHeartbeat(0, "web", 100, true, Beat(3, {}, 0));
  WorkerSnapshot empty;
  empty.id = 0;
  empty.group = "web";
  empty.state = WorkerState::kExited;
  text = metrics.Render(Snapshot({empty}));
  EXPECT_THAT(text, Not(HasSubstr("cluster2_worker_resident_memory_bytes{")));
  EXPECT_EQ(Sample(text, "cluster2_worker_requests_total{" +
                             std::string(kSlot0) + "}"),
            3);
  EXPECT_EQ(Sample(text, "cluster2_workers{cluster=\"c\",state=\"exited\"}"),
            1);
}

TEST(ClusterMetricsTest, RestartsAndLifecycleEventsAreCountedPerSlot) {
  ClusterMetrics metrics("c", "shared");
  WorkerEvent event;
  event.at = kNow;
  event.slot = 1;
  event.group = "web";
  event.kind = WorkerEvent::Kind::kStarted;
  metrics.OnWorkerEvent(event);
  event.kind = WorkerEvent::Kind::kRecycled;
  event.detail = "maxRequests: 20 requests >= 20";
  metrics.OnWorkerEvent(event);
  event.kind = WorkerEvent::Kind::kStarted;
  event.detail = "restart 1";
  metrics.OnWorkerEvent(event);
  std::string text = metrics.Render(Snapshot({}));
  const std::string slot1 = "cluster=\"c\",group=\"web\",slot=\"1\"";
  EXPECT_EQ(Sample(text, "cluster2_worker_restarts_total{" + slot1 + "}"), 1);
  // The constant label first, then the others in order.
  const std::string series =
      "cluster2_worker_lifecycle_events_total{cluster=\"c\",event=";
  EXPECT_EQ(Sample(text, series + "\"started\",group=\"web\",slot=\"1\"}"), 2);
  EXPECT_EQ(Sample(text, series + "\"recycled\",group=\"web\",slot=\"1\"}"), 1);
}

TEST(ClusterMetricsTest, CacheCountersStayMonotonicAcrossAServerRestart) {
  ClusterMetrics metrics("c", "shared");
  MetricsSnapshot snapshot = Snapshot({});
  snapshot.cache_max_memory_bytes = 1000;
  snapshot.cache_server_restarts = 0;
  CacheStatsSample sample;
  sample.at = kNow;
  v1::NamespaceStats* space = sample.stats.add_namespaces();
  space->set_namespace_("ns");
  space->set_hits(7);
  space->set_keys(3);
  snapshot.cache = sample;
  std::string text = metrics.Render(snapshot);
  const std::string ns = "{cluster=\"c\",namespace=\"ns\"}";
  EXPECT_EQ(Sample(text, "cluster2_cache_hits_total" + ns), 7);
  EXPECT_EQ(Sample(text, "cluster2_cache_up{cluster=\"c\"}"), 1);
  // The server died: up 0, the namespace's series keep their values.
  snapshot.now = kNow + absl::Seconds(10);
  text = metrics.Render(snapshot);
  EXPECT_EQ(Sample(text, "cluster2_cache_up{cluster=\"c\"}"), 0);
  EXPECT_EQ(Sample(text, "cluster2_cache_hits_total" + ns), 7);
  // A new server counts from zero: what it counts is added.
  snapshot.cache_server_restarts = 1;
  snapshot.cache->at = snapshot.now;
  snapshot.cache->stats.mutable_namespaces(0)->set_hits(2);
  text = metrics.Render(snapshot);
  EXPECT_EQ(Sample(text, "cluster2_cache_hits_total" + ns), 9);
  EXPECT_EQ(Sample(text, "cluster2_cache_server_restarts_total{cluster=\"c\"}"),
            1);
  // A namespace the server no longer has goes.
  snapshot.cache->stats.clear_namespaces();
  text = metrics.Render(snapshot);
  EXPECT_THAT(text, Not(HasSubstr("namespace=\"ns\"")));
}

TEST(ClusterMetricsTest, ForeignBoundsAreMappedUpAndBrokenHistogramsIgnored) {
  const std::vector<double> ours = {0.01, 0.1, 1};
  // 0.005 -> 0.01, 0.05 -> 0.1, 0.1 -> 0.1 (equal), 2 -> past the last.
  EXPECT_THAT(*MapLatencyBuckets({0.005, 0.05, 0.1, 2}, {1, 2, 3, 4, 5}, ours),
              ElementsAre(1, 5, 0, 9));
  EXPECT_FALSE(MapLatencyBuckets({0.1, 0.05}, {1, 2, 3}, ours));  // order
  EXPECT_FALSE(MapLatencyBuckets({0.1}, {1}, ours));              // size
  ClusterMetrics metrics("c", "shared");
  HeartbeatFigures broken = Beat(5, {1, 2}, 1);
  metrics.OnHeartbeat(0, "web", 100, true, broken);
  std::string text = metrics.Render(Snapshot({Ready(0, 100, 5)}));
  EXPECT_THAT(text,
              Not(HasSubstr("cluster2_worker_request_duration_seconds_count")));
  EXPECT_EQ(Sample(text, "cluster2_worker_requests_total{" +
                             std::string(kSlot0) + "}"),
            5);
}

TEST(ClusterMetricsTest, BucketQuantileInterpolatesAsHistogramQuantile) {
  const std::vector<double> bounds = {0.1, 0.2, 0.4};
  // 10 requests in (0.1, 0.2]: the median is halfway, 0.15.
  EXPECT_DOUBLE_EQ(BucketQuantile(0.5, bounds, {0, 10, 0, 0}), 0.15);
  EXPECT_DOUBLE_EQ(BucketQuantile(0.5, bounds, {0, 0, 0, 3}), 0.4);
  EXPECT_EQ(BucketQuantile(0.99, bounds, {0, 0, 0, 0}), 0);
}

}  // namespace
}  // namespace cluster2
