// End-to-end: the master's monitor port (ECV, /metrics, the page and its
// live updates) and the Ecv RPCs through cluster2ctl.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
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
using ::cluster2::testing::ProcessAlive;
using ::cluster2::testing::RunCommand;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

struct RawResponse {
  int status = 0;    // 0 if no complete status line came
  std::string head;  // the status line and headers
  std::string body;
};

// A socket connected to 127.0.0.1:port from `source` (an address of
// 127/8), with `timeout` on connect, send and receive; -1 on failure.
int Connect(int port, const char* source, absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, source, &address.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A raw HTTP request (any method, `headers` each "Name: value") on a new
// connection from 127.0.0.1; "Host: 127.0.0.1:port" unless `headers` has
// one.
RawResponse HttpRequest(int port, const std::string& method,
                        const std::string& path,
                        const std::vector<std::string>& headers = {},
                        absl::Duration timeout = absl::Seconds(5)) {
  RawResponse result;
  int fd = Connect(port, "127.0.0.1", timeout);
  if (fd < 0) return result;
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\n");
  bool has_host = false;
  for (const std::string& header : headers) {
    absl::StrAppend(&request, header, "\r\n");
    has_host = has_host || absl::StartsWithIgnoreCase(header, "Host:");
  }
  if (!has_host) absl::StrAppend(&request, "Host: 127.0.0.1:", port, "\r\n");
  absl::StrAppend(&request, "Connection: close\r\n\r\n");
  ssize_t ignored = write(fd, request.data(), request.size());
  (void)ignored;
  // Until the end, a read timing out or `timeout` (a stream never ends).
  absl::Time deadline = absl::Now() + timeout;
  std::string response;
  char buffer[4096];
  ssize_t n;
  while (absl::Now() < deadline && (n = read(fd, buffer, sizeof(buffer))) > 0) {
    response.append(buffer, n);
  }
  close(fd);
  size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos || response.size() < 12 ||
      !absl::StartsWith(response, "HTTP/1.1 ") ||
      !absl::SimpleAtoi(response.substr(9, 3), &result.status)) {
    return result;
  }
  result.head = response.substr(0, head_end);
  result.body = response.substr(head_end + 4);
  return result;
}

// The control token the monitor page carries ("" if none).
std::string PageToken(const std::string& page) {
  const std::string kMarker = "name=\"cluster2-token\" content=\"";
  size_t start = page.find(kMarker);
  if (start == std::string::npos) return "";
  start += kMarker.size();
  return page.substr(start, page.find('"', start) - start);
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
  RawResponse response = HttpRequest(cluster.mon_port(), "POST", "/ecv/markUp");
  EXPECT_EQ(response.status, 200) << response.head;
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
  EXPECT_EQ(HttpRequest(good.mon_port(), "POST", "/ecv/markDown").status, 409);
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
        return absl::StrContains(
            HttpGet(cluster.mon_port(), "/metrics").body,
            "cluster2_workers{cluster=\"default\",state=\"failed\"} 1");
      },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  testing::HttpResult ecv = HttpGet(cluster.mon_port(), "/ecv");
  EXPECT_EQ(ecv.status, 503);
  EXPECT_TRUE(
      absl::StartsWith(ecv.body, "status=UNAVAILABLE&ServeTraffic=false"))
      << ecv.body;
  EXPECT_TRUE(absl::StrContains(HttpGet(cluster.mon_port(), "/metrics").body,
                                "cluster2_ecv_up{cluster=\"default\"} 0"));
}

