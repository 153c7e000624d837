// End-to-end supervision: replacement without capacity loss under load, hung
// and crash-looping workers, scaling and recycling, with the real binaries.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/test_cluster.h"

namespace cluster2 {
namespace {

using Cluster = ::cluster2::testing::TestCluster;
using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::CommandResult;
using ::cluster2::testing::FreePort;
using ::cluster2::testing::HttpGet;
using ::cluster2::testing::LoadGenerator;
using ::cluster2::testing::Process;
using ::cluster2::testing::ProcessAlive;
using ::cluster2::testing::RunCommand;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

bool Disjoint(const std::set<int>& a, const std::set<int>& b) {
  for (int x : a) {
    if (b.count(x) > 0) return false;
  }
  return true;
}

void RollingRestartUnderLoad(bool keep_alive) {
  Cluster cluster(4);
  std::set<int> before = cluster.WaitReady(4);
  ASSERT_EQ(before.size(), 4u) << cluster.master().Stderr();
  LoadGenerator load(cluster.port(), 8, keep_alive);
  ASSERT_TRUE(WaitUntil([&] { return load.ok() > 200; }, absl::Seconds(10)));
  CommandResult restart = cluster.Ctl({"restart"});
  ASSERT_EQ(restart.exit_code, 0) << restart.err;
  std::set<int> after;
  ASSERT_TRUE(WaitUntil(
      [&] {
        after = cluster.ReadyPids(4);
        return after.size() == 4 && Disjoint(before, after);
      },
      absl::Seconds(30)))
      << cluster.master().Stderr();
  uint64_t at_end = load.ok();
  ASSERT_TRUE(
      WaitUntil([&] { return load.ok() > at_end + 200; }, absl::Seconds(10)));
  load.Stop();
  std::vector<std::string> errors = load.errors();
  EXPECT_EQ(load.failed(), 0u)
      << "of " << load.ok()
      << " ok; first: " << (errors.empty() ? "" : errors[0]);
  EXPECT_GT(load.ok(), 1000u);
  for (int pid : before) EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(), "replaced: pid"));
}

TEST(SupervisionTest, RollingRestartUnderLoadFailsNoRequestNewConnections) {
  RollingRestartUnderLoad(/*keep_alive=*/false);
}

TEST(SupervisionTest, RollingRestartUnderLoadFailsNoRequestKeepAlive) {
  RollingRestartUnderLoad(/*keep_alive=*/true);
}

TEST(SupervisionTest, SighupRestartsEveryWorker) {
  Cluster cluster(2);
  std::set<int> before = cluster.WaitReady(2);
  ASSERT_EQ(before.size(), 2u);
  cluster.master().Signal(SIGHUP);
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::set<int> now = cluster.ReadyPids(2);
        return now.size() == 2 && Disjoint(before, now);
      },
      absl::Seconds(20)))
      << cluster.master().Stderr();
}

TEST(SupervisionTest, AStoppedWorkerIsDetectedAsHungAndReplaced) {
  Cluster cluster(2, {"--nanny.tolerance=1000"});
  std::set<int> before = cluster.WaitReady(2);
  ASSERT_EQ(before.size(), 2u);
  int victim = *before.begin();
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  absl::Time stopped = absl::Now();
  std::set<int> after;
  ASSERT_TRUE(WaitUntil(
      [&] {
        after = cluster.ReadyPids(2);
        return after.size() == 2 && after.count(victim) == 0;
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(4));
  EXPECT_FALSE(ProcessAlive(victim));
  EXPECT_TRUE(
      absl::StrContains(cluster.master().Stderr(), "hung: no heartbeat"))
      << cluster.master().Stderr();
}

TEST(SupervisionTest, ACrashLoopingSlotIsGivenUpAndReported) {
  // A worker that exits at once: /bin/false.
  Cluster cluster(1, {"--crashLoopLimit=3"}, "/bin/false");
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::vector<v1::Worker> workers = cluster.Workers();
        return workers.size() == 1 &&
               workers[0].state() == v1::WORKER_STATE_FAILED;
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  std::vector<v1::Worker> workers = cluster.Workers();
  EXPECT_EQ(workers[0].last_exit(), "exit 1");
  EXPECT_EQ(workers[0].restarts(), 2u);
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(), "slot given up"));
  CommandResult table = cluster.Ctl({"workers"});
  EXPECT_TRUE(absl::StrContains(table.out, "failed")) << table.out;
  EXPECT_FALSE(cluster.master().Wait(absl::Milliseconds(1)).has_value())
      << "the master must keep running";
}

