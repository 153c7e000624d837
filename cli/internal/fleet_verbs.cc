// Several masters at once (--hosts FILE): `workers` and `status NAME` of
// every host, and `rollout`, which replaces the workers of one host at a
// time behind a load balancer that checks each host's ECV.
//
// The hosts file: one host per line, "NAME ADDRESS"; ADDRESS is
// "unix:/path/master.sock" or "HOST:PORT" (a master's control.tcp, mutual
// TLS with --tls-*). '#' starts a comment; blank lines are ignored.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cli/exit_codes.h"
#include "cli/internal/flags.h"
#include "cli/internal/output.h"
#include "cli/internal/verb.h"
#include "cli/tables.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/ecv.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"

namespace cluster2::ctl {
namespace {

struct Host {
  std::string name;
  std::string address;
};

bool ValidHostName(absl::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

absl::StatusOr<std::vector<Host>> ReadHosts(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<Host> hosts;
  std::set<std::string> names;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = line;
    text = text.substr(0, text.find('#'));
    std::vector<absl::string_view> words =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.empty()) continue;
    auto problem = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " line ", number, ": ", what));
    };
    if (words.size() != 2) return problem("expected \"NAME ADDRESS\"");
    Host host{std::string(words[0]), std::string(words[1])};
    if (!ValidHostName(host.name))
      return problem("a name is 1-64 characters of [A-Za-z0-9._-]");
    if (!names.insert(host.name).second)
      return problem(absl::StrCat("'", host.name, "' is named twice"));
    if (!absl::StartsWith(host.address, "unix:") &&
        host.address.rfind(':') == std::string::npos) {
      return problem("an address is unix:PATH or HOST:PORT");
    }
    hosts.push_back(std::move(host));
  }
  if (hosts.empty()) return absl::InvalidArgumentError(path + ": no hosts");
  return hosts;
}

// The hosts of --hosts, or nullopt after printing why not (*code).
std::optional<std::vector<Host>> Hosts(VerbContext& ctl, int* code) {
  absl::StatusOr<std::vector<Host>> hosts = ReadHosts(ctl.options().hosts);
  if (!hosts.ok()) {
    ctl.err() << "cluster2ctl: --hosts: " << hosts.status().message() << "\n";
    *code = kExitUsage;
    return std::nullopt;
  }
  return *std::move(hosts);
}

std::string JsonText(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// One host's part of a -o json answer: {"host", "address", ...fields of
// `message` } or {"host", "address", "error"}.
std::string HostJson(const Host& host, const google::protobuf::Message* message,
                     const std::string& error) {
  std::string json = absl::StrCat("{\"host\":", JsonText(host.name),
                                  ",\"address\":", JsonText(host.address));
  if (message == nullptr) {
    return absl::StrCat(json, ",\"error\":", JsonText(error), "}");
  }
  std::string fields = JsonLine(*message);  // {...}
  fields = fields.substr(1, fields.size() - 2);
  return absl::StrCat(json, fields.empty() ? "" : ",", fields, "}");
}

// `table` with a HOST column in front (its header gets "HOST").
std::string WithHostColumn(const std::string& table, const std::string& host,
                           size_t width, bool header) {
  std::string out;
  bool first = true;
  for (absl::string_view line :
       absl::StrSplit(table, '\n', absl::SkipEmpty())) {
    if (first && !header) {
      first = false;
      continue;
    }
    absl::StrAppend(&out,
                    absl::StrFormat("%-*s ", width, first ? "HOST" : host),
                    line, "\n");
    first = false;
  }
  return out;
}

size_t NameWidth(const std::vector<Host>& hosts) {
  size_t width = 4;  // "HOST"
  for (const Host& host : hosts) width = std::max(width, host.name.size());
  return width;
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoNanoseconds(timeout));
}

}  // namespace

namespace {

// Asks every host of --hosts with `call` (channel, context, response ->
// status) and prints each answer with `print` (host, response, first), or
// with -o json {"hosts": [...]}. A host that cannot be asked is an error
// line (or its JSON entry has "error"), and the exit code is 1; the others
// are still asked.
template <typename Response>
int AskEveryHost(
    VerbContext& ctl,
    const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&,
                                     grpc::ClientContext*, Response*)>& call,
    const std::function<void(const Host&, const Response&, size_t)>& print) {
  int code = kExitOk;
  std::optional<std::vector<Host>> hosts = Hosts(ctl, &code);
  if (!hosts) return code;
  const size_t width = NameWidth(*hosts);
  std::vector<std::string> json;
  bool first = true;
  for (const Host& host : *hosts) {
    std::string error;
    std::shared_ptr<grpc::Channel> channel =
        ctl.ChannelTo(host.address, &error);
    Response response;
    if (channel != nullptr) {
      grpc::ClientContext context;
      ctl.SetDeadline(&context);
      grpc::Status status = call(channel, &context, &response);
      if (!status.ok()) error = ctl.DescribeFailure(host.address, status);
    }
    if (!error.empty()) {
      code = kExitFailed;
      if (ctl.json()) {
        json.push_back(HostJson(host, nullptr, error));
      } else {
        ctl.err() << "cluster2ctl: " << host.name << ": " << error << "\n";
      }
    } else if (ctl.json()) {
      json.push_back(HostJson(host, &response, ""));
    } else {
      print(host, response, first ? width : 0);
      first = false;
    }
  }
  if (ctl.json())
    ctl.out() << "{\"hosts\":[" << absl::StrJoin(json, ",") << "]}\n";
  return code;
}

}  // namespace

