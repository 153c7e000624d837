// RedisConnection: address parsing, and a real failover found through a
// real Sentinel (Debian's redis-server and redis-sentinel mode).
#include "common/redis_connection.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace cluster2 {
namespace {

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

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

pid_t Spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ),
            0);
  return pid;
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// A master, its replica and one Sentinel on loopback; the Sentinel's file
// in a directory of its own (it rewrites it).
class SentinelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/c2sn-XXXXXX";
    dir_ = mkdtemp(dir);
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
      return Spawn(args);
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
    sentinel_ = Spawn({"/usr/bin/redis-server", conf, "--sentinel"});
  }
  void TearDown() override {
    Stop(sentinel_);
    Stop(replica_);
    Stop(master_);
    std::string command = "rm -rf " + dir_;
    (void)std::system(command.c_str());
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

  std::string dir_;
  int master_port_ = 0, replica_port_ = 0, sentinel_port_ = 0;
  pid_t master_ = 0, replica_ = 0, sentinel_ = 0;
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

  Stop(master_);
  master_ = 0;
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
