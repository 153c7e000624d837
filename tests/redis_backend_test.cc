// Two cluster2-cache servers on one real redis-server (--backend), as two
// hosts' cache servers: the C++ client on each, processes racing one
// get-or-load through both, and a near-cache on one server following writes
// made through the other.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache_client/cache.h"
#include "gtest/gtest.h"
#include "tests/testing/cache_workers.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::AwaitCacheWorkers;
using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::CacheWorkersOutcome;
using ::cluster2::testing::Lines;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

class RedisBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_socket_ = tmp_.path() + "/redis.sock";
    redis_ = std::make_unique<Process>(std::vector<std::string>{
        "/usr/bin/redis-server", "--port", "0", "--unixsocket", redis_socket_,
        "--save", "", "--appendonly", "no", "--dir", tmp_.path()});
    ASSERT_TRUE(
        WaitUntil([&] { return access(redis_socket_.c_str(), F_OK) == 0; },
                  absl::Seconds(10)))
        << redis_->Stdout();
    for (int i = 0; i < 2; ++i) {
      sockets_.push_back(absl::StrCat(tmp_.path(), "/cache", i, ".sock"));
      servers_.push_back(std::make_unique<Process>(std::vector<std::string>{
          BinaryPath("cache_server/cluster2-cache"),
          "--socket=" + sockets_.back(), "--backend=unix:" + redis_socket_}));
      ASSERT_TRUE(
          WaitUntil([&] { return access(sockets_.back().c_str(), F_OK) == 0; },
                    absl::Seconds(10)))
          << servers_.back()->Stderr();
    }
  }

  std::unique_ptr<CacheClient> Connect(int server) {
    CacheClientOptions options;
    options.address = sockets_[server];
    auto client = CacheClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  std::unique_ptr<Process> StartWorker(int server, int callers, int load_ms) {
    return std::make_unique<Process>(std::vector<std::string>{
        BinaryPath("tests/testing/cache_worker"),
        "--socket=" + sockets_[server], "--ns=users", "--key=42",
        absl::StrCat("--callers=", callers),
        absl::StrCat("--load-ms=", load_ms), "--barrier"});
  }

  TempDir tmp_;
  std::string redis_socket_;
  std::unique_ptr<Process> redis_;
  std::vector<std::string> sockets_;
  std::vector<std::unique_ptr<Process>> servers_;
};

TEST_F(RedisBackendTest, ProcessesOnTwoServersRunTheLoaderOnce) {
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 6; ++i) workers.push_back(StartWorker(i % 2, 20, 300));
  for (auto& worker : workers) {
    ASSERT_TRUE(
        WaitUntil([&] { return !Lines(worker->Stdout(), "ready").empty(); },
                  absl::Seconds(20)))
        << worker->Stdout() << worker->Stderr();
  }
  // The barrier is a watch: set through one server, seen through both.
  auto client = Connect(0);
  auto barrier = client->Use("barrier", {});
  ASSERT_TRUE(barrier.ok());
  ASSERT_TRUE((*barrier)->Set("go", "1").ok());
  CacheWorkersOutcome outcome = AwaitCacheWorkers(workers);
  EXPECT_EQ(outcome.loads, 1) << "the loader runs in exactly one process";
  EXPECT_EQ(outcome.got, 120);
  EXPECT_EQ(outcome.values.size(), 1u) << "every caller got the loaded value";
}

TEST_F(RedisBackendTest, ANearCacheFollowsWritesMadeThroughAnotherServer) {
  auto near_client = Connect(0);
  CacheNamespaceConfig near_config;
  near_config.near_cache = true;
  auto near = near_client->Use("hot", near_config);
  ASSERT_TRUE(near.ok()) << near.status();
  auto writer_client = Connect(1);
  auto writer = writer_client->Use("hot", {});
  ASSERT_TRUE(writer.ok());

  ASSERT_TRUE((*writer)->Set("k", "v1").ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto got = (*near)->Get("k");
        return got.ok() && got->has_value() && got->value().value == "v1";
      },
      absl::Seconds(5)));
  const uint64_t before = (*near)->near_hits();
  EXPECT_EQ((*near)->Get("k")->value().value, "v1");
  EXPECT_EQ((*near)->near_hits(), before + 1) << "served by the near-cache";
  // The other server's write reaches this one's watch, and the near-cache.
  ASSERT_TRUE((*writer)->Set("k", "v2").ok());
  ASSERT_TRUE(
      WaitUntil([&] { return (*near)->Get("k")->value().value == "v2"; },
                absl::Seconds(5)));
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ((*near)->Get("k")->value().value, "v2");
  ASSERT_TRUE((*writer)->Delete("k").ok());
  ASSERT_TRUE(WaitUntil([&] { return !(*near)->Get("k")->has_value(); },
                        absl::Seconds(5)));
}

}  // namespace
}  // namespace cluster2