int FleetWorkers(VerbContext& ctl) {
  size_t width = 0;
  return AskEveryHost<v1::ListWorkersResponse>(
      ctl,
      [](const std::shared_ptr<grpc::Channel>& channel,
         grpc::ClientContext* context, v1::ListWorkersResponse* response) {
        return v1::Cluster::NewStub(channel)->ListWorkers(context, {},
                                                          response);
      },
      [&](const Host& host, const v1::ListWorkersResponse& response,
          size_t first_width) {
        const bool header = first_width != 0;
        if (header) width = first_width;
        ctl.out() << WithHostColumn(FormatWorkersTable(response, absl::Now()),
                                    host.name, width, header);
      });
}

int FleetStatus(const std::string& name, VerbContext& ctl) {
  size_t width = 0;
  return AskEveryHost<v1::GetStatusResponse>(
      ctl,
      [&](const std::shared_ptr<grpc::Channel>& channel,
          grpc::ClientContext* context, v1::GetStatusResponse* response) {
        v1::GetStatusRequest request;
        request.set_name(name);
        return v1::Status::NewStub(channel)->GetStatus(context, request,
                                                       response);
      },
      [&](const Host& host, const v1::GetStatusResponse& response,
          size_t first_width) {
        if (first_width != 0) {
          width = first_width;
          ctl.out() << absl::StrFormat("%-*s %-8s %-7s %s\n", width, "HOST",
                                       "PID", "WORKER", "VALUE");
        }
        for (const v1::StatusEntry& entry : response.entries()) {
          std::string value = entry.error().empty()
                                  ? JsonLine(entry.value())
                                  : absl::StrCat("error: ", entry.error());
          ctl.out() << absl::StrFormat(
              "%-*s %-8d %-7s %s\n", width, host.name, entry.pid(),
              entry.has_worker_id() ? absl::StrCat(entry.worker_id())
                                    : "master",
              value);
        }
      });
}

namespace {

struct RolloutArgs {
  bool reload = false;
  std::string quiet = "2s";
  std::string drain_timeout = "60s";
  std::string ready_timeout = "120s";
};

struct RolloutTimes {
  absl::Duration quiet, drain_timeout, ready_timeout;
};

// One host's master, for the rollout.
class HostControl {
 public:
  HostControl(const Host& host, std::shared_ptr<grpc::Channel> channel,
              const VerbContext& ctl)
      : host_(host),
        ctl_(ctl),
        cluster_(v1::Cluster::NewStub(channel)),
        ecv_(v1::Ecv::NewStub(channel)),
        timeout_(ctl.options().timeout) {}

  // Fails with what to print.
  absl::StatusOr<v1::ListWorkersResponse> Workers() {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    v1::ListWorkersResponse response;
    return Check(cluster_->ListWorkers(&context, {}, &response), response);
  }
  absl::StatusOr<v1::ClusterConfig> Config() {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    v1::GetConfigResponse response;
    auto done = Check(cluster_->GetConfig(&context, {}, &response), response);
    if (!done.ok()) return done.status();
    return done->config();
  }
  absl::StatusOr<v1::EcvState> Mark(bool up) {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    v1::MarkRequest request;
    request.set_who("cluster2ctl rollout");
    v1::EcvState state;
    grpc::Status status = up ? ecv_->MarkUp(&context, request, &state)
                             : ecv_->MarkDown(&context, request, &state);
    return Check(status, state);
  }
  absl::StatusOr<v1::EcvState> Ecv() {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    v1::EcvState state;
    return Check(ecv_->GetEcv(&context, {}, &state), state);
  }
  absl::Status Replace(bool reload) {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    if (reload) {
      v1::ReloadRequest request;
      request.set_restart_all(true);
      v1::ReloadResponse response;
      return Check(cluster_->Reload(&context, request, &response), response)
          .status();
    }
    v1::RestartResponse response;
    return Check(cluster_->Restart(&context, {}, &response), response).status();
  }

 private:
  template <typename T>
  absl::StatusOr<T> Check(const grpc::Status& status, const T& value) {
    if (status.ok()) return value;
    return absl::UnavailableError(ctl_.DescribeFailure(host_.address, status));
  }

