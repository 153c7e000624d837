// End-to-end: a real cluster2-master running real hello_worker processes,
// driven over HTTP, cluster2ctl and signals.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "cluster2/v1/cluster.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
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
using ::cluster2::testing::Process;
using ::cluster2::testing::ProcessAlive;
using ::cluster2::testing::RunCommand;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

std::string Master() { return BinaryPath("master/cluster2-master"); }
std::string Hello() { return BinaryPath("examples/hello/hello_worker"); }
std::string Ctl() { return BinaryPath("cli/cluster2ctl"); }

// A cluster of `workers` hello workers on a free port in its own run dir.

TEST(ClusterTest, TwoWorkersServe200RequestsFromTwoPids) {
  Cluster cluster(2);
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::set<std::string> bodies;
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    testing::HttpResult result = HttpGet(cluster.port(), "/");
    ASSERT_EQ(result.status, 200) << result.error;
    ++ok;
    bodies.insert(result.body);
  }
  EXPECT_EQ(ok, 200);
  std::set<std::string> pids;
  for (const std::string& body : bodies) {
    // "worker <id> pid <pid>\n"
    std::vector<std::string> words =
        absl::StrSplit(body, absl::ByAnyChar(" \n"), absl::SkipEmpty());
    ASSERT_EQ(words.size(), 4u) << body;
    EXPECT_EQ(words[0], "worker");
    EXPECT_EQ(words[2], "pid");
    pids.insert(words[3]);
  }
  EXPECT_EQ(pids.size(), 2u) << "all 200 requests went to one worker";
}

TEST(ClusterTest, ReuseportBalanceServesFromEveryWorkerAndSurvivesAKill) {
  Cluster cluster(2, {"--balance=reuseport"});
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::set<std::string> bodies;
  for (int i = 0; i < 100; ++i) {
    testing::HttpResult result = HttpGet(cluster.port(), "/");
    ASSERT_EQ(result.status, 200) << result.error;
    bodies.insert(result.body);
  }
  EXPECT_EQ(bodies.size(), 2u);
  // The replacement takes over its slot's socket: every request succeeds
  // while it starts (connections queued for the slot wait for it).
  std::vector<v1::Worker> workers = cluster.Workers();
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(kill(workers[0].pid(), SIGKILL), 0);
  for (int i = 0; i < 100; ++i) {
    testing::HttpResult result = HttpGet(cluster.port(), "/");
    ASSERT_EQ(result.status, 200) << "request " << i << ": " << result.error;
  }
  EXPECT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
}

TEST(ClusterTest, CtlListsTwoReadyWorkersAsJson) {
  Cluster cluster(2);
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::vector<v1::Worker> workers = cluster.Workers();
  ASSERT_EQ(workers.size(), 2u);
  std::set<unsigned> ids;
  for (const v1::Worker& worker : workers) {
    EXPECT_EQ(worker.state(), v1::WORKER_STATE_READY);
    EXPECT_TRUE(worker.attached());
    EXPECT_TRUE(ProcessAlive(worker.pid()));
    ids.insert(worker.id());
  }
  EXPECT_EQ(ids, (std::set<unsigned>{0, 1}));
  // Heartbeats arrive every 200 ms with real process figures.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const v1::Worker& worker : cluster.Workers()) {
          if (worker.last_heartbeat().rss_bytes() == 0) return false;
        }
        return true;
      },
      absl::Seconds(5)));
  CommandResult table = cluster.Ctl({"workers"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(table.out, "ID ")) << table.out;
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 3)
      << table.out;
}

