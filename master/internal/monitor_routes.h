// The routing and authorization of the monitor port's requests: which
// handler of MonitorServer a request goes to, or which refusal it gets. A
// pure function of the request's method, path and a few headers, so it is
// unit-tested and fuzzed without a server.
//
// Control actions (the state changes: the ECV's markUp and markDown URLs,
// /api/markup, /api/markdown, /api/restart, /api/recycle, /api/debug,
// /api/debug/end; and /api/stacks, which changes no state but stops a
// worker for up to a second and writes to the log) are accepted
//   1. by POST only: any other method changes nothing and is answered
//      405 with "Allow: POST";
//   2. from a loopback address, unless the ECV allows remote control
//      (403 otherwise);
//   3. with the control token, or from a client that is not a browser:
//      a POST carrying `X-Cluster2-Token: <token>` passes; one carrying a
//      wrong token is refused (403); one carrying none passes only if it has
//      none of the headers browsers add to every cross-site POST (Origin,
//      Sec-Fetch-Site, Referer), as `curl -X POST` and load balancer scripts
//      have none.
// A web page of another site cannot set a custom header on a cross-site
// request without the server's CORS consent (never given here), and cannot
// read the token out of the monitor page (same-origin policy). The page is
// given the token only when asked for by a Host a DNS-rebinding site cannot
// use (HostMayReceiveToken).
//
// Thread-safe: everything here is a pure function, except
// NewControlToken, which reads the kernel's random source.
#ifndef CLUSTER2_MASTER_INTERNAL_MONITOR_ROUTES_H_
#define CLUSTER2_MASTER_INTERNAL_MONITOR_ROUTES_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// The handlers of the monitor port.
enum class MonitorRoute {
  kEcv,       // GET the ECV
  kMarkUp,    // state change: the ECV's markUp URL or /api/markup
  kMarkDown,  // state change: the ECV's markDown URL or /api/markdown
  kRestart,   // state change: /api/restart, a rolling restart
  kRecycle,   // state change: /api/recycle?pid=N
  kDebug,     // state change: /api/debug?pid=N[&protocol=P] or ?fresh=1
  kDebugEnd,  // state change: /api/debug/end
  kStacks,    // control: /api/stacks?pid=N (stops the worker a moment)
  kMetrics,   // GET /metrics
  kPage,      // GET / or /debug, the monitor page
  kState,     // GET /api/state
  kEvents,    // GET /api/events, server-sent events
  kHistory,   // GET /api/history, the charts' last minutes
  kNotFound,  // any other path
};

// What to do with a request for a route.
enum class MonitorVerdict {
  kServe,                 // run the route's handler
  kMethodNotAllowed,      // 405 (Allow: AllowedMethods(route))
  kRemoteControlRefused,  // 403: a state change from outside loopback
  kBrowserWithoutToken,   // 403: a browser's state change without the token
  kWrongToken,            // 403: a state change with a wrong token
};

// The facts about one request that routing depends on. Borrowed views;
// a header is nullopt when absent.
struct MonitorRequest {
  absl::string_view method;
  absl::string_view path;  // without the query string
  bool from_loopback = false;
  std::optional<absl::string_view> origin;
  std::optional<absl::string_view> sec_fetch_site;
  std::optional<absl::string_view> referer;
  std::optional<absl::string_view> token;  // X-Cluster2-Token
};

// The configuration routing depends on (MonitorOptions' part of it).
struct MonitorRoutePolicy {
  std::string ecv_root = "/ecv";
  std::string mark_up = "/ecv/markUp";
  std::string mark_down = "/ecv/markDown";
  bool allow_remote_control = false;
  // The control token of this start of the master; empty: no token is
  // right (browsers cannot change state).
  std::string token;
};

struct MonitorDecision {
  MonitorRoute route = MonitorRoute::kNotFound;
  MonitorVerdict verdict = MonitorVerdict::kServe;
};

// The header a client sends the control token in.
inline constexpr char kControlTokenHeader[] = "X-Cluster2-Token";

// The route of `request` and whether to serve it (rules above). Unknown
// paths are kNotFound with kServe (the handler answers 404).
MonitorDecision ClassifyRequest(const MonitorRequest& request,
                                const MonitorRoutePolicy& policy);

// True for the control routes (POST only, under the rules above): the
// state changes and kStacks.
bool ChangesState(MonitorRoute route);

// The value of the Allow header for a 405 on `route`.
const char* AllowedMethods(MonitorRoute route);

// The HTTP status of a verdict other than kServe (200 for kServe).
unsigned HttpStatus(MonitorVerdict verdict);

// The pid in "/api/recycle?pid=N": a decimal number in [1, INT_MAX] with
// nothing around it; nullopt otherwise.
std::optional<int> ParsePid(absl::string_view text);

// Whether the monitor page may embed the control token when requested with
// this Host header: an IP address literal (with or without a port),
// "localhost", or `hostname` (the machine's name, compared without case).
// Any other name could be an attacker's domain rebound to this address.
bool HostMayReceiveToken(absl::string_view host, absl::string_view hostname);

// Whether `given` equals `token`, in a time that does not depend on where
// they first differ. False when `token` is empty.
bool TokenMatches(absl::string_view given, absl::string_view token);

// 128 random bits from the kernel, as 32 lowercase hex digits.
// Errors: the error of getrandom(2).
absl::StatusOr<std::string> NewControlToken();

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_MONITOR_ROUTES_H_