  const Host& host_;
  const VerbContext& ctl_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;
  std::unique_ptr<v1::Ecv::Stub> ecv_;
  const absl::Duration timeout_;
};

constexpr absl::Duration kPoll = absl::Milliseconds(200);

// Requests completed and in flight on a host, from its workers' last
// heartbeats (per pid: a replaced worker's count is not a new request).
struct Traffic {
  std::map<int32_t, uint64_t> completed;
  uint64_t in_flight = 0;
  bool operator==(const Traffic& other) const {
    return completed == other.completed && in_flight == other.in_flight;
  }
};

Traffic TrafficOf(const v1::ListWorkersResponse& workers) {
  Traffic traffic;
  for (const v1::Worker& worker : workers.workers()) {
    traffic.completed[worker.pid()] = worker.last_heartbeat().requests_total();
    traffic.in_flight += worker.last_heartbeat().requests_in_flight();
  }
  return traffic;
}

// Waits until the host has had no request in flight and none completed
// for `quiet`: the load balancer has taken it out.
absl::Status AwaitDrained(HostControl& host, absl::Duration quiet,
                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::optional<Traffic> last;
  absl::Time still_since = absl::Now();
  while (absl::Now() < deadline) {
    auto workers = host.Workers();
    if (!workers.ok()) return workers.status();
    Traffic now = TrafficOf(*workers);
    if (!last || !(now == *last) || now.in_flight > 0) {
      last = now;
      still_since = absl::Now();
    } else if (absl::Now() - still_since >= quiet) {
      return absl::OkStatus();
    }
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "requests still arrived after ", absl::FormatDuration(timeout),
      " marked down (does the load balancer check this host's ECV?)"));
}

// Waits until none of `old` serves and as many workers are ready as
// before; returns how many were replaced.
absl::StatusOr<size_t> AwaitReplaced(HostControl& host,
                                     const std::set<int32_t>& old,
                                     size_t ready_before,
                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    auto workers = host.Workers();
    if (!workers.ok()) return workers.status();
    size_t ready = 0;
    bool old_left = false;
    for (const v1::Worker& worker : workers->workers()) {
      old_left |= old.count(worker.pid()) > 0;
      ready += worker.state() == v1::WORKER_STATE_READY ? 1 : 0;
    }
    if (!old_left && ready >= ready_before) return old.size();
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the workers were not all replaced and ready within ",
                   absl::FormatDuration(timeout), " (see the host's log)"));
}

absl::Status AwaitUp(HostControl& host, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    auto state = host.Ecv();
    if (!state.ok()) return state.status();
    if (state->health() == v1::EcvState::HEALTH_UP) return absl::OkStatus();
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError("the ECV did not come back up");
}

// Waits (at most `timeout`) until the host serves again: a load balancer
// checks it every so often, and the next host must not leave before this
// one is back. An idle fleet gets no request: then it goes on after
// `timeout` (three times --quiet).
bool AwaitTraffic(HostControl& host, absl::Duration timeout) {
  auto before = host.Workers();
  if (!before.ok()) return false;
  const Traffic start = TrafficOf(*before);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::SleepFor(kPoll);
    auto workers = host.Workers();
    if (!workers.ok()) return false;
    for (const auto& [pid, count] : TrafficOf(*workers).completed) {
      auto was = start.completed.find(pid);
      if (count > (was == start.completed.end() ? 0 : was->second)) return true;
    }
  }
  return false;
}

// One host, from markDown to back in service; prints each step.
absl::Status RollHost(const Host& host, HostControl& control,
                      const RolloutArgs& args, const RolloutTimes& times,
                      std::ostream& out) {
  auto config = control.Config();
  if (!config.ok()) return config.status();
  // Heartbeats carry the figures: quiet must span a few of them.
  const absl::Duration quiet =
      std::max(times.quiet,
               2 * absl::Milliseconds(config->heartbeat_interval()) + kPoll);
  auto before = control.Workers();
  if (!before.ok()) return before.status();
  std::set<int32_t> old;
  size_t ready_before = 0;
  for (const v1::Worker& worker : before->workers()) {
    if (worker.pid() != 0) old.insert(worker.pid());
    ready_before += worker.state() == v1::WORKER_STATE_READY ? 1 : 0;
  }
  if (auto marked = control.Mark(false); !marked.ok()) return marked.status();
  out << host.name << ": marked down" << std::endl;
  absl::Status drained = AwaitDrained(control, quiet, times.drain_timeout);
  if (!drained.ok()) {
    (void)control.Mark(true);  // back in service as it was
    return absl::Status(drained.code(),
                        absl::StrCat(drained.message(), "; marked up again"));
  }
  out << host.name << ": drained (no request for "
      << absl::FormatDuration(quiet) << ")" << std::endl;
  absl::Status replaced = control.Replace(args.reload);
  absl::StatusOr<size_t> count =
      replaced.ok()
          ? AwaitReplaced(control, old, ready_before, times.ready_timeout)
          : absl::StatusOr<size_t>(replaced);
  if (!count.ok()) {
    // A successor that does not start leaves the old workers serving.
    (void)control.Mark(true);
    return absl::Status(count.status().code(),
                        absl::StrCat(count.status().message(),
                                     "; marked up again with the workers it "
                                     "has"));
  }
  out << host.name << ": " << *count << " workers replaced" << std::endl;
  if (auto marked = control.Mark(true); !marked.ok()) return marked.status();
  if (absl::Status up = AwaitUp(control, times.ready_timeout); !up.ok())
    return up;
  const bool serving = AwaitTraffic(control, 3 * quiet);
  out << host.name << ": marked up"
      << (serving ? ", serving again" : " (no request seen yet)") << std::endl;
  return absl::OkStatus();
}