TEST(SupervisionTest, ScaleUpAndDownThroughCtlAndSignals) {
  Cluster cluster(1);
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u);
  CommandResult scale = cluster.Ctl({"scale", "3"});
  EXPECT_EQ(scale.exit_code, 0) << scale.err;
  EXPECT_EQ(scale.out, "scaled from 1 to 3 workers\n");
  EXPECT_EQ(cluster.WaitReady(3).size(), 3u) << cluster.master().Stderr();
  cluster.master().Signal(SIGTTOU);
  EXPECT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  cluster.master().Signal(SIGTTIN);
  EXPECT_EQ(cluster.WaitReady(3).size(), 3u) << cluster.master().Stderr();
  EXPECT_EQ(cluster.Ctl({"scale", "0"}).exit_code, 1);
  EXPECT_EQ(cluster.Ctl({"scale", "many"}).exit_code, 2);
}

TEST(SupervisionTest, MaxRequestsPolicyRecyclesWithItsReason) {
  Cluster cluster(1, {"--recycle.maxRequests=50", "--recycle.jitterPercent=0"});
  std::set<int> before = cluster.WaitReady(1);
  ASSERT_EQ(before.size(), 1u);
  for (int i = 0; i < 60; ++i)
    ASSERT_EQ(HttpGet(cluster.port(), "/").status, 200);
  std::set<int> after;
  EXPECT_TRUE(WaitUntil(
      [&] {
        after = cluster.ReadyPids(1);
        return after.size() == 1 && Disjoint(before, after);
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  EXPECT_TRUE(
      absl::StrContains(cluster.master().Stderr(), "recycle: max_requests: "))
      << cluster.master().Stderr();
}

TEST(SupervisionTest, WorkerOutputGoesToTheLogFileWhichSigusr1Reopens) {
  TempDir logs;
  std::string log = logs.path() + "/master.log";
  Cluster cluster(1, {"--logFile=" + log});
  std::set<int> pids = cluster.WaitReady(1);
  ASSERT_EQ(pids.size(), 1u);
  int pid = *pids.begin();
  std::string expected = absl::StrCat(
      " OUT worker 0[", pid, "] hello_worker: worker 0 serving with 2 threads");
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(read(log), expected); },
                        absl::Seconds(5)))
      << read(log);
  EXPECT_TRUE(absl::StrContains(read(log), "INFO master[")) << read(log);
  ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
  cluster.master().Signal(SIGUSR1);
  ASSERT_TRUE(WaitUntil(
      [&] { return absl::StrContains(read(log), "log file reopened"); },
      absl::Seconds(5)));
  cluster.master().Signal(SIGTERM);
  ASSERT_TRUE(cluster.master().Wait(absl::Seconds(10)).has_value());
  EXPECT_TRUE(absl::StrContains(read(log), "hello_worker: drained, exiting"))
      << read(log);
  EXPECT_FALSE(absl::StrContains(read(log + ".1"), "drained"))
      << "written after the rotation";
  EXPECT_TRUE(cluster.master().Stderr().empty()) << cluster.master().Stderr();
}