TEST(MonitorTest, MetricsPassPromtool) {
  Cluster cluster(2);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(
            HttpGet(cluster.mon_port(), "/metrics").body,
            "cluster2_worker_resident_memory_bytes{cluster=\"default\",group="
            "\"default\",slot=\"1\"}");
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
  // The figures come from the master's once-a-second probe of the cache
  // server, not from a call inside the scrape: the key shows within ~1 s.
  std::string metrics;
  EXPECT_TRUE(WaitUntil(
      [&] {
        metrics = HttpGet(cluster.mon_port(), "/metrics").body;
        return absl::StrContains(
            metrics,
            "cluster2_cache_keys{cluster=\"default\",namespace=\"m\"} 1");
      },
      absl::Seconds(5)))
      << metrics;
  EXPECT_TRUE(
      absl::StrContains(metrics, "cluster2_cache_up{cluster=\"default\"} 1"))
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
  EXPECT_EQ(HttpRequest(cluster.mon_port(), "POST", "/api/recycle").status,
            400);
  EXPECT_EQ(
      HttpRequest(cluster.mon_port(), "POST", "/api/recycle?pid=1").status,
      404);
  EXPECT_EQ(HttpRequest(cluster.mon_port(), "GET", "/nope").status, 404);
}

TEST(MonitorTest, StateChangesNeedAPostAndABrowserNeedsTheToken) {
  Cluster cluster(2);
  const int port = cluster.mon_port();
  ASSERT_TRUE(WaitUntil([&] { return HttpGet(port, "/ecv").status == 200; },
                        absl::Seconds(10)))
      << cluster.master().Stderr();

  // A GET (an <img src>, a link) changes nothing.
  RawResponse get = HttpRequest(port, "GET", "/ecv/markDown");
  EXPECT_EQ(get.status, 405);
  EXPECT_TRUE(absl::StrContains(get.head, "\r\nAllow: POST")) << get.head;
  EXPECT_EQ(HttpRequest(port, "GET", "/api/markdown").status, 405);
  EXPECT_EQ(HttpRequest(port, "GET", "/api/restart").status, 405);
  EXPECT_EQ(HttpGet(port, "/ecv").status, 200);

  // Another site's form or fetch: no token, or a wrong one.
  EXPECT_EQ(HttpRequest(port, "POST", "/ecv/markDown",
                        {"Origin: http://evil.example"})
                .status,
            403);
  EXPECT_EQ(HttpRequest(port, "POST", "/api/markdown",
                        {"Origin: null", "Sec-Fetch-Site: cross-site",
                         "Content-Type: application/x-www-form-urlencoded"})
                .status,
            403);
  EXPECT_EQ(HttpRequest(port, "POST", "/api/markdown",
                        {"Referer: http://evil.example/"})
                .status,
            403);
  EXPECT_EQ(HttpRequest(port, "POST", "/ecv/markDown",
                        {"X-Cluster2-Token: 00000000000000000000000000000000"})
                .status,
            403);
  EXPECT_EQ(HttpGet(port, "/ecv").status, 200);

  // The page carries the token only when asked for by a name that cannot be
  // another site's (DNS rebinding).
  std::string token = PageToken(HttpGet(port, "/").body);
  EXPECT_EQ(token.size(), 32u) << token;
  EXPECT_EQ(PageToken(HttpRequest(port, "GET", "/",
                                  {absl::StrCat("Host: localhost:", port)})
                          .body),
            token);
  RawResponse rebound = HttpRequest(port, "GET", "/", {"Host: evil.example"});
  EXPECT_EQ(rebound.status, 200);
  EXPECT_EQ(PageToken(rebound.body), "");

  // The page's own POST, with the token.
  RawResponse page_post = HttpRequest(
      port, "POST", "/api/markdown",
      {absl::StrCat("Origin: http://127.0.0.1:", port),
       "Sec-Fetch-Site: same-origin", "X-Cluster2-Token: " + token});
  EXPECT_EQ(page_post.status, 200) << page_post.body;
  EXPECT_EQ(HttpGet(port, "/ecv").status, 404);

  // A script's plain POST (curl -X POST): no browser headers, no token.
  EXPECT_EQ(HttpRequest(port, "POST", "/ecv/markUp").status, 200);
  EXPECT_EQ(HttpGet(port, "/ecv").status, 200);
}

