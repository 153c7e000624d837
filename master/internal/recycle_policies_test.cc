#include "master/internal/recycle_policies.h"

#include <set>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

WorkerView View(pid_t pid, absl::Duration age) {
  WorkerView view;
  view.pid = pid;
  view.started_at = kStart;
  view.now = kStart + age;
  return view;
}

TEST(JitterFactorTest, StaysInRangeIsStablePerPidAndSpreads) {
  std::set<int> buckets;
  for (pid_t pid = 1000; pid < 1100; ++pid) {
    double factor = JitterFactor(pid, 0.1);
    EXPECT_GE(factor, 0.9);
    EXPECT_LE(factor, 1.1);
    EXPECT_EQ(factor, JitterFactor(pid, 0.1));
    buckets.insert(static_cast<int>((factor - 0.9) * 50));  // 10 buckets
  }
  EXPECT_GE(buckets.size(), 8u) << "jitter does not spread workers";
  EXPECT_EQ(JitterFactor(1234, 0.0), 1.0);
}

TEST(MaxAgePolicyTest, FiresAtTheJitteredAge) {
  MaxAgePolicy policy(absl::Hours(1), 0.1);
  absl::Duration limit = absl::Hours(1) * JitterFactor(77, 0.1);
  EXPECT_FALSE(policy.Evaluate(View(77, limit - absl::Seconds(1))));
  auto reason = policy.Evaluate(View(77, limit + absl::Seconds(1)));
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->rfind("max_age: ", 0), 0u) << *reason;
}

TEST(MaxRequestsPolicyTest, FiresAtTheJitteredCount) {
  MaxRequestsPolicy policy(1000, 0.0);
  WorkerView view = View(5, absl::Minutes(1));
  view.heartbeat.requests_total = 999;
  EXPECT_FALSE(policy.Evaluate(view));
  view.heartbeat.requests_total = 1000;
  EXPECT_EQ(policy.Evaluate(view), "max_requests: 1000 >= 1000");
}

TEST(MaxRssPolicyTest, FiresAboveTheLimit) {
  MaxRssPolicy policy(512u << 20);
  WorkerView view = View(5, absl::Minutes(1));
  view.heartbeat.rss_bytes = 512u << 20;
  EXPECT_FALSE(policy.Evaluate(view));
  view.heartbeat.rss_bytes = 600u << 20;
  EXPECT_EQ(policy.Evaluate(view), "max_rss: 600MiB > 512MiB");
}

// Feeds one heartbeat per second: `rate` requests and `cpu` CPU-seconds
// per second, rss in MiB.
class DegradationTest : public ::testing::Test {
 protected:
  std::optional<std::string> Beat(double rate, double cpu, uint64_t rss_mib) {
    ++second_;
    requests_ += static_cast<uint64_t>(rate);
    cpu_ += absl::Seconds(cpu);
    WorkerView view = View(9, absl::Seconds(second_));
    view.heartbeat.requests_total = requests_;
    view.heartbeat.cpu_time = cpu_;
    view.heartbeat.rss_bytes = rss_mib << 20;
    return policy_.Evaluate(view);
  }

  DegradationPolicy policy_{0.3, 3};
  int second_ = 0;
  uint64_t requests_ = 0;
  absl::Duration cpu_;
};

TEST_F(DegradationTest, SlowerAtTheSameCpuWhileGrowingIsDegraded) {
  EXPECT_FALSE(Beat(0, 0, 100));
  EXPECT_FALSE(Beat(1000, 0.5, 100));  // the peak
  EXPECT_FALSE(Beat(900, 0.5, 110));
  EXPECT_FALSE(Beat(800, 0.5, 120));
  auto reason = Beat(600, 0.5, 130);  // 40% under the peak, same CPU, growing
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->rfind("degraded: 600 req/s, peak 1000", 0), 0u) << *reason;
}

TEST_F(DegradationTest, LessTrafficIsNotDegradation) {
  Beat(0, 0, 100);
  Beat(1000, 0.5, 100);
  Beat(500, 0.25, 110);
  Beat(200, 0.1, 120);
  EXPECT_FALSE(Beat(50, 0.03, 130)) << "an idle worker burns less CPU";
}

TEST_F(DegradationTest, StableMemoryIsNotDegradation) {
  Beat(0, 0, 100);
  Beat(1000, 0.5, 100);
  Beat(600, 0.5, 100);
  Beat(600, 0.5, 100);
  EXPECT_FALSE(Beat(600, 0.5, 100));
}

TEST_F(DegradationTest, ForgetDropsTheHistory) {
  Beat(0, 0, 100);
  Beat(1000, 0.5, 100);
  policy_.Forget(9);
  Beat(600, 0.5, 110);
  Beat(600, 0.5, 120);
  EXPECT_FALSE(Beat(600, 0.5, 130)) << "the old peak was forgotten";
}

TEST(PoliciesFromConfigTest, OnlyWhatIsConfigured) {
  v1::ClusterConfig config;
  EXPECT_TRUE(PoliciesFromConfig(config).empty());
  config.set_max_age(3600);
  config.mutable_recycle()->set_max_requests(10);
  config.mutable_recycle()->set_max_rss_bytes(1 << 30);
  config.mutable_recycle()->set_degradation_margin_percent(30);
  config.mutable_recycle()->set_degradation_window(5);
  EXPECT_EQ(PoliciesFromConfig(config).size(), 4u);
}

}  // namespace
}  // namespace cluster2
