#include "master/internal/monitor_routes.h"

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

MonitorRoutePolicy Policy() {
  MonitorRoutePolicy policy;
  policy.token = kToken;
  return policy;
}

MonitorRequest Post(absl::string_view path) {
  MonitorRequest request;
  request.method = "POST";
  request.path = path;
  request.from_loopback = true;
  return request;
}

TEST(MonitorRoutesTest, ReadsAreServedToGetAndHeadOnly) {
  MonitorRequest request;
  request.path = "/metrics";
  for (absl::string_view method : {"GET", "HEAD"}) {
    request.method = method;
    MonitorDecision decision = ClassifyRequest(request, Policy());
    EXPECT_EQ(decision.route, MonitorRoute::kMetrics);
    EXPECT_EQ(decision.verdict, MonitorVerdict::kServe);
  }
  request.method = "POST";
  EXPECT_EQ(ClassifyRequest(request, Policy()).verdict,
            MonitorVerdict::kMethodNotAllowed);
  EXPECT_STREQ(AllowedMethods(MonitorRoute::kMetrics), "GET, HEAD");
  request.method = "GET";
  request.path = "/ecv";
  EXPECT_EQ(ClassifyRequest(request, Policy()).route, MonitorRoute::kEcv);
  request.path = "/debug";
  EXPECT_EQ(ClassifyRequest(request, Policy()).route, MonitorRoute::kPage);
  request.path = "/api/events";
  EXPECT_EQ(ClassifyRequest(request, Policy()).route, MonitorRoute::kEvents);
  request.path = "/api/history";
  EXPECT_EQ(ClassifyRequest(request, Policy()).route, MonitorRoute::kHistory);
  request.path = "/nope";
  MonitorDecision unknown = ClassifyRequest(request, Policy());
  EXPECT_EQ(unknown.route, MonitorRoute::kNotFound);
  EXPECT_EQ(unknown.verdict, MonitorVerdict::kServe);
}

TEST(MonitorRoutesTest, StateChangesAreRefusedToEveryMethodButPost) {
  for (absl::string_view path :
       {"/ecv/markUp", "/ecv/markDown", "/api/markup", "/api/markdown",
        "/api/restart", "/api/recycle", "/api/debug", "/api/debug/end",
        "/api/stacks"}) {
    for (absl::string_view method : {"GET", "HEAD", "PUT", "DELETE", ""}) {
      MonitorRequest request = Post(path);
      request.method = method;
      request.token = kToken;  // not even with the token
      MonitorDecision decision = ClassifyRequest(request, Policy());
      EXPECT_TRUE(ChangesState(decision.route)) << path;
      EXPECT_EQ(decision.verdict, MonitorVerdict::kMethodNotAllowed)
          << method << " " << path;
      EXPECT_STREQ(AllowedMethods(decision.route), "POST");
    }
  }
  EXPECT_EQ(HttpStatus(MonitorVerdict::kMethodNotAllowed), 405u);
}

TEST(MonitorRoutesTest, DebugAndStacksAreControlActions) {
  EXPECT_EQ(ClassifyRequest(Post("/api/debug"), Policy()).route,
            MonitorRoute::kDebug);
  EXPECT_EQ(ClassifyRequest(Post("/api/debug/end"), Policy()).route,
            MonitorRoute::kDebugEnd);
  EXPECT_EQ(ClassifyRequest(Post("/api/stacks"), Policy()).route,
            MonitorRoute::kStacks);
  EXPECT_EQ(ClassifyRequest(Post("/api/debug/"), Policy()).route,
            MonitorRoute::kNotFound);
  for (absl::string_view path :
       {"/api/debug", "/api/debug/end", "/api/stacks"}) {
    MonitorRequest browser = Post(path);
    browser.origin = "http://127.0.0.1:8081";
    browser.sec_fetch_site = "same-origin";
    EXPECT_EQ(ClassifyRequest(browser, Policy()).verdict,
              MonitorVerdict::kBrowserWithoutToken)
        << path;
    browser.token = kToken;
    EXPECT_EQ(ClassifyRequest(browser, Policy()).verdict,
              MonitorVerdict::kServe)
        << path;
    MonitorRequest remote = Post(path);
    remote.from_loopback = false;
    remote.token = kToken;
    EXPECT_EQ(ClassifyRequest(remote, Policy()).verdict,
              MonitorVerdict::kRemoteControlRefused)
        << path;
  }
}

TEST(MonitorRoutesTest, ConfiguredEcvUrlsAreRouted) {
  MonitorRoutePolicy policy = Policy();
  policy.ecv_root = "/health";
  policy.mark_up = "/health/on";
  policy.mark_down = "/health/off";
  EXPECT_EQ(ClassifyRequest(Post("/health/on"), policy).route,
            MonitorRoute::kMarkUp);
  EXPECT_EQ(ClassifyRequest(Post("/health/off"), policy).route,
            MonitorRoute::kMarkDown);
  EXPECT_EQ(ClassifyRequest(Post("/ecv/markUp"), policy).route,
            MonitorRoute::kNotFound);
  EXPECT_EQ(ClassifyRequest(Post("/api/markup"), policy).route,
            MonitorRoute::kMarkUp);
}