TEST(ClusterTest, KilledWorkerIsReplacedInTheSameSlotWithin3Seconds) {
  Cluster cluster(2);
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::vector<v1::Worker> before = cluster.Workers();
  ASSERT_EQ(before.size(), 2u);
  const v1::Worker victim = before[1];
  ASSERT_EQ(kill(victim.pid(), SIGKILL), 0);
  absl::Time killed = absl::Now();

  bool replaced = WaitUntil(
      [&] {
        for (const v1::Worker& worker : cluster.Workers()) {
          if (worker.id() == victim.id() && worker.pid() != victim.pid() &&
              worker.state() == v1::WORKER_STATE_READY) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(3));
  ASSERT_TRUE(replaced) << cluster.master().Stderr();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(3));
  std::vector<v1::Worker> after = cluster.Workers();
  ASSERT_EQ(after.size(), 2u);
  for (const v1::Worker& worker : after) {
    if (worker.id() == victim.id()) {
      EXPECT_EQ(worker.restarts(), 1u);
      EXPECT_EQ(worker.last_exit(), "signal 9 (Killed)");
    } else {
      EXPECT_EQ(worker.pid(), before[0].pid())
          << "the other worker was disturbed";
    }
  }
  EXPECT_EQ(HttpGet(cluster.port(), "/").status, 200);
}

TEST(ClusterTest, SigkilledMasterLeavesNoWorkerAliveWithin2Seconds) {
  Cluster cluster(2);
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::vector<v1::Worker> workers = cluster.Workers();
  ASSERT_EQ(workers.size(), 2u);
  cluster.master().Signal(SIGKILL);
  ASSERT_TRUE(cluster.master().Wait(absl::Seconds(2)).has_value());
  bool gone = WaitUntil(
      [&] {
        for (const v1::Worker& worker : workers) {
          if (ProcessAlive(worker.pid())) return false;
        }
        return true;
      },
      absl::Seconds(2));
  EXPECT_TRUE(gone) << "a worker outlived its master";
}

TEST(ClusterTest, SigtermDrainsWorkersAndExitsZeroLeavingNothing) {
  Cluster cluster(2);
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  std::vector<v1::Worker> workers = cluster.Workers();
  cluster.master().Signal(SIGTERM);
  std::optional<int> status = cluster.master().Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value()) << "master did not stop";
  ASSERT_TRUE(WIFEXITED(*status)) << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << cluster.master().Stderr();
  for (const v1::Worker& worker : workers)
    EXPECT_FALSE(ProcessAlive(worker.pid()));
  EXPECT_NE(access(cluster.run_dir().c_str(), F_OK), 0)
      << "run directory left behind";
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(), "ended: exit 0"));
  // The port is free again.
  EXPECT_EQ(HttpGet(cluster.port(), "/").status, 0);
}

TEST(ClusterTest, CtlShutdownStopsTheCluster) {
  Cluster cluster(1);
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  CommandResult result = cluster.Ctl({"shutdown"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::optional<int> status = cluster.master().Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(ClusterTest, SecondMasterInTheSameRunDirIsRefused) {
  Cluster cluster(1);
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  CommandResult second =
      RunCommand({Master(), "--port=0", "--monPort=0",
                  "--runDir=" + cluster.run_dir(), "--", Hello()});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(second.err, "a master is already running"))
      << second.err;
  EXPECT_TRUE(absl::StrContains(second.err,
                                absl::StrCat("pid ", cluster.master().pid())))
      << second.err;
  EXPECT_EQ(cluster.ReadyCount(), 1u) << "the running cluster was disturbed";
}

TEST(ClusterTest, StaleSocketOfADeadMasterIsReplaced) {
  TempDir tmp;
  std::string run_dir = tmp.path() + "/run";
  int port = FreePort();
  std::vector<std::string> argv = {Master(),
                                   absl::StrCat("--port=", port),
                                   "--host=127.0.0.1",
                                   "--monPort=0",
                                   "--runDir=" + run_dir,
                                   "--noWorkers=1",
                                   "--",
                                   Hello()};
  {
    Process first(argv);
    ASSERT_TRUE(WaitUntil(
        [&] { return access((run_dir + "/master.sock").c_str(), F_OK) == 0; },
        absl::Seconds(10)));
    first.Signal(SIGKILL);
    ASSERT_TRUE(first.Wait(absl::Seconds(5)).has_value());
  }
  ASSERT_EQ(access((run_dir + "/master.sock").c_str(), F_OK), 0)
      << "no stale socket to test";
  Process second(argv);
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(port, "/").status == 200; },
                        absl::Seconds(10)))
      << second.Stderr();
}

