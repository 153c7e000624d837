#include "master/internal/master_options.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "master/internal/config.h"

namespace cluster2 {
namespace {

v1::ClusterConfig Complete(v1::ClusterConfig config) {
  config.add_command("/bin/worker");
  config.add_command("--flag");
  ApplyConfigDefaults(4, &config);
  EXPECT_TRUE(ValidateConfig(config).ok());
  return config;
}

TEST(MasterOptionsTest, SupervisorGetsTheCommandEnvironmentAndTiming) {
  v1::ClusterConfig config;
  config.set_no_workers(3);
  config.set_heartbeat_interval(200);
  (*config.mutable_env())["MODE"] = "test";
  config.mutable_restart_backoff()->set_backoff_initial(50);
  config.mutable_recycle()->set_max_requests(100);
  config = Complete(config);
  MasterEndpoints endpoints{"unix:/r/master.sock", "unix:/r/cache.sock", {7}};
  SupervisorOptions options = SupervisorOptionsFromConfig(
      config, endpoints, {"PATH=/bin"}, /*extra_policies=*/{});
  ASSERT_EQ(options.groups.size(), 1u);
  EXPECT_EQ(options.groups[0].name, "default");
  EXPECT_EQ(options.groups[0].workers, 3u);
  EXPECT_EQ(options.groups[0].command,
            (std::vector<std::string>{"/bin/worker", "--flag"}));
  EXPECT_EQ(options.base_env, std::vector<std::string>{"PATH=/bin"});
  EXPECT_EQ(options.groups[0].extra_env, std::vector<std::string>{"MODE=test"});
  EXPECT_EQ(options.environment.master_address, "unix:/r/master.sock");
  EXPECT_EQ(options.environment.cache_address, "unix:/r/cache.sock");
  EXPECT_EQ(options.listen_fds, std::vector<int>{7});
  EXPECT_EQ(options.heartbeat_interval, absl::Milliseconds(200));
  // nanny.tolerance defaults to 3 heartbeats.
  EXPECT_EQ(options.hung_tolerance, absl::Milliseconds(600));
  EXPECT_EQ(options.backoff_initial, absl::Milliseconds(50));
  EXPECT_EQ(options.backoff_max, absl::Seconds(30));
  EXPECT_TRUE(options.pause_supported);
  EXPECT_FALSE(options.policies.empty()) << "recycle.maxRequests";
}

TEST(MasterOptionsTest, NannyOffAndReuseportChangeWhatTheSupervisorDoes) {
  v1::ClusterConfig config;
  config.mutable_nanny()->set_enable(false);
  config.set_balance("reuseport");
  config = Complete(config);
  SupervisorOptions options =
      SupervisorOptionsFromConfig(config, {}, {}, /*extra_policies=*/{});
  EXPECT_EQ(options.hung_tolerance, absl::ZeroDuration());
  EXPECT_FALSE(options.pause_supported);
  EXPECT_TRUE(options.policies.empty());
}

TEST(MasterOptionsTest, CacheServerRunsWithTheWorkersBackoffAndItsTimeouts) {
  v1::ClusterConfig config;
  config.mutable_cache()->set_max_memory(1 << 20);
  config.mutable_cache()->set_health_timeout(1500);
  config.set_crash_loop_limit(3);
  config = Complete(config);
  CacheSupervisorOptions options = CacheSupervisorOptionsFromConfig(
      config, "/bin/cluster2-cache", "/r/cache.sock", "/state", {"A=1"});
  EXPECT_EQ(
      options.spec.argv,
      (std::vector<std::string>{"/bin/cluster2-cache", "--socket=/r/cache.sock",
                                "--data-dir=/state", "--max-memory=1048576"}));
  EXPECT_EQ(options.spec.log_component, "cache");
  EXPECT_EQ(options.give_up_after, 3u);
  EXPECT_EQ(options.health_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options.start_timeout, absl::Seconds(60));
  EXPECT_EQ(options.backoff_initial, absl::Milliseconds(100));
}

TEST(MasterOptionsTest, MonitorAndAppCheckFollowTheEcvSection) {
  v1::ClusterConfig config;
  config.set_port(9090);
  config.mutable_ecv()->set_mode("monitor");
  config.mutable_ecv()->set_monitor("/health");
  config.mutable_ecv()->set_monitor_body("ok");
  config = Complete(config);
  MonitorOptions monitor = MonitorOptionsFromConfig(config, "10.0.0.1", "host");
  EXPECT_EQ(monitor.ecv_root, "/ecv");
  EXPECT_EQ(monitor.mark_down, "/ecv/markDown");
  EXPECT_EQ(monitor.port, 9090u);
  EXPECT_EQ(monitor.ip, "10.0.0.1");
  EXPECT_FALSE(monitor.cache_stats) << "the master sets it";
  AppCheckOptions check = AppCheckOptionsFromConfig(config);
  EXPECT_EQ(check.port, 9090u);
  EXPECT_EQ(check.path, "/health");
  EXPECT_EQ(check.expected_status, 200);
  EXPECT_EQ(check.body_contains, "ok");
  EXPECT_EQ(check.interval, absl::Seconds(1));
}

}  // namespace
}  // namespace cluster2