// The pid of the worker in state debugging, 0 if none (cluster2ctl workers
// -o json).
int DebuggingPid(Cluster& cluster) {
  for (const v1::Worker& worker : cluster.Workers()) {
    if (worker.state() == v1::WORKER_STATE_DEBUGGING) return worker.pid();
  }
  return 0;
}

TEST(MonitorTest, DebugAndStacksArePostsWithTheTokenAndAnswerJson) {
  const int debug_port = FreePort();
  const std::string address = absl::StrCat("127.0.0.1:", debug_port);
  // gdb loading symbols takes a core for about a second: a tight nanny
  // tolerance would kill the other worker as hung (debug_test.cc).
  Cluster cluster(2, {absl::StrCat("--debug.webPort=", debug_port),
                      "--nanny.tolerance=5000"});
  std::set<int> pids = cluster.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u) << cluster.master().Stderr();
  const int port = cluster.mon_port();
  const int target = *pids.begin();
  const int other = *pids.rbegin();
  const std::string token = PageToken(HttpGet(port, "/").body);
  ASSERT_EQ(token.size(), 32u);
  const std::vector<std::string> page = {
      absl::StrCat("Origin: http://127.0.0.1:", port),
      "Sec-Fetch-Site: same-origin", "X-Cluster2-Token: " + token};
  auto post = [&](const std::string& path) {
    return HttpRequest(port, "POST", path, page, absl::Seconds(40));
  };
  const std::string debug_target = absl::StrCat("/api/debug?pid=", target);

  // A GET, or a browser's POST without the token, changes nothing.
  RawResponse get = HttpRequest(port, "GET", debug_target);
  EXPECT_EQ(get.status, 405);
  EXPECT_TRUE(absl::StrContains(get.head, "\r\nAllow: POST")) << get.head;
  EXPECT_EQ(
      HttpRequest(port, "GET", absl::StrCat("/api/stacks?pid=", other)).status,
      405);
  EXPECT_EQ(
      HttpRequest(port, "POST", debug_target, {"Origin: http://evil.example"})
          .status,
      403);
  EXPECT_EQ(DebuggingPid(cluster), 0);
  EXPECT_TRUE(
      !absl::StrContains(HttpGet(port, "/api/state").body, "\"debug\":"));
  EXPECT_EQ(post("/api/debug").status, 400);
  EXPECT_EQ(post("/api/debug?pid=999999").status, 404);

  // The page's POST opens a session: the address and how to connect.
  RawResponse opened = post(debug_target);
  ASSERT_EQ(opened.status, 200) << opened.body << cluster.master().Stderr();
  EXPECT_TRUE(absl::StartsWith(opened.body, absl::StrCat("{\"pid\":", target)))
      << opened.body;
  EXPECT_TRUE(absl::StrContains(opened.body,
                                absl::StrCat("\"address\":\"", address, "\"")))
      << opened.body;
  EXPECT_TRUE(absl::StrContains(
      opened.body, absl::StrCat("gdb -ex 'target remote ", address, "'")))
      << opened.body;
  EXPECT_EQ(DebuggingPid(cluster), target);
  // Every page sees it.
  EXPECT_TRUE(absl::StrContains(HttpGet(port, "/api/state").body,
                                absl::StrCat("\"debug\":{\"pid\":", target)));

  // One session at a time; the refusal says which is open.
  const std::string open_reason =
      absl::StrCat("a debug session is open: pid ", target, " on ", address);
  for (const std::string& path : {absl::StrCat("/api/debug?pid=", other),
                                  std::string("/api/debug?fresh=1")}) {
    RawResponse refused = post(path);
    EXPECT_EQ(refused.status, 409) << path;
    EXPECT_TRUE(absl::StrContains(refused.body, open_reason)) << refused.body;
  }
  // Its debugger has the session's process.
  EXPECT_EQ(post(absl::StrCat("/api/stacks?pid=", target)).status, 409);

  // The stacks of another worker: its threads, by name.
  RawResponse stacks = post(absl::StrCat("/api/stacks?pid=", other));
  ASSERT_EQ(stacks.status, 200) << stacks.body;
  for (const char* name :
       {"\"name\":\"c2-heartbeat\"", "\"name\":\"hello_worker\""}) {
    EXPECT_TRUE(absl::StrContains(stacks.body, name)) << name << stacks.body;
  }
  EXPECT_TRUE(absl::StrContains(stacks.body, "\"frames\":[\"#0 "))
      << stacks.body;

  // The end: the process is killed, the state shows no session.
  RawResponse ended = post("/api/debug/end");
  EXPECT_EQ(ended.status, 200) << ended.body;
  EXPECT_TRUE(absl::StartsWith(ended.body, absl::StrCat("{\"pid\":", target)));
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessAlive(target); }, absl::Seconds(10)));
  EXPECT_TRUE(
      !absl::StrContains(HttpGet(port, "/api/state").body, "\"debug\":"));
  RawResponse none = post("/api/debug/end");
  EXPECT_EQ(none.status, 404) << none.body;
}