// Errors at start: each is one line naming the problem, and fast.
void ExpectFailsFastWithOneLine(const std::vector<std::string>& argv,
                                int exit_code, const std::string& expected) {
  absl::Time start = absl::Now();
  CommandResult result = RunCommand(argv, absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(result.exit_code, exit_code) << result.err;
  EXPECT_TRUE(absl::StrContains(result.err, expected)) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1)
      << result.err;
}

TEST(ClusterTest, BadConfigFailsFastWithOneLine) {
  TempDir tmp;
  std::string path = tmp.path() + "/bad.json";
  {
    std::ofstream(path)
        << R"({"noWorkers": 2, "port": 9090, "ecv": {"mdoe": "control"}})";
  }
  ExpectFailsFastWithOneLine({Master(), "--config", path, "--", Hello()}, 2,
                             "unknown field 'ecv.mdoe'");
  {
    std::ofstream(path) << R"({"noWorkers": 2, "port": 9090, "monPort": 9090})";
  }
  ExpectFailsFastWithOneLine({Master(), "--config", path, "--", Hello()}, 2,
                             "field 'monPort': equals 'port' (9090)");
  { std::ofstream(path) << R"({"noWorkers": "two"})"; }
  ExpectFailsFastWithOneLine({Master(), "--config", path, "--", Hello()}, 2,
                             "field 'noWorkers'");
  ExpectFailsFastWithOneLine(
      {Master(), "--config", tmp.path() + "/missing.json", "--", Hello()}, 2,
      "missing.json: No such file or directory");
  ExpectFailsFastWithOneLine(
      {Master(), "--port=0", "--monPort=0", "--runDir=" + tmp.path() + "/r",
       "--", "/nonexistent/worker"},
      1, "/nonexistent/worker");
}

TEST(ClusterTest, BusyPortFailsFastWithOneLine) {
  TempDir tmp;
  int port = FreePort();
  testing::Process blocker({"/usr/bin/python3", "-c",
                            absl::StrCat("import socket,time\n"
                                         "s=socket.socket()\n"
                                         "s.bind(('127.0.0.1',",
                                         port,
                                         "))\n"
                                         "s.listen()\n"
                                         "print('bound',flush=True)\n"
                                         "time.sleep(60)\n")});
  ASSERT_TRUE(
      WaitUntil([&] { return absl::StrContains(blocker.Stdout(), "bound"); },
                absl::Seconds(10)));
  ExpectFailsFastWithOneLine(
      {Master(), absl::StrCat("--port=", port), "--host=127.0.0.1",
       "--monPort=0", "--runDir=" + tmp.path() + "/run", "--", Hello()},
      1, absl::StrCat("port ", port, " is already in use"));
  // The same for the monitor port.
  ExpectFailsFastWithOneLine(
      {Master(), "--port=0", "--host=127.0.0.1",
       absl::StrCat("--monPort=", port), "--monHost=127.0.0.1",
       "--runDir=" + tmp.path() + "/run", "--", Hello()},
      1, absl::StrCat("port ", port, " is already in use"));
  EXPECT_NE(access((tmp.path() + "/run").c_str(), F_OK), 0)
      << "failed start left its run dir";
}

TEST(ClusterTest, GarbageOnTheControlSocketChangesNothing) {
  Cluster cluster(1);
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  for (const std::string& garbage :
       {std::string("GET / HTTP/1.1\r\n\r\n"), std::string(100000, '\xff'),
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
            std::string(64, '\0')}) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string path = cluster.run_dir() + "/master.sock";
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    ASSERT_EQ(
        connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ssize_t ignored = send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    (void)ignored;
    char buffer[256];
    timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(fd, buffer, sizeof(buffer)) > 0) {
    }
    close(fd);
  }
  EXPECT_EQ(cluster.WaitReady(1).size(), 1u) << "the master stopped serving";
  EXPECT_EQ(HttpGet(cluster.port(), "/").status, 200);
}