TEST(SupervisionTest, APausedWorkerStopsAcceptingWhileTheOthersServe) {
  Cluster cluster(2);
  std::set<int> pids = cluster.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u);
  int paused = *pids.begin();
  CommandResult pause = cluster.Ctl({"pause", std::to_string(paused)});
  ASSERT_EQ(pause.exit_code, 0) << pause.err << cluster.master().Stderr();
  EXPECT_EQ(pause.out, absl::StrCat("worker pid ", paused, " paused\n"));
  auto served_by = [&](int requests) {
    std::set<std::string> pids;
    for (int i = 0; i < requests; ++i) {
      testing::HttpResult result = HttpGet(cluster.port(), "/");
      EXPECT_EQ(result.status, 200) << result.error;
      std::vector<std::string> words = absl::StrSplit(
          result.body, absl::ByAnyChar(" \n"), absl::SkipEmpty());
      if (words.size() == 4) pids.insert(words[3]);
    }
    return pids;
  };
  std::set<std::string> during = served_by(60);
  EXPECT_EQ(during.size(), 1u);
  EXPECT_EQ(during.count(std::to_string(paused)), 0u)
      << "the paused worker accepted";
  EXPECT_EQ(cluster.Ctl({"pause", std::to_string(paused)}).exit_code, 1)
      << "already paused";
  CommandResult resume = cluster.Ctl({"resume", std::to_string(paused)});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_TRUE(
      WaitUntil([&] { return served_by(20).count(std::to_string(paused)) > 0; },
                absl::Seconds(10)))
      << "the resumed worker never accepted again";
}

TEST(SupervisionTest, RecycleOnePidThroughCtl) {
  Cluster cluster(2);
  std::set<int> before = cluster.WaitReady(2);
  ASSERT_EQ(before.size(), 2u);
  int victim = *before.begin();
  CommandResult recycle =
      cluster.Ctl({"recycle", std::to_string(victim), "--reason", "test"});
  EXPECT_EQ(recycle.exit_code, 0) << recycle.err;
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::set<int> now = cluster.ReadyPids(2);
        return now.size() == 2 && now.count(victim) == 0;
      },
      absl::Seconds(10)));
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(), "(test)"));
  CommandResult unknown = cluster.Ctl({"recycle", "1"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "cluster2ctl: no worker with pid 1\n");
}

// The parent-death signal fires when the thread that forked exits: a
// successor forked on an HTTP connection's thread or a gRPC handler's
// thread was SIGKILLed with it. Every successor of 20 recycles in a row
// (10 through gRPC, 10 through HTTP) must live on.
TEST(SupervisionTest, SuccessorsOfRecyclesThroughGrpcAndHttpSurvive) {
  Cluster cluster(2);
  std::set<int> pids = cluster.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u) << cluster.master().Stderr();
  for (int round = 0; round < 20; ++round) {
    const bool http = round % 2 == 1;
    const int victim = *pids.begin();
    if (http) {
      CommandResult post =
          RunCommand({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w",
                      "%{http_code}", "-X", "POST",
                      absl::StrCat("http://127.0.0.1:", cluster.mon_port(),
                                   "/api/recycle?pid=", victim)});
      ASSERT_EQ(post.out, "202") << "round " << round << ": " << post.err;
    } else {
      CommandResult recycle = cluster.Ctl({"recycle", std::to_string(victim)});
      ASSERT_EQ(recycle.exit_code, 0)
          << "round " << round << ": " << recycle.err;
    }
    std::set<int> next;
    ASSERT_TRUE(WaitUntil(
        [&] {
          next = cluster.ReadyPids(2);
          return next.size() == 2 && next.count(victim) == 0 &&
                 !ProcessAlive(victim);
        },
        absl::Seconds(15)))
        << "round " << round << "\n"
        << cluster.master().Stderr();
    pids = next;
  }
  // A slot counts every process after its first: 20 successors, and one
  // more for each successor that was killed and started again.
  unsigned started = 0;
  for (const v1::Worker& worker : cluster.Workers()) {
    started += worker.restarts();
    EXPECT_TRUE(ProcessAlive(worker.pid()));
  }
  EXPECT_EQ(started, 20u);
  EXPECT_FALSE(absl::StrContains(cluster.master().Stderr(), "signal 9"))
      << cluster.master().Stderr();
}

}  // namespace
}  // namespace cluster2