// Raises this process's soft limit on open files to the hard one: a flood
// needs more than the usual 1,024.
void RaiseOpenFileLimit() {
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = limit.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
}

// `count` connections to 127.0.0.1:port from 127.0.0.2 (an attacker
// distinct from the load balancer, which asks from 127.0.0.1), held until
// destroyed. The server may close any of them.
class ConnectionFlood {
 public:
  ConnectionFlood(int port, int count) {
    for (int i = 0; i < count; ++i) {
      int fd = Connect(port, "127.0.0.2", absl::Seconds(2));
      if (fd >= 0) fds_.push_back(fd);
    }
  }
  ~ConnectionFlood() {
    StopTrickle();
    for (int fd : fds_) close(fd);
  }
  size_t size() const { return fds_.size(); }

  // Slowloris: from now on one more byte of an endless request header on
  // every connection every 300 ms.
  void StartTrickle() {
    trickle_ = std::thread([this] {
      const std::string header = "GET /ecv HTTP/1.1\r\nX-Slow: ";
      for (size_t sent = 0;
           !stop_.WaitForNotificationWithTimeout(absl::Milliseconds(300));
           ++sent) {
        char byte = sent < header.size() ? header[sent] : 'a';
        for (int fd : fds_) send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    });
  }

 private:
  void StopTrickle() {
    if (!trickle_.joinable()) return;
    stop_.Notify();
    trickle_.join();
  }

  std::vector<int> fds_;
  absl::Notification stop_;
  std::thread trickle_;
};

// GET /ecv answers 200 within a second, three times.
void ExpectEcvAnswersFast(int port) {
  for (int i = 0; i < 3; ++i) {
    absl::Time start = absl::Now();
    RawResponse ecv = HttpRequest(port, "GET", "/ecv", {}, absl::Seconds(1));
    EXPECT_EQ(ecv.status, 200);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  }
}

TEST(MonitorTest, EcvAndMetricsAnswerThroughAFloodOfIdleConnections) {
  RaiseOpenFileLimit();
  Cluster cluster(1);
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.mon_port(), "/ecv").status == 200; },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  ConnectionFlood flood(cluster.mon_port(), 1100);
  ASSERT_GE(flood.size(), 1000u) << "the flood did not connect";
  ExpectEcvAnswersFast(cluster.mon_port());
  RawResponse metrics = HttpRequest(cluster.mon_port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(absl::StrContains(metrics.body,
                                "cluster2_ecv_up{cluster=\"default\"} 1"));
}

TEST(MonitorTest, EcvAnswersThroughASlowlorisFlood) {
  RaiseOpenFileLimit();
  Cluster cluster(1);
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.mon_port(), "/ecv").status == 200; },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  ConnectionFlood flood(cluster.mon_port(), 1100);
  ASSERT_GE(flood.size(), 1000u) << "the flood did not connect";
  flood.StartTrickle();
  ExpectEcvAnswersFast(cluster.mon_port());
  EXPECT_EQ(HttpRequest(cluster.mon_port(), "GET", "/metrics").status, 200);
}