// The pids in lines "cache server started: pid N" of the master's log.
std::vector<int> CacheServerPids(const std::string& log) {
  std::vector<int> pids;
  const std::string marker = "cache server started: pid ";
  for (size_t at = log.find(marker); at != std::string::npos;
       at = log.find(marker, at + 1)) {
    pids.push_back(std::atoi(log.c_str() + at + marker.size()));
  }
  return pids;
}

TEST(ClusterTest, TheCacheServerIsStartedAdvertisedAndRestarted) {
  Cluster cluster(1);
  std::set<int> workers = cluster.WaitReady(1);
  ASSERT_EQ(workers.size(), 1u) << cluster.master().Stderr();
  std::ifstream environ(absl::StrCat("/proc/", *workers.begin(), "/environ"));
  std::string env((std::istreambuf_iterator<char>(environ)),
                  std::istreambuf_iterator<char>());
  std::string address = "unix:" + cluster.run_dir() + "/cache.sock";
  EXPECT_NE(env.find("CLUSTER2_CACHE=" + address), std::string::npos);
  auto use = [&] {
    auto stub = v1::Cache::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(2));
    v1::UseRequest request;
    request.set_namespace_("ns");
    v1::UseResponse response;
    return stub->Use(&context, request, &response).ok();
  };
  ASSERT_TRUE(WaitUntil(use, absl::Seconds(10))) << cluster.master().Stderr();
  std::vector<int> pids = CacheServerPids(cluster.master().Stderr());
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  ASSERT_TRUE(WaitUntil(
      [&] { return CacheServerPids(cluster.master().Stderr()).size() == 2; },
      absl::Seconds(5)))
      << cluster.master().Stderr();
  EXPECT_TRUE(WaitUntil(use, absl::Seconds(10)))
      << "the restarted cache server does not serve";
  EXPECT_EQ(cluster.ReadyCount(), 1u) << "the workers were disturbed";
}

TEST(ClusterTest, CacheModeMasterServesTheCacheFromTheMasterProcess) {
  Cluster cluster(1, {"--cache.mode=master"});
  ASSERT_EQ(cluster.WaitReady(1).size(), 1u) << cluster.master().Stderr();
  std::string address = "unix:" + cluster.run_dir() + "/cache.sock";
  auto stub = v1::Cache::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::UseRequest use;
  use.set_namespace_("ns");
  use.mutable_options()->set_persist(true);  // into <run_dir>.cache
  v1::UseResponse used;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Status status = stub->Use(&context, use, &used);
  ASSERT_TRUE(status.ok()) << status.error_message()
                           << cluster.master().Stderr();
  EXPECT_TRUE(CacheServerPids(cluster.master().Stderr()).empty())
      << "no separate cache process";
  EXPECT_EQ(access((cluster.run_dir() + ".cache/ns.log").c_str(), F_OK), 0);
}

TEST(ClusterTest, CtlWithoutMasterExitsThreeWithClearError) {
  TempDir tmp;
  CommandResult result =
      RunCommand({Ctl(), "--run-dir", tmp.path() + "/none", "workers"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_TRUE(absl::StrContains(result.err, "no master running")) << result.err;
}

TEST(ClusterTest, EmbeddedListenRunsMasterAndWorkersFromOneBinary) {
  TempDir tmp;
  int port = FreePort();
  Process embedded({BinaryPath("examples/embedded/hello_embedded"),
                    absl::StrCat("--port=", port)},
                   {"XDG_RUNTIME_DIR=" + tmp.path()});
  std::set<std::string> bodies;
  ASSERT_TRUE(WaitUntil(
      [&] {
        testing::HttpResult result = HttpGet(port, "/");
        if (result.status == 200) bodies.insert(result.body);
        return bodies.size() == 2;
      },
      absl::Seconds(10)))
      << embedded.Stderr();
  for (const std::string& body : bodies) {
    EXPECT_TRUE(absl::StartsWith(body, "embedded worker ")) << body;
  }
  embedded.Signal(SIGTERM);
  std::optional<int> status = embedded.Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value()) << embedded.Stderr();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << embedded.Stderr();
}

}  // namespace
}  // namespace cluster2
