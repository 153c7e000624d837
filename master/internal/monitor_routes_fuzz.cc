// Fuzz target: ClassifyRequest, ParsePid and HostMayReceiveToken on
// arbitrary requests, checking the rules of monitor_routes.h hold for each.
//
// Input: a flags byte (bit 0: from loopback, bit 1: remote control allowed,
// bits 2-5: whether Origin, Sec-Fetch-Site, Referer and X-Cluster2-Token are
// present), then newline-separated fields: method, path, origin,
// sec-fetch-site, referer, token, host, pid text. Missing fields are empty.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "master/internal/monitor_routes.h"

namespace {

constexpr char kToken[] = "00112233445566778899aabbccddeeff";

void Require(bool condition) {
  if (!condition) std::abort();
}

void CheckDecision(const cluster2::MonitorRequest& request,
                   const cluster2::MonitorRoutePolicy& policy) {
  using cluster2::MonitorVerdict;
  cluster2::MonitorDecision decision = ClassifyRequest(request, policy);
  if (decision.verdict != MonitorVerdict::kServe) {
    Require(decision.route != cluster2::MonitorRoute::kNotFound);
    Require(cluster2::HttpStatus(decision.verdict) == 403 ||
            cluster2::HttpStatus(decision.verdict) == 405);
    return;
  }
  if (decision.route == cluster2::MonitorRoute::kNotFound) return;
  if (!cluster2::ChangesState(decision.route)) {
    Require(request.method == "GET" || request.method == "HEAD");
    return;
  }
  // A state change served: a POST, from loopback or allowed remotely, with
  // the right token or from a client showing no sign of a browser.
  Require(request.method == "POST");
  Require(request.from_loopback || policy.allow_remote_control);
  if (request.token.has_value()) {
    Require(*request.token == policy.token && !policy.token.empty());
  } else {
    Require(!request.origin && !request.sec_fetch_site && !request.referer);
  }
}

void CheckPid(absl::string_view text) {
  std::optional<int> pid = cluster2::ParsePid(text);
  if (!pid.has_value()) return;
  Require(*pid >= 1);
  Require(!text.empty());
  for (char c : text)
    Require(absl::ascii_isdigit(static_cast<unsigned char>(c)));
  Require(std::strtoll(std::string(text).c_str(), nullptr, 10) == *pid);
}

void CheckHost(absl::string_view host) {
  if (!cluster2::HostMayReceiveToken(host, "node1")) return;
  // Never a name with a dot and letters (a domain) unless it is an IPv6
  // literal, which cannot be registered.
  if (absl::StartsWith(host, "[")) return;
  absl::string_view name = host.substr(0, host.find(':'));
  bool letters = false;
  for (char c : name) letters = letters || absl::ascii_isalpha(c);
  if (letters) {
    Require(absl::EqualsIgnoreCase(name, "localhost") ||
            absl::EqualsIgnoreCase(name, "node1"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
      '\n');
  fields.resize(8);
  cluster2::MonitorRequest request;
  request.method = fields[0];
  request.path = fields[1];
  request.from_loopback = (flags & 1) != 0;
  if (flags & 4) request.origin = fields[2];
  if (flags & 8) request.sec_fetch_site = fields[3];
  if (flags & 16) request.referer = fields[4];
  if (flags & 32) request.token = fields[5];
  cluster2::MonitorRoutePolicy policy;
  policy.allow_remote_control = (flags & 2) != 0;
  policy.token = (flags & 64) ? "" : kToken;
  CheckDecision(request, policy);
  CheckHost(fields[6]);
  CheckPid(fields[7]);
  return 0;
}
