#include "master/internal/monitor_routes.h"

#include <arpa/inet.h>
#include <sys/random.h>

#include <cerrno>
#include <climits>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace cluster2 {

namespace {

MonitorRoute RouteOf(absl::string_view path, const MonitorRoutePolicy& policy) {
  if (path == policy.ecv_root) return MonitorRoute::kEcv;
  if (path == policy.mark_up || path == "/api/markup")
    return MonitorRoute::kMarkUp;
  if (path == policy.mark_down || path == "/api/markdown")
    return MonitorRoute::kMarkDown;
  if (path == "/api/restart") return MonitorRoute::kRestart;
  if (path == "/api/recycle") return MonitorRoute::kRecycle;
  if (path == "/api/debug") return MonitorRoute::kDebug;
  if (path == "/api/debug/end") return MonitorRoute::kDebugEnd;
  if (path == "/api/stacks") return MonitorRoute::kStacks;
  if (path == "/metrics") return MonitorRoute::kMetrics;
  if (path == "/" || path == "/debug") return MonitorRoute::kPage;
  if (path == "/api/state") return MonitorRoute::kState;
  if (path == "/api/events") return MonitorRoute::kEvents;
  if (path == "/api/history") return MonitorRoute::kHistory;
  return MonitorRoute::kNotFound;
}

}  // namespace

bool ChangesState(MonitorRoute route) {
  return route == MonitorRoute::kMarkUp || route == MonitorRoute::kMarkDown ||
         route == MonitorRoute::kRestart || route == MonitorRoute::kRecycle ||
         route == MonitorRoute::kDebug || route == MonitorRoute::kDebugEnd ||
         route == MonitorRoute::kStacks;
}

const char* AllowedMethods(MonitorRoute route) {
  return ChangesState(route) ? "POST" : "GET, HEAD";
}

unsigned HttpStatus(MonitorVerdict verdict) {
  switch (verdict) {
    case MonitorVerdict::kServe:
      return 200;
    case MonitorVerdict::kMethodNotAllowed:
      return 405;
    case MonitorVerdict::kRemoteControlRefused:
    case MonitorVerdict::kBrowserWithoutToken:
    case MonitorVerdict::kWrongToken:
      return 403;
  }
  return 500;
}

MonitorDecision ClassifyRequest(const MonitorRequest& request,
                                const MonitorRoutePolicy& policy) {
  MonitorDecision decision;
  decision.route = RouteOf(request.path, policy);
  if (decision.route == MonitorRoute::kNotFound) return decision;
  if (!ChangesState(decision.route)) {
    if (request.method != "GET" && request.method != "HEAD")
      decision.verdict = MonitorVerdict::kMethodNotAllowed;
    return decision;
  }
  if (request.method != "POST") {
    decision.verdict = MonitorVerdict::kMethodNotAllowed;
  } else if (!request.from_loopback && !policy.allow_remote_control) {
    decision.verdict = MonitorVerdict::kRemoteControlRefused;
  } else if (request.token.has_value()) {
    if (!TokenMatches(*request.token, policy.token))
      decision.verdict = MonitorVerdict::kWrongToken;
  } else if (request.origin.has_value() || request.sec_fetch_site.has_value() ||
             request.referer.has_value()) {
    decision.verdict = MonitorVerdict::kBrowserWithoutToken;
  }
  return decision;
}

std::optional<int> ParsePid(absl::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  int64_t pid = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
    pid = pid * 10 + (c - '0');
  }
  if (pid < 1 || pid > INT_MAX) return std::nullopt;
  return static_cast<int>(pid);
}

bool HostMayReceiveToken(absl::string_view host, absl::string_view hostname) {
  // Only the characters of names, addresses and ports: inet_pton stops at
  // a NUL, which would let "127.0.0.1\0.evil.example" pass.
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '-' && c != ':' && c != '[' && c != ']') {
      return false;
    }
  }
  absl::string_view name = host;
  if (absl::ConsumePrefix(&name, "[")) {  // [IPv6]:port
    size_t end = name.find(']');
    if (end == absl::string_view::npos) return false;
    absl::string_view rest = name.substr(end + 1);
    if (!rest.empty() && rest[0] != ':') return false;
    std::string literal(name.substr(0, end));
    in6_addr v6;
    return inet_pton(AF_INET6, literal.c_str(), &v6) == 1;
  }
  size_t colon = name.find(':');
  if (colon != absl::string_view::npos) {
    if (name.find(':', colon + 1) != absl::string_view::npos) return false;
    name = name.substr(0, colon);
  }
  if (name.empty()) return false;
  std::string text(name);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return true;
  return absl::EqualsIgnoreCase(name, "localhost") ||
         (!hostname.empty() && absl::EqualsIgnoreCase(name, hostname));
}

bool TokenMatches(absl::string_view given, absl::string_view token) {
  if (token.empty() || given.size() != token.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < token.size(); ++i)
    difference |= static_cast<unsigned char>(given[i] ^ token[i]);
  return difference == 0;
}

absl::StatusOr<std::string> NewControlToken() {
  char bytes[16];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "getrandom for the monitor's control token");
    }
    filled += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

}  // namespace cluster2
