// End-to-end hardening: what the master does when its children or its
// clients misbehave, with the real binaries.
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "cluster2/v1/worker_session.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/test_cluster.h"

namespace cluster2 {
namespace {

using Cluster = ::cluster2::testing::TestCluster;
using ::cluster2::testing::ProcessAlive;
using ::cluster2::testing::WaitUntil;

std::vector<int> CacheServerPids(const std::string& log) {
  std::vector<int> pids;
  const std::string marker = "cache server started: pid ";
  for (size_t at = log.find(marker); at != std::string::npos;
       at = log.find(marker, at + 1)) {
    pids.push_back(std::atoi(log.c_str() + at + marker.size()));
  }
  return pids;
}

bool CacheAnswers(const std::string& run_dir) {
  auto stub = v1::Cache::NewStub(grpc::CreateChannel(
      "unix:" + run_dir + "/cache.sock", grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(500));
  v1::StatsResponse stats;
  return stub->Stats(&context, v1::StatsRequest(), &stats).ok();
}

// A stopped (or deadlocked) cache server answers nothing and never exits:
// every worker's cache call would wait on it forever.
TEST(HardeningTest, AStoppedCacheServerIsKilledAndReplaced) {
  Cluster cluster(1, {"--cache.healthTimeout=1500"});
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  // Stopped once the master has seen it serve (before that, it has the
  // longer start timeout).
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(cluster.master().Stderr(), "is serving");
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  std::vector<int> pids = CacheServerPids(cluster.master().Stderr());
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(kill(pids[0], SIGSTOP), 0);
  ASSERT_TRUE(WaitUntil(
      [&] { return CacheServerPids(cluster.master().Stderr()).size() == 2; },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  EXPECT_FALSE(ProcessAlive(pids[0]));
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(),
                                "has not answered a health check"));
  EXPECT_TRUE(WaitUntil([&] { return CacheAnswers(cluster.run_dir()); },
                        absl::Seconds(10)))
      << "the replacement does not serve";
  EXPECT_EQ(cluster.ReadyCount(), 1u) << "the workers were disturbed";
}

// A data directory that cannot be created makes the cache server exit at
// once; it is restarted with backoff and then given up, visibly, instead of
// being restarted every second forever.
TEST(HardeningTest, ACacheServerThatCannotStartIsGivenUpVisibly) {
  Cluster cluster(
      1, {"--cache.persistPath=/proc/self/none/cache", "--crashLoopLimit=3"});
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  ASSERT_TRUE(WaitUntil(
      [&] { return absl::StrContains(cluster.master().Stderr(), "given up"); },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  EXPECT_EQ(CacheServerPids(cluster.master().Stderr()).size(), 3u)
      << cluster.master().Stderr();
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(), "restarting in "));
  EXPECT_EQ(cluster.ReadyCount(), 1u) << "the workers keep serving";
}

int ThreadCount(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "Threads:")) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

// A WorkerSession stream that never says hello held a master thread
// forever (3,000 of them: 3,020 threads). Now at most 64 may wait, each for
// helloTimeout; the rest are refused at once.
TEST(HardeningTest, SessionsWithoutHelloAreBoundedAndCut) {
  Cluster cluster(1, {"--helloTimeout=1000"});
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  const pid_t master = cluster.master().pid();
  const int baseline = ThreadCount(master);
  auto stub = v1::WorkerSession::NewStub(
      grpc::CreateChannel("unix:" + cluster.run_dir() + "/master.sock",
                          grpc::InsecureChannelCredentials()));
  constexpr int kStreams = 300;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<
      grpc::ClientReaderWriter<v1::WorkerMessage, v1::MasterMessage>>>
      streams;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(std::chrono::system_clock::now() +
                                  std::chrono::seconds(30));
    streams.push_back(stub->Attach(contexts.back().get()));
  }
  int refused = 0;
  int cut = 0;
  for (auto& stream : streams) {
    v1::MasterMessage message;
    while (stream->Read(&message)) {
    }
    grpc::Status status = stream->Finish();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
    if (status.error_code() == grpc::StatusCode::CANCELLED) ++cut;
  }
  EXPECT_EQ(refused + cut, kStreams)
      << "refused " << refused << ", cut " << cut;
  EXPECT_GE(refused, kStreams - 64);
  EXPECT_GE(cut, 1);
  // The threads they held are given back (gRPC keeps a few idle ones).
  int threads = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        threads = ThreadCount(master);
        return threads <= baseline + 16;
      },
      absl::Seconds(10)))
      << "baseline " << baseline << ", now " << threads;
  EXPECT_EQ(cluster.ReadyCount(), 1u);
}

}  // namespace
}  // namespace cluster2