TEST(MonitorRoutesTest, AScriptsPlainPostPasses) {
  MonitorDecision decision = ClassifyRequest(Post("/ecv/markDown"), Policy());
  EXPECT_EQ(decision.route, MonitorRoute::kMarkDown);
  EXPECT_EQ(decision.verdict, MonitorVerdict::kServe);
}

TEST(MonitorRoutesTest, ABrowsersPostNeedsTheToken) {
  MonitorRequest origin = Post("/api/restart");
  origin.origin = "http://evil.example";
  EXPECT_EQ(ClassifyRequest(origin, Policy()).verdict,
            MonitorVerdict::kBrowserWithoutToken);
  MonitorRequest fetch_site = Post("/api/restart");
  fetch_site.sec_fetch_site = "same-origin";
  EXPECT_EQ(ClassifyRequest(fetch_site, Policy()).verdict,
            MonitorVerdict::kBrowserWithoutToken);
  MonitorRequest referer = Post("/api/restart");
  referer.referer = "http://evil.example/";
  EXPECT_EQ(ClassifyRequest(referer, Policy()).verdict,
            MonitorVerdict::kBrowserWithoutToken);
  EXPECT_EQ(HttpStatus(MonitorVerdict::kBrowserWithoutToken), 403u);

  origin.token = kToken;
  EXPECT_EQ(ClassifyRequest(origin, Policy()).verdict, MonitorVerdict::kServe);
  origin.token = "0123456789abcdef0123456789abcdee";
  EXPECT_EQ(ClassifyRequest(origin, Policy()).verdict,
            MonitorVerdict::kWrongToken);
}

TEST(MonitorRoutesTest, AWrongTokenIsRefusedEvenToAScript) {
  MonitorRequest request = Post("/api/markdown");
  request.token = "";
  EXPECT_EQ(ClassifyRequest(request, Policy()).verdict,
            MonitorVerdict::kWrongToken);
  // Without a token of its own, the server takes none.
  request.token = "";
  EXPECT_EQ(ClassifyRequest(request, MonitorRoutePolicy()).verdict,
            MonitorVerdict::kWrongToken);
}

TEST(MonitorRoutesTest, RemoteStateChangesNeedAllowRemoteControl) {
  MonitorRequest request = Post("/ecv/markUp");
  request.from_loopback = false;
  EXPECT_EQ(ClassifyRequest(request, Policy()).verdict,
            MonitorVerdict::kRemoteControlRefused);
  MonitorRoutePolicy remote = Policy();
  remote.allow_remote_control = true;
  EXPECT_EQ(ClassifyRequest(request, remote).verdict, MonitorVerdict::kServe);
  request.origin = "http://10.0.0.9:8081";
  EXPECT_EQ(ClassifyRequest(request, remote).verdict,
            MonitorVerdict::kBrowserWithoutToken);
  // Reads are anyone's.
  request.method = "GET";
  request.path = "/ecv";
  EXPECT_EQ(ClassifyRequest(request, Policy()).verdict, MonitorVerdict::kServe);
}

TEST(MonitorRoutesTest, ParsePidTakesOnlyAPositiveDecimal) {
  EXPECT_EQ(ParsePid("1"), 1);
  EXPECT_EQ(ParsePid("4242"), 4242);
  EXPECT_EQ(ParsePid("2147483647"), 2147483647);
  for (absl::string_view bad : {"", "0", "-1", "+5", " 5", "5 ", "5x", "0x10",
                                "2147483648", "99999999999", "1e3"}) {
    EXPECT_EQ(ParsePid(bad), std::nullopt) << bad;
  }
}

TEST(MonitorRoutesTest, OnlyAddressesLocalhostAndTheHostNameGetTheToken) {
  for (absl::string_view host :
       {"127.0.0.1", "127.0.0.1:8081", "10.1.2.3:80", "[::1]:8081", "[::1]",
        "localhost", "LOCALHOST:8081", "node1", "Node1:8081"}) {
    EXPECT_TRUE(HostMayReceiveToken(host, "node1")) << host;
  }
  for (absl::string_view host :
       {"", "evil.example", "evil.example:8081", "node1.evil.example",
        "127.0.0.1.evil.example", "[::1", "[::1]x", "[evil]:1", "::1", ":8081",
        "localhost.evil.example"}) {
    EXPECT_FALSE(HostMayReceiveToken(host, "node1")) << host;
  }
  EXPECT_FALSE(HostMayReceiveToken("", ""));
  // Found by the fuzz target: inet_pton stops at a NUL.
  EXPECT_FALSE(HostMayReceiveToken(
      absl::string_view("127.0.0.1\0.evil.example", 23), "node1"));
  EXPECT_FALSE(HostMayReceiveToken("127.0.0.1 x", "node1"));
}

TEST(MonitorRoutesTest, TokenMatchesOnlyTheWholeToken) {
  EXPECT_TRUE(TokenMatches(kToken, kToken));
  EXPECT_FALSE(TokenMatches("0123456789abcdef", kToken));
  EXPECT_FALSE(TokenMatches("", ""));
}

TEST(MonitorRoutesTest, NewControlTokensAre128RandomBitsInHex) {
  absl::StatusOr<std::string> first = NewControlToken();
  absl::StatusOr<std::string> second = NewControlToken();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->size(), 32u);
  EXPECT_EQ(first->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(*first, *second);
}

}  // namespace
}  // namespace cluster2
