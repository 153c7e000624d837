// End-to-end: the master's monitor port (ECV, /metrics, the page and its
// live updates) and the Ecv RPCs through cluster2ctl.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cache.grpc.pb.h"
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
using ::cluster2::testing::RunCommand;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

// A raw HTTP request (any method) on a new connection; the whole response.
std::string HttpRequest(int port, const std::string& method,
                        const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return "";
  }
  std::string request = absl::StrCat(
      method, " ", path, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ssize_t ignored = write(fd, request.data(), request.size());
  (void)ignored;
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

TEST(MonitorTest, EcvIsUpOnceReadyAndMarkDownDrainsWith404) {
  Cluster cluster(2);
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.mon_port(), "/ecv").status == 200; },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  testing::HttpResult up = HttpGet(cluster.mon_port(), "/ecv");
  EXPECT_TRUE(
      absl::StartsWith(up.body, "status=AVAILABLE&ServeTraffic=true&ip="))
      << up.body;
  EXPECT_TRUE(absl::StrContains(
      up.body, absl::StrCat("&port=", cluster.port(), "&time=")));

  CommandResult down = cluster.Ctl({"markdown"});
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_TRUE(
      absl::StartsWith(down.out, "marked_down (control mode, 2 ready workers"))
      << down.out;
  testing::HttpResult drained = HttpGet(cluster.mon_port(), "/ecv");
  EXPECT_EQ(drained.status, 404);
  EXPECT_TRUE(
      absl::StartsWith(drained.body, "status=DISABLED&ServeTraffic=false"))
      << drained.body;
  EXPECT_EQ(HttpGet(cluster.port(), "/").status, 200)
      << "marked down still serves";

  // The HTTP switch, from loopback.
  std::string response = HttpRequest(cluster.mon_port(), "GET", "/ecv/markUp");
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 200")) << response;
  EXPECT_EQ(HttpGet(cluster.mon_port(), "/ecv").status, 200);
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(),
                                "ECV marked down by grpc: cluster2ctl"))
      << cluster.master().Stderr();
  EXPECT_TRUE(absl::StrContains(cluster.master().Stderr(),
                                "ECV marked up by http 127.0.0.1"));
}

TEST(MonitorTest, MonitorModeFollowsTheAppCheckThroughTheSharedPort) {
  // hello_worker answers 200 on / and 404 elsewhere.
  Cluster good(1, {"--ecv.mode=monitor", "--ecv.monitor=/",
                   "--ecv.monitorBody=pid", "--ecv.monitorInterval=100"});
  ASSERT_TRUE(
      WaitUntil([&] { return HttpGet(good.mon_port(), "/ecv").status == 200; },
                absl::Seconds(10)))
      << good.master().Stderr();
  EXPECT_EQ(HttpRequest(good.mon_port(), "GET", "/ecv/markDown").substr(0, 12),
            "HTTP/1.1 409");
  Cluster bad(1, {"--ecv.mode=monitor", "--ecv.monitor=/missing",
                  "--ecv.monitorInterval=100"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(bad.Ctl({"ecv"}).out,
                                 "status 404, expected 200");
      },
      absl::Seconds(10)))
      << bad.Ctl({"ecv"}).out << bad.master().Stderr();
  EXPECT_EQ(HttpGet(bad.mon_port(), "/ecv").status, 503);
}

TEST(MonitorTest, NoReadyWorkerIs503AndShowsInMetrics) {
  Cluster cluster(1, {"--crashLoopLimit=2"}, "/bin/false");
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(HttpGet(cluster.mon_port(), "/metrics").body,
                                 "cluster2_workers{state=\"failed\"} 1");
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  testing::HttpResult ecv = HttpGet(cluster.mon_port(), "/ecv");
  EXPECT_EQ(ecv.status, 503);
  EXPECT_TRUE(
      absl::StartsWith(ecv.body, "status=UNAVAILABLE&ServeTraffic=false"))
      << ecv.body;
  EXPECT_TRUE(absl::StrContains(HttpGet(cluster.mon_port(), "/metrics").body,
                                "cluster2_ecv_up 0"));
}

TEST(MonitorTest, MetricsPassPromtool) {
  Cluster cluster(2);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(
            HttpGet(cluster.mon_port(), "/metrics").body,
            "cluster2_worker_resident_memory_bytes{slot=\"1\"");
      },
      absl::Seconds(10)));
  // The cache's figures, per namespace.
  auto cache = v1::Cache::NewStub(
      grpc::CreateChannel("unix:" + cluster.run_dir() + "/cache.sock",
                          grpc::InsecureChannelCredentials()));
  auto call = [](auto method) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    return method(&context);
  };
  v1::UseRequest use;
  use.set_namespace_("m");
  v1::UseResponse used;
  ASSERT_TRUE(call([&](grpc::ClientContext* c) {
                return cache->Use(c, use, &used);
              }).ok());
  v1::SetRequest set;
  set.set_namespace_("m");
  set.set_key("k");
  set.set_value("v");
  v1::SetResponse written;
  ASSERT_TRUE(call([&](grpc::ClientContext* c) {
                return cache->Set(c, set, &written);
              }).ok());
  std::string metrics = HttpGet(cluster.mon_port(), "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, "cluster2_cache_up 1")) << metrics;
  EXPECT_TRUE(
      absl::StrContains(metrics, "cluster2_cache_keys{namespace=\"m\"} 1"))
      << metrics;
  TempDir tmp;
  std::string path = tmp.path() + "/metrics.txt";
  { std::ofstream(path) << HttpGet(cluster.mon_port(), "/metrics").body; }
  CommandResult check =
      RunCommand({"/bin/sh", "-c",
                  absl::StrCat("/usr/bin/promtool check metrics < ", path)});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool found problems";
}

TEST(MonitorTest, PageAndLiveStateFollowAKilledWorker) {
  Cluster cluster(2);
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.mon_port(), "/ecv").status == 200; },
      absl::Seconds(10)));
  testing::HttpResult page = HttpGet(cluster.mon_port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_TRUE(absl::StrContains(page.body, "<table id=\"workers\">"));
  EXPECT_TRUE(absl::StrContains(page.body, "new EventSource('/api/events')"));
  std::string state = HttpGet(cluster.mon_port(), "/api/state").body;
  EXPECT_TRUE(absl::StrContains(state, "\"health\":\"up\"")) << state;
  EXPECT_EQ(
      HttpRequest(cluster.mon_port(), "POST", "/api/recycle").substr(0, 12),
      "HTTP/1.1 400");
  EXPECT_EQ(HttpRequest(cluster.mon_port(), "POST", "/api/recycle?pid=1")
                .substr(0, 12),
            "HTTP/1.1 404");
  EXPECT_EQ(HttpRequest(cluster.mon_port(), "GET", "/nope").substr(0, 12),
            "HTTP/1.1 404");
}

}  // namespace
}  // namespace cluster2