TEST(MonitorTest, AnIdleConnectionIsClosedAfterTenSeconds) {
  Cluster cluster(1);
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.mon_port(), "/ecv").status == 200; },
      absl::Seconds(10)))
      << cluster.master().Stderr();
  int fd = Connect(cluster.mon_port(), "127.0.0.2", absl::Seconds(15));
  ASSERT_GE(fd, 0);
  absl::Time start = absl::Now();
  char byte;
  ssize_t n = read(fd, &byte, 1);  // the server's close, or our timeout
  absl::Duration held = absl::Now() - start;
  close(fd);
  EXPECT_EQ(n, 0) << "not closed by the server within 15 s";
  EXPECT_GE(held, absl::Seconds(9));
}

// A client of /api/events on its own connection.
class EventStreamClient {
 public:
  explicit EventStreamClient(int port)
      : fd_(Connect(port, "127.0.0.1", absl::Seconds(5))) {
    std::string request = absl::StrCat(
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:", port, "\r\n\r\n");
    if (fd_ >= 0) send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
  }
  ~EventStreamClient() {
    if (fd_ >= 0) close(fd_);
  }
  // Reads until what came so far (from the start) contains `text`; false
  // at `deadline` or the end of the stream.
  bool ReadUntil(absl::string_view text, absl::Time deadline) {
    while (!absl::StrContains(received_.substr(consumed_), text)) {
      if (fd_ < 0 || absl::Now() > deadline) return false;
      pollfd ready{fd_, POLLIN, 0};
      int wait_ms =
          static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (poll(&ready, 1, std::max(wait_ms, 0)) <= 0) continue;
      char buffer[4096];
      ssize_t n = read(fd_, buffer, sizeof(buffer));
      if (n <= 0) return false;
      received_.append(buffer, n);
    }
    consumed_ = received_.size();
    return true;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_;
  std::string received_;
  size_t consumed_ = 0;
};

TEST(MonitorTest, EventStreamsAreBoundedAndHoldNoThread) {
  Cluster cluster(1);
  const int port = cluster.mon_port();
  ASSERT_TRUE(WaitUntil([&] { return HttpGet(port, "/ecv").status == 200; },
                        absl::Seconds(10)))
      << cluster.master().Stderr();
  // More streams than the server has threads; each gets the state.
  constexpr int kStreams = 16;  // MonitorServer's limit
  std::vector<std::unique_ptr<EventStreamClient>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<EventStreamClient>(port));
    ASSERT_TRUE(
        streams.back()->ReadUntil("data: {", absl::Now() + absl::Seconds(5)))
        << i << ": " << streams.back()->received();
  }
  ExpectEcvAnswersFast(port);
  RawResponse refused =
      HttpRequest(port, "GET", "/api/events", {}, absl::Seconds(2));
  EXPECT_EQ(refused.status, 503) << refused.head;
  // A change reaches every stream.
  ASSERT_EQ(HttpRequest(port, "POST", "/api/markdown").status, 200);
  for (auto& stream : streams) {
    EXPECT_TRUE(stream->ReadUntil("\"health\":\"marked down\"",
                                  absl::Now() + absl::Seconds(3)))
        << stream->received();
  }
  // A closed stream frees its place.
  streams.pop_back();
  EXPECT_TRUE(WaitUntil(
      [&] {
        EventStreamClient stream(port);
        return stream.ReadUntil("data: {", absl::Now() + absl::Seconds(1));
      },
      absl::Seconds(5)));
  // The master stops cleanly with streams open: libmicrohttpd must not be
  // stopped with a connection suspended.
  cluster.master().Signal(SIGTERM);
  std::optional<int> status = cluster.master().Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value()) << "master did not stop";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << *status << cluster.master().Stderr();
}

}  // namespace
}  // namespace cluster2
