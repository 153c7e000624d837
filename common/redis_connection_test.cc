// RedisConnection: address parsing, and a real failover found through a
// real Sentinel (Debian's redis-server and redis-sentinel mode).
#include "common/redis_connection.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::FreePort;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;

TEST(ParseRedisAddressTest, TheThreeFormsAndTheirErrors) {
  auto tcp = ParseRedisAddress("redis://10.0.0.5:6380");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->host, "10.0.0.5");
  EXPECT_EQ(tcp->port, 6380);
  EXPECT_EQ(ParseRedisAddress("redis://cache")->port, 6379);
  EXPECT_EQ(ParseRedisAddress("unix:/run/redis.sock")->unix_path,
            "/run/redis.sock");
  auto sentinel =
      ParseRedisAddress("redis-sentinel://10.0.0.1,10.0.0.2:26380/main");
  ASSERT_TRUE(sentinel.ok());
  EXPECT_EQ(sentinel->master_name, "main");
  ASSERT_EQ(sentinel->sentinels.size(), 2u);
  EXPECT_EQ(sentinel->sentinels[0],
            std::make_pair(std::string("10.0.0.1"), 26379));
  EXPECT_EQ(sentinel->sentinels[1].second, 26380);
  EXPECT_EQ(sentinel->ToString(),
            "redis-sentinel://10.0.0.1:26379,10.0.0.2:26380/main");
  for (const char* bad :
       {"10.0.0.1:6379", "redis://", "redis://h:0", "redis://h:x",
        "unix:", "redis-sentinel://h1", "redis-sentinel:///main",
        "redis-sentinel://h:99999/main"}) {
    EXPECT_FALSE(ParseRedisAddress(bad).ok()) << bad;
  }
}

// A master, its replica and one Sentinel on loopback; the Sentinel's file
// in a directory of its own (it rewrites it).
class SentinelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_port_ = FreePort();
    replica_port_ = FreePort();
    sentinel_port_ = FreePort();
    auto server = [&](int port, std::vector<std::string> extra) {
      std::vector<std::string> args = {"/usr/bin/redis-server",
                                       "--port",
                                       absl::StrCat(port),
                                       "--bind",
                                       "127.0.0.1",
                                       "--save",
                                       "",
                                       "--appendonly",
                                       "no",
                                       "--dir",
                                       dir_};
      args.insert(args.end(), extra.begin(), extra.end());
      return std::make_unique<Process>(args);
    };
    master_ = server(master_port_, {});
    replica_ = server(replica_port_,
                      {"--replicaof", "127.0.0.1", absl::StrCat(master_port_)});
    const std::string conf = dir_ + "/sentinel.conf";
    std::ofstream(conf) << "port " << sentinel_port_ << "\n"
                        << "bind 127.0.0.1\n"
                        << "sentinel monitor main 127.0.0.1 " << master_port_
                        << " 1\n"
                        << "sentinel down-after-milliseconds main 500\n"
                        << "sentinel failover-timeout main 5000\n";
    sentinel_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/redis-server", conf, "--sentinel"});
  }

  // Retries `args` on `redis` until it succeeds or `timeout` passes.
  absl::StatusOr<RedisReply> Eventually(RedisConnection& redis,
                                        std::vector<std::string> args,
                                        absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<RedisReply> reply = redis.Command(args);
    while (!reply.ok() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      reply = redis.Command(args);
    }
    return reply;
  }

  TempDir tmp_;
  const std::string dir_ = tmp_.path();
  int master_port_ = 0, replica_port_ = 0, sentinel_port_ = 0;
  // Killed (SIGKILL) and reaped when the test ends.
  std::unique_ptr<Process> master_, replica_, sentinel_;
};

TEST_F(SentinelTest, ConnectsToTheMasterTheSentinelNamesAndFollowsAFailover) {
  RedisConnection redis(
      *ParseRedisAddress(
          absl::StrCat("redis-sentinel://127.0.0.1:", sentinel_port_, "/main")),
      absl::Milliseconds(500));
  ASSERT_TRUE(Eventually(redis, {"SET", "k", "v"}, absl::Seconds(20)).ok());
  // Written to the replica too before the master dies.
  auto synced = Eventually(redis, {"WAIT", "1", "5000"}, absl::Seconds(10));
  ASSERT_TRUE(synced.ok());
  ASSERT_EQ(synced->integer, 1) << "the replica did not sync";
  auto role = redis.Command({"INFO", "server"});
  ASSERT_TRUE(role.ok());
  EXPECT_NE(role->text.find(absl::StrCat("tcp_port:", master_port_)),
            std::string::npos);

  // A Sentinel learns of replicas from the master's INFO (every 10 s): it
  // can fail over only to one it knows.
  RedisConnection sentinel(
      *ParseRedisAddress(absl::StrCat("redis://127.0.0.1:", sentinel_port_)),
      absl::Milliseconds(500));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto replicas = sentinel.Command({"SENTINEL", "replicas", "main"});
  while (absl::Now() < deadline &&
         (!replicas.ok() || replicas->elements.empty())) {
    absl::SleepFor(absl::Milliseconds(200));
    replicas = sentinel.Command({"SENTINEL", "replicas", "main"});
  }
  ASSERT_TRUE(replicas.ok() && !replicas->elements.empty())
      << "the Sentinel never saw the replica";

  master_.reset();  // SIGKILL
  // The Sentinel promotes the replica; the connection asks it again.
  auto written = Eventually(redis, {"SET", "k2", "v2"}, absl::Seconds(30));
  ASSERT_TRUE(written.ok()) << written.status();
  auto now = redis.Command({"INFO", "server"});
  ASSERT_TRUE(now.ok());
  EXPECT_NE(now->text.find(absl::StrCat("tcp_port:", replica_port_)),
            std::string::npos);
  EXPECT_EQ(redis.Command({"GET", "k"})->text, "v");
}

}  // namespace
}  // namespace cluster2
