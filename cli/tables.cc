#include "cli/tables.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/internal/output.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

std::string FormatBytes(uint64_t bytes) {
  if (bytes == 0) return "-";
  if (bytes < (1 << 20)) return absl::StrFormat("%.1fKiB", bytes / 1024.0);
  if (bytes < (1ull << 30))
    return absl::StrFormat("%.1fMiB", bytes / 1048576.0);
  return absl::StrFormat("%.1fGiB", bytes / 1073741824.0);
}

std::string FormatAge(absl::Duration age) {
  age = absl::Trunc(
      age, age < absl::Minutes(1) ? absl::Milliseconds(100) : absl::Seconds(1));
  return age <= absl::ZeroDuration() ? "0s" : absl::FormatDuration(age);
}

std::string StateName(v1::WorkerState state) {
  std::string name = v1::WorkerState_Name(state);
  constexpr absl::string_view kPrefix = "WORKER_STATE_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  for (char& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string WatchKindName(v1::WatchEvent::Kind kind) {
  switch (kind) {
    case v1::WatchEvent::KIND_SET:
      return "set";
    case v1::WatchEvent::KIND_DELETE:
      return "delete";
    case v1::WatchEvent::KIND_EXPIRE:
      return "expire";
    case v1::WatchEvent::KIND_EVICT:
      return "evict";
    default:
      return absl::StrCat("kind", static_cast<int>(kind));
  }
}

}  // namespace

std::string FormatWorkersTable(const v1::ListWorkersResponse& workers,
                               absl::Time now) {
  size_t group_width = 7;  // "default"
  for (const v1::Worker& worker : workers.workers())
    group_width = std::max(group_width, worker.group().size());
  std::string table =
      absl::StrFormat("%-4s %-*s %-8s %-9s %-9s %-9s %-9s %-10s %-9s %s\n",
                      "ID", group_width, "GROUP", "PID", "STATE", "UPTIME",
                      "RESTARTS", "RSS", "HEARTBEAT", "REQUESTS", "NOTE");
  for (const v1::Worker& worker : workers.workers()) {
    std::string heartbeat = "-";
    if (worker.has_last_heartbeat_at()) {
      heartbeat = absl::StrCat(
          FormatAge(now - FromProto(worker.last_heartbeat_at())), " ago");
    }
    bool running = worker.pid() != 0;
    std::string note = worker.reason();
    if (note.empty() && !worker.last_exit().empty())
      note = "last exit: " + worker.last_exit();
    std::string row = absl::StrFormat(
        "%-4d %-*s %-8s %-9s %-9s %-9d %-9s %-10s %-9d %s", worker.id(),
        group_width, worker.group().empty() ? "-" : worker.group(),
        running ? absl::StrCat(worker.pid()) : "-", StateName(worker.state()),
        running ? FormatAge(now - FromProto(worker.started_at())) : "-",
        worker.restarts(), FormatBytes(worker.last_heartbeat().rss_bytes()),
        heartbeat, worker.last_heartbeat().requests_total(), note);
    while (!row.empty() && row.back() == ' ') row.pop_back();
    absl::StrAppend(&table, row, "\n");
  }
  return table;
}

std::string FormatWorkerDetail(const v1::Worker& worker, absl::Time now) {
  v1::ListWorkersResponse one;
  *one.add_workers() = worker;
  std::string text = FormatWorkersTable(one, now);
  absl::StrAppend(
      &text, "group: ", worker.group().empty() ? "-" : worker.group(), "\n");
  absl::StrAppend(&text,
                  "session: ", worker.attached() ? "attached" : "not attached",
                  "\n");
  if (!worker.has_last_heartbeat()) return text;
  const v1::Heartbeat& beat = worker.last_heartbeat();
  auto seconds = [](const google::protobuf::Duration& d) {
    return absl::FormatDuration(FromProto(d));
  };
  absl::StrAppend(&text, "heartbeat: rss ", FormatBytes(beat.rss_bytes()),
                  ", cpu ", seconds(beat.cpu_time()), ", threads ",
                  beat.threads(), ", fds ", beat.open_fds(), ", requests ",
                  beat.requests_total(), " (", beat.requests_in_flight(),
                  " in flight), latency p50 ", seconds(beat.latency_p50()),
                  " p99 ", seconds(beat.latency_p99()), ", lag ",
                  seconds(beat.lag()), "\n");
  if (beat.has_sent_at() && worker.has_last_heartbeat_at()) {
    absl::StrAppend(
        &text, "last heartbeat: sent ",
        absl::FormatTime("%Y-%m-%d %H:%M:%E3S", FromProto(beat.sent_at()),
                         absl::UTCTimeZone()),
        " UTC, reached the master ",
        absl::FormatDuration(FromProto(worker.last_heartbeat_at()) -
                             FromProto(beat.sent_at())),
        " later\n");
  }
  return text;
}

std::string FormatCacheStatsTable(const v1::StatsResponse& stats) {
  std::vector<std::vector<std::string>> rows = {{"NAMESPACE", "HITS", "MISSES",
                                                 "LOADS", "WAITING", "ERRORS",
                                                 "KEYS", "BYTES"}};
  for (const v1::NamespaceStats& ns : stats.namespaces()) {
    rows.push_back({ns.namespace_(), absl::StrCat(ns.hits()),
                    absl::StrCat(ns.misses()), absl::StrCat(ns.loads()),
                    absl::StrCat(ns.waiting()), absl::StrCat(ns.errors()),
                    absl::StrCat(ns.keys()), absl::StrCat(ns.bytes())});
  }
  return ctl::FormatTable(rows);
}

std::string FormatWatchEvent(const v1::WatchEvent& event) {
  std::string lines;
  if (event.resync()) lines = "resync\n";
  if (event.kind() != v1::WatchEvent::KIND_UNSPECIFIED) {
    absl::StrAppend(&lines, event.revision(), " ", WatchKindName(event.kind()),
                    " ", event.key());
    if (!event.value().empty()) absl::StrAppend(&lines, " ", event.value());
    lines += "\n";
  }
  return lines;
}

}  // namespace cluster2
