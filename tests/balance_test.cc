// End-to-end: the default balance (even) with real hello workers. New
// connections are spread over the ready workers; a paused worker and a
// slot scaled away get none, and no request fails meanwhile.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/test_cluster.h"

namespace cluster2 {
namespace {

using Cluster = ::cluster2::testing::TestCluster;
using ::cluster2::testing::CommandResult;
using ::cluster2::testing::LoadGenerator;
using ::cluster2::testing::WaitUntil;

// A keep-alive connection that made one request: which worker answered
// and from which source port.
struct KeptConnection {
  int fd = -1;
  uint16_t source_port = 0;
  int worker_id = -1;
};

KeptConnection ConnectAndAsk(int port) {
  KeptConnection kept;
  kept.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  setsockopt(kept.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(kept.fd, reinterpret_cast<sockaddr*>(&address),
              sizeof(address)) != 0) {
    return kept;
  }
  sockaddr_in local{};
  socklen_t length = sizeof(local);
  getsockname(kept.fd, reinterpret_cast<sockaddr*>(&local), &length);
  kept.source_port = ntohs(local.sin_port);
  const std::string request = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
  if (write(kept.fd, request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    return kept;
  }
  // The body is "worker <id> pid <pid>\n": read up to its newline.
  std::string response;
  char buffer[1024];
  while (
      !absl::StrContains(response, "\r\n\r\n") ||
      !absl::EndsWith(response, "\n") ||
      !absl::StrContains(response.substr(response.find("\r\n\r\n")), "pid")) {
    ssize_t n = read(kept.fd, buffer, sizeof(buffer));
    if (n <= 0) return kept;
    response.append(buffer, static_cast<size_t>(n));
  }
  std::string body = response.substr(response.find("\r\n\r\n") + 4);
  std::vector<std::string> words =
      absl::StrSplit(body, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  if (words.size() == 4 && words[0] == "worker") {
    absl::SimpleAtoi(words[1], &kept.worker_id);
  }
  return kept;
}

// How the master spreads connections, from its log.
enum class Method { kRoundRobin, kSourcePort, kUnknown };
Method MethodOf(Cluster& cluster) {
  std::string log = cluster.master().Stderr();
  if (absl::StrContains(log, "balance: even, round robin"))
    return Method::kRoundRobin;
  if (absl::StrContains(log, "balance: even, source port"))
    return Method::kSourcePort;
  return Method::kUnknown;
}

uint64_t RequestsOf(Cluster& cluster, int pid) {
  for (const v1::Worker& worker : cluster.Workers()) {
    if (worker.pid() == pid) return worker.last_heartbeat().requests_total();
  }
  return 0;
}

// Waits until two heartbeats of `pid` arrived after now, so its request
// counter covers everything until now.
bool AwaitFreshCounters(Cluster& cluster, int pid) {
  auto heartbeat_at = [&]() -> int64_t {
    for (const v1::Worker& worker : cluster.Workers()) {
      if (worker.pid() == pid)
        return worker.last_heartbeat_at().seconds() * 1000000000 +
               worker.last_heartbeat_at().nanos();
    }
    return 0;
  };
  for (int beats = 0; beats < 2; ++beats) {
    int64_t before = heartbeat_at();
    if (!WaitUntil([&] { return heartbeat_at() > before; }, absl::Seconds(5)))
      return false;
  }
  return true;
}

// The accept queue (connections waiting) of the listening socket that
// worker `pid` has as fd 3, from /proc/net/tcp; -1 if not found.
int AcceptQueueOf(int pid) {
  char link[256] = {};
  std::string fd = absl::StrCat("/proc/", pid, "/fd/3");
  ssize_t n = readlink(fd.c_str(), link, sizeof(link) - 1);
  if (n <= 0) return -1;
  std::string target(link, static_cast<size_t>(n));  // socket:[inode]
  if (!absl::StartsWith(target, "socket:[")) return -1;
  std::string inode = target.substr(8, target.size() - 9);
  std::ifstream table("/proc/net/tcp");
  std::string line;
  while (std::getline(table, line)) {
    std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    // sl local remote st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
    if (fields.size() > 9 && fields[9] == inode && fields[3] == "0A") {
      std::vector<std::string> queues = absl::StrSplit(fields[4], ':');
      return static_cast<int>(std::stoul(queues[1], nullptr, 16));
    }
  }
  return -1;
}

TEST(BalanceTest, SequentialKeepAliveConnectionsAreSpreadEvenly) {
  Cluster cluster(4);
  ASSERT_EQ(cluster.WaitReady(4).size(), 4u) << cluster.master().Stderr();
  const Method method = MethodOf(cluster);
  ASSERT_NE(method, Method::kUnknown) << cluster.master().Stderr();
  std::vector<KeptConnection> connections;
  std::map<int, int> per_worker;
  for (int i = 0; i < 40; ++i) {
    connections.push_back(ConnectAndAsk(cluster.port()));
    const KeptConnection& kept = connections.back();
    ASSERT_GE(kept.worker_id, 0) << "connection " << i;
    ++per_worker[kept.worker_id];
    if (method == Method::kSourcePort) {
      // The program's choice, exactly: windows of 16 source ports in turn.
      EXPECT_EQ(kept.worker_id, (kept.source_port >> 4) % 4)
          << "source port " << kept.source_port;
    }
  }
  for (const KeptConnection& kept : connections) close(kept.fd);
  ASSERT_EQ(per_worker.size(), 4u);
  if (method == Method::kRoundRobin) {
    for (const auto& [id, count] : per_worker) {
      EXPECT_EQ(count, 10) << "worker " << id;
    }
  }
}

TEST(BalanceTest, PauseUnderLoadRoutesNothingToThePausedWorker) {
  Cluster cluster(4);
  std::set<int> pids = cluster.WaitReady(4);
  ASSERT_EQ(pids.size(), 4u) << cluster.master().Stderr();
  const int paused = *pids.begin();
  LoadGenerator load(cluster.port(), 8, /*keep_alive=*/true);
  ASSERT_TRUE(WaitUntil([&] { return load.ok() > 500; }, absl::Seconds(10)));
  CommandResult pause = cluster.Ctl({"pause", std::to_string(paused)});
  ASSERT_EQ(pause.exit_code, 0) << pause.err << cluster.master().Stderr();
  ASSERT_TRUE(AwaitFreshCounters(cluster, paused));
  const uint64_t at_pause = RequestsOf(cluster, paused);
  const uint64_t ok_at_pause = load.ok();
  // Under load (keep-alive clients of the paused worker reconnected), its
  // socket never holds a waiting connection and it serves nothing.
  int samples = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        EXPECT_EQ(AcceptQueueOf(paused), 0) << "sample " << samples;
        ++samples;
        return load.ok() > ok_at_pause + 2000 && samples >= 20;
      },
      absl::Seconds(20)));
  ASSERT_TRUE(AwaitFreshCounters(cluster, paused));
  EXPECT_EQ(RequestsOf(cluster, paused), at_pause);
  CommandResult resume = cluster.Ctl({"resume", std::to_string(paused)});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  // The load's keep-alive connections stay where they are; new ones reach
  // the resumed worker again.
  int paused_id = -1;
  for (const v1::Worker& worker : cluster.Workers()) {
    if (worker.pid() == paused) paused_id = static_cast<int>(worker.id());
  }
  EXPECT_TRUE(WaitUntil(
      [&] {
        KeptConnection kept = ConnectAndAsk(cluster.port());
        close(kept.fd);
        return kept.worker_id == paused_id;
      },
      absl::Seconds(10)))
      << "the resumed worker gets connections again";
  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << ::testing::PrintToString(load.errors());
}

TEST(BalanceTest, ScaleDownUnderLoadLosesNothingAndScaleUpReusesTheSlot) {
  Cluster cluster(4);
  ASSERT_EQ(cluster.WaitReady(4).size(), 4u) << cluster.master().Stderr();
  LoadGenerator load(cluster.port(), 8, /*keep_alive=*/false);
  ASSERT_TRUE(WaitUntil([&] { return load.ok() > 500; }, absl::Seconds(10)));
  CommandResult scale = cluster.Ctl({"scale", "2"});
  ASSERT_EQ(scale.exit_code, 0) << scale.err;
  ASSERT_EQ(cluster.WaitReady(2).size(), 2u) << cluster.master().Stderr();
  const uint64_t ok_at_scale = load.ok();
  ASSERT_TRUE(WaitUntil([&] { return load.ok() > ok_at_scale + 1000; },
                        absl::Seconds(20)));
  for (const v1::Worker& worker : cluster.Workers()) EXPECT_LT(worker.id(), 2u);
  ASSERT_EQ(cluster.Ctl({"scale", "4"}).exit_code, 0);
  ASSERT_EQ(cluster.WaitReady(4).size(), 4u) << cluster.master().Stderr();
  std::set<int> serving;
  EXPECT_TRUE(WaitUntil(
      [&] {
        KeptConnection kept = ConnectAndAsk(cluster.port());
        close(kept.fd);
        serving.insert(kept.worker_id);
        return serving.count(2) > 0 && serving.count(3) > 0;
      },
      absl::Seconds(10)))
      << "slots 2 and 3 serve again on their sockets";
  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << ::testing::PrintToString(load.errors());
}

}  // namespace
}  // namespace cluster2