int Rollout(const RolloutArgs& args, VerbContext& ctl) {
  if (ctl.options().hosts.empty())
    return ctl.Usage("rollout needs --hosts FILE");
  RolloutTimes times;
  for (auto [text, out, flag] :
       {std::tuple{&args.quiet, &times.quiet, "--quiet"},
        std::tuple{&args.drain_timeout, &times.drain_timeout,
                   "--drain-timeout"},
        std::tuple{&args.ready_timeout, &times.ready_timeout,
                   "--ready-timeout"}}) {
    std::optional<absl::Duration> parsed = ParseCliDuration(*text);
    if (!parsed || *parsed <= absl::ZeroDuration()) {
      return ctl.Usage(
          absl::StrCat(flag, " takes a positive duration, not '", *text, "'"));
    }
    *out = *parsed;
  }
  int code = kExitOk;
  std::optional<std::vector<Host>> hosts = Hosts(ctl, &code);
  if (!hosts) return code;
  // Every host must answer before any is taken out.
  std::vector<std::unique_ptr<HostControl>> controls;
  for (const Host& host : *hosts) {
    std::string error;
    auto channel = ctl.ChannelTo(host.address, &error);
    if (channel == nullptr) {
      ctl.err() << "cluster2ctl: rollout not started: " << host.name << ": "
                << error << "\n";
      return kExitFailed;
    }
    controls.push_back(std::make_unique<HostControl>(host, channel, ctl));
    auto ecv = controls.back()->Ecv();
    if (!ecv.ok()) {
      ctl.err() << "cluster2ctl: rollout not started: " << host.name << ": "
                << ecv.status().message() << "\n";
      return kExitFailed;
    }
    if (ecv->health() != v1::EcvState::HEALTH_UP) {
      ctl.err() << "cluster2ctl: rollout not started: " << host.name
                << " is not up (" << ecv->changed_by()
                << "): taking out another host would lose capacity\n";
      return kExitFailed;
    }
  }
  for (size_t i = 0; i < hosts->size(); ++i) {
    absl::Status done =
        RollHost((*hosts)[i], *controls[i], args, times, ctl.out());
    if (!done.ok()) {
      ctl.err() << "cluster2ctl: rollout stopped at " << (*hosts)[i].name
                << ": " << done.message() << "\n";
      return kExitFailed;
    }
  }
  ctl.out() << "rollout: " << hosts->size() << " hosts done" << std::endl;
  return kExitOk;
}

}  // namespace

std::vector<Verb> FleetVerbs() {
  return {
      {"rollout",
       "[--reload] [--quiet DURATION] [--drain-timeout DURATION] "
       "[--ready-timeout DURATION]",
       "replace the workers of every host of --hosts, one host at a time "
       "behind the load balancer",
       "Per host: markDown; wait until the load balancer has drained it (no "
       "request\ncompleted or in flight for --quiet, default 2s); rolling "
       "restart (--reload:\nreload the configuration and replace every "
       "worker); wait until every worker is\nnew and ready; markUp; wait "
       "until it serves again (at most 3 x --quiet). Stops "
       "at the first host that fails, which is marked up\nagain with the "
       "workers it has. Every host must be up before it starts.",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<RolloutArgs>();
         command.add_flag("--reload", args->reload,
                          "reload the configuration, then replace every "
                          "worker");
         command.add_option("--quiet", args->quiet,
                            "no request for this long = drained (default "
                            "2s)");
         command.add_option("--drain-timeout", args->drain_timeout,
                            "give up draining a host after (default 60s)");
         command.add_option("--ready-timeout", args->ready_timeout,
                            "give up waiting for new workers after (default "
                            "120s)");
         return [args](VerbContext& ctl) { return Rollout(*args, ctl); };
       }},
  };
}

}  // namespace cluster2::ctl
