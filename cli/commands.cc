#include "cli/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <set>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/ecv.grpc.pb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "common/keepalive.h"
#include "common/proto_time.h"
#include "common/run_paths.h"
#include "common/trusted_path.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"

namespace cluster2 {
namespace {

// What cluster2ctl says of a socket it will not use (CheckTrustedSocket).
std::string UntrustedSocketMessage(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kPermissionDenied) {
    return absl::StrCat("permission denied: ", status.message(),
                        " (the cluster belongs to another user)");
  }
  return std::string(status.message());
}

constexpr char kUsage[] = R"(usage: cluster2ctl [options] VERB [ARGS]

Verbs:
  workers              list the workers (id, pid, state, uptime, restarts, heartbeat)
  worker PID           one worker
  config               the effective configuration (JSON)
  restart [--pid PID] [--surge N]
                       rolling restart: each worker is replaced by a successor that
                       is ready before it drains (all workers, or one)
  recycle PID [--reason TEXT]
                       replace one worker now, the same safe way
  scale N              set the number of workers
  emit EVENT [JSON ...] [--to self|master|workers|PID ...]
                       send an event (default: the master and every worker)
  subscribe [EVENT ...] [--count N]
                       print the events the master receives, one JSON per line
  status               the status names registered in the cluster
  status NAME          every process's value of NAME
  status set NAME JSON set NAME everywhere it is registered
  ecv                  the load-balancer state (up, marked down, down)
  markup | markdown    mark the cluster up / down (load balancers drain it)
  pause PID            the worker stops accepting new connections (others serve)
  resume PID           the paused worker accepts again
  shutdown [--fast]    stop the cluster (graceful drain, or kill at once)

Cache verbs (the cache server, not the master; NS is a namespace):
  cache use NS [--persist] [--expire=DURATION] [--fsync=always|everysec|no]
                       create NS (the first use fixes its options); prints the
                       namespace's options and whether yours conflict with them
  cache get NS KEY     print KEY's value raw (exit 1 if KEY is absent)
  cache set NS KEY VALUE [--ttl=DURATION] [--nx]
                       write KEY (--ttl default: the namespace's expire); with
                       --nx only if KEY is absent, else print the current value
                       and exit 1
  cache del NS KEY     delete KEY and print its old value raw (exit 1 if absent)
  cache keys NS [PREFIX] [--limit=N]
                       the keys, sorted, one per line (all of them, or N)
  cache watch NS [KEY] [--from=REVISION] [--count=N]
                       print each change after REVISION (default: from now) as
                       "REVISION KIND KEY VALUE", KIND set, delete, expire or
                       evict; a line "resync" if REVISION is gone (re-read);
                       until interrupted, or N changes (then exit 0)
  cache stats [NS]     hits, misses, loads, errors, keys and bytes per namespace
  Values are printed exactly, without a newline added. DURATION is 30s, 1m30s,
  1h or plain seconds. Flags take --flag=VALUE or --flag VALUE; "--" ends
  them (for a VALUE that starts with "--"). -o json prints the responses as
  JSON (bytes in base64; watch: one JSON object per line).

Options:
  --name NAME          cluster name (default "default")
  --run-dir DIR        run directory of the cluster (overrides --name)
  --master ADDRESS     master address, e.g. unix:/run/x/master.sock
                       (default: $CLUSTER2_MASTER, then the run directory)
  --cache-socket PATH  the cache server's socket, e.g. for a cluster2-cache run
                       alone (default: $CLUSTER2_CACHE, then
                       <run directory>/cache.sock)
  -o, --output FORMAT  table (default) or json
  --timeout SECONDS    RPC deadline (default 5; watch has none)
  -h, --help           this text

Exit codes: 0 ok; 1 the master or cache server returned an error, or a cache
key is absent (get, del) or present (set --nx); 2 usage; 3 no master or cache
server running (or it cannot be reached).
)";

struct Options {
  std::string name = "default";
  std::string run_dir;
  std::string master;
  std::string cache_socket;
  std::string output = "table";
  int timeout_seconds = 5;
  std::vector<std::string> verb;  // verb and its arguments
};

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

template <typename Message>
std::string ToJson(const Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// The arguments of a verb after its name: positionals and flags.
struct VerbArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // "--ttl" -> "30s", "--nx" -> ""
};

// Splits args[first..] into positionals and flags: each of `value_flags`
// takes --flag=VALUE or --flag VALUE, each of `bool_flags` is a bare --flag;
// "--" ends the flags. INVALID_ARGUMENT names an unknown flag or a missing
// value.
absl::StatusOr<VerbArgs> SplitVerbArgs(
    const std::vector<std::string>& args, size_t first,
    const std::set<std::string>& value_flags,
    const std::set<std::string>& bool_flags) {
  VerbArgs result;
  bool flags_ended = false;
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || !absl::StartsWith(arg, "--")) {
      result.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    size_t equals = arg.find('=');
    std::string name = arg.substr(0, equals);
    if (bool_flags.count(name) > 0) {
      if (equals != std::string::npos)
        return absl::InvalidArgumentError(name + " takes no value");
      result.flags[name] = "";
    } else if (value_flags.count(name) > 0) {
      if (equals != std::string::npos) {
        result.flags[name] = arg.substr(equals + 1);
      } else if (i + 1 < args.size()) {
        result.flags[name] = args[++i];
      } else {
        return absl::InvalidArgumentError(name + " needs a value");
      }
    } else {
      return absl::InvalidArgumentError("unknown flag '" + name + "'");
    }
  }
  return result;
}

// "30s", "1m30s", "1.5h" (absl::ParseDuration) or plain seconds ("90",
// "0.5"); false unless finite and not negative.
bool ParseDurationFlag(const std::string& text, absl::Duration* duration) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!std::isfinite(seconds) || seconds < 0) return false;
    *duration = absl::Seconds(seconds);
    return true;
  }
  return absl::ParseDuration(text, duration) &&
         *duration >= absl::ZeroDuration() &&
         *duration != absl::InfiniteDuration();
}

std::string FsyncName(v1::NamespaceOptions::Fsync fsync) {
  switch (fsync) {
    case v1::NamespaceOptions::FSYNC_ALWAYS:
      return "always";
    case v1::NamespaceOptions::FSYNC_NO:
      return "no";
    default:  // FSYNC_UNSPECIFIED means everysec
      return "everysec";
  }
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

// Rows as columns two spaces apart, the last column unpadded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string table;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    absl::StrAppend(&table, line, "\n");
  }
  return table;
}

class Ctl {
 public:
  Ctl(Options options, std::ostream& out, std::ostream& err)
      : options_(std::move(options)), out_(out), err_(err) {}

  int Run() {
    const std::string& verb = options_.verb[0];
    std::map<std::string, std::function<int()>> verbs = {
        {"workers", [this] { return Workers(); }},
        {"worker", [this] { return OneWorker(); }},
        {"config", [this] { return Config(); }},
        {"shutdown", [this] { return Shutdown(); }},
        {"restart", [this] { return Restart(); }},
        {"recycle", [this] { return Recycle(); }},
        {"scale", [this] { return Scale(); }},
        {"pause", [this] { return ChangePause(true); }},
        {"emit", [this] { return Emit(); }},
        {"ecv", [this] { return EcvVerb(0); }},
        {"markup", [this] { return EcvVerb(1); }},
        {"markdown", [this] { return EcvVerb(2); }},
        {"subscribe", [this] { return Subscribe(); }},
        {"status", [this] { return Status(); }},
        {"resume", [this] { return ChangePause(false); }},
    };
    // The cache verbs talk to the cache server, not the master.
    if (verb == "cache") return CacheVerb();
    auto it = verbs.find(verb);
    if (it == verbs.end()) {
      err_ << "cluster2ctl: unknown verb '" << verb
           << "' (see cluster2ctl --help)\n";
      return kExitUsage;
    }
    if (int code = Connect(); code != kExitOk) return code;
    return it->second();
  }

 private:
  // Resolves the master's address; kExitNoMaster if its socket is missing.
  int Connect() {
    address_ = options_.master;
    if (address_.empty() && options_.run_dir.empty()) {
      const char* env = std::getenv("CLUSTER2_MASTER");
      if (env != nullptr) address_ = env;
    }
    if (address_.empty()) {
      std::string dir =
          !options_.run_dir.empty()
              ? options_.run_dir
              : DefaultRunDir(options_.name, std::getenv, geteuid());
      address_ = absl::StrCat("unix:", dir, "/", kMasterSocketName);
    }
    if (absl::StartsWith(address_, "unix:")) {
      std::string path = address_.substr(5);
      absl::Status socket = CheckTrustedSocket(path, geteuid());
      if (socket.code() == absl::StatusCode::kNotFound) {
        err_ << "cluster2ctl: no master running: " << path
             << " does not exist (start one with cluster2-master, or pass "
                "--name/--run-dir)\n";
        return kExitNoMaster;
      }
      if (!socket.ok()) {
        err_ << "cluster2ctl: " << UntrustedSocketMessage(socket) << "\n";
        return kExitFailed;
      }
    }
    auto channel =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::Cluster::NewStub(channel);
    emitter_ = v1::Emitter::NewStub(channel);
    status_ = v1::Status::NewStub(channel);
    ecv_ = v1::Ecv::NewStub(channel);
    return kExitOk;
  }

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(options_.timeout_seconds));
  }

  int Fail(const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      err_ << "cluster2ctl: no master running at " << address_ << " ("
           << status.error_message() << ")\n";
      return kExitNoMaster;
    }
    err_ << "cluster2ctl: " << status.error_message() << "\n";
    return kExitFailed;
  }

  bool Json() const { return options_.output == "json"; }

  int Workers() {
    if (options_.verb.size() != 1) return Usage("workers takes no arguments");
    grpc::ClientContext context;
    Prepare(&context);
    v1::ListWorkersResponse response;
    grpc::Status status = stub_->ListWorkers(&context, {}, &response);
    if (!status.ok()) return Fail(status);
    out_ << (Json() ? ToJson(response)
                    : FormatWorkersTable(response, absl::Now()));
    return kExitOk;
  }

  int OneWorker() {
    int pid = 0;
    if (options_.verb.size() != 2 ||
        !absl::SimpleAtoi(options_.verb[1], &pid)) {
      return Usage("worker takes one pid");
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetWorkerRequest request;
    request.set_pid(pid);
    v1::Worker response;
    grpc::Status status = stub_->GetWorker(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
    } else {
      v1::ListWorkersResponse one;
      *one.add_workers() = response;
      out_ << FormatWorkersTable(one, absl::Now());
    }
    return kExitOk;
  }

  int Config() {
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetConfigResponse response;
    grpc::Status status = stub_->GetConfig(&context, {}, &response);
    if (!status.ok()) return Fail(status);
    out_ << ToJson(response.config());
    return kExitOk;
  }

  int Shutdown() {
    v1::ShutdownRequest request;
    for (size_t i = 1; i < options_.verb.size(); ++i) {
      if (options_.verb[i] != "--fast")
        return Usage("shutdown takes only --fast");
      request.set_fast(true);
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::ShutdownResponse response;
    grpc::Status status = stub_->Shutdown(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (!Json())
      out_ << (request.fast() ? "fast stop begun\n" : "graceful stop begun\n");
    return kExitOk;
  }

  // Reads `--name VALUE` pairs after the verb's positional arguments.
  bool Flags(size_t first, std::map<std::string, std::string>* flags) {
    for (size_t i = first; i < options_.verb.size(); i += 2) {
      if (i + 1 >= options_.verb.size() || flags->count(options_.verb[i]) == 0)
        return false;
      (*flags)[options_.verb[i]] = options_.verb[i + 1];
    }
    return true;
  }

  int Restart() {
    std::map<std::string, std::string> flags = {{"--pid", "0"},
                                                {"--surge", "0"}};
    v1::RestartRequest request;
    int pid = 0;
    unsigned surge = 0;
    if (!Flags(1, &flags) || !absl::SimpleAtoi(flags["--pid"], &pid) ||
        !absl::SimpleAtoi(flags["--surge"], &surge)) {
      return Usage("restart takes [--pid PID] [--surge N]");
    }
    request.set_pid(pid);
    request.set_surge(surge);
    grpc::ClientContext context;
    Prepare(&context);
    v1::RestartResponse response;
    grpc::Status status = stub_->Restart(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
    } else {
      out_ << "replacing " << response.pids_size() << " worker(s):";
      for (int replaced : response.pids()) out_ << " " << replaced;
      out_ << "\n";
    }
    return kExitOk;
  }

  int Recycle() {
    std::map<std::string, std::string> flags = {{"--reason", "manual"}};
    int pid = 0;
    if (options_.verb.size() < 2 || !absl::SimpleAtoi(options_.verb[1], &pid) ||
        !Flags(2, &flags)) {
      return Usage("recycle takes PID [--reason TEXT]");
    }
    v1::RecycleRequest request;
    request.set_pid(pid);
    request.set_reason(flags["--reason"]);
    grpc::ClientContext context;
    Prepare(&context);
    v1::RecycleResponse response;
    grpc::Status status = stub_->Recycle(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (!Json()) out_ << "replacing worker pid " << pid << "\n";
    return kExitOk;
  }

  // Parses a JSON value ("5", "\"text\"", "{\"a\": 1}"); false if invalid.
  static bool ParseJson(const std::string& text,
                        google::protobuf::Value* value) {
    return google::protobuf::util::JsonStringToMessage(text, value).ok();
  }

  static std::string JsonLine(const google::protobuf::Message& message) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    (void)google::protobuf::util::MessageToJsonString(message, &json, options);
    return json;
  }

  // 0 = show, 1 = mark up, 2 = mark down.
  int EcvVerb(int action) {
    if (options_.verb.size() != 1)
      return Usage("ecv, markup and markdown take no arguments");
    grpc::ClientContext context;
    Prepare(&context);
    v1::EcvState response;
    grpc::Status status;
    v1::MarkRequest request;
    const char* user = std::getenv("USER");
    request.set_who(
        absl::StrCat("cluster2ctl by ", user != nullptr ? user : "?"));
    if (action == 0) {
      status = ecv_->GetEcv(&context, {}, &response);
    } else if (action == 1) {
      status = ecv_->MarkUp(&context, request, &response);
    } else {
      status = ecv_->MarkDown(&context, request, &response);
    }
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
      return kExitOk;
    }
    std::string health = v1::EcvState::Health_Name(response.health());
    health = absl::AsciiStrToLower(health.substr(health.find('_') + 1));
    out_ << health << " (" << response.mode() << " mode, "
         << response.ready_workers() << " ready workers; last change by "
         << response.changed_by() << ")\n";
    return kExitOk;
  }

  int Emit() {
    if (options_.verb.size() < 2) return Usage("emit takes an event name");
    v1::EmitRequest request;
    request.mutable_event()->set_name(options_.verb[1]);
    for (size_t i = 2; i < options_.verb.size(); ++i) {
      const std::string& arg = options_.verb[i];
      if (arg == "--to") {
        if (++i >= options_.verb.size()) return Usage("--to needs a target");
        const std::string& to = options_.verb[i];
        v1::Target* target = request.mutable_event()->add_targets();
        int pid = 0;
        if (to == "self") {
          target->set_self(true);
        } else if (to == "master") {
          target->set_master(true);
        } else if (to == "workers") {
          target->set_workers(true);
        } else if (absl::SimpleAtoi(to, &pid) && pid > 0) {
          target->set_pid(pid);
        } else {
          return Usage("--to takes self, master, workers or a pid");
        }
      } else if (!ParseJson(arg, request.mutable_event()->add_args())) {
        return Usage(absl::StrCat("argument '", arg,
                                  "' is not JSON (quote strings: '\"text\"')"));
      }
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::EmitResponse response;
    grpc::Status status = emitter_->Emit(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
    } else {
      out_ << "delivered to " << response.delivered() << " process(es)";
      if (response.unknown_pids_size() > 0) {
        out_ << "; unknown pids:";
        for (int pid : response.unknown_pids()) out_ << " " << pid;
      }
      out_ << "\n";
    }
    return kExitOk;
  }

  int Subscribe() {
    v1::SubscribeRequest request;
    int count = -1;
    for (size_t i = 1; i < options_.verb.size(); ++i) {
      if (options_.verb[i] == "--count") {
        if (++i >= options_.verb.size() ||
            !absl::SimpleAtoi(options_.verb[i], &count) || count <= 0) {
          return Usage("--count takes a positive number");
        }
      } else {
        request.add_events(options_.verb[i]);
      }
    }
    grpc::ClientContext context;  // no deadline: it streams until stopped
    auto reader = emitter_->Subscribe(&context, request);
    v1::Event event;
    int seen = 0;
    while ((count < 0 || seen < count) && reader->Read(&event)) {
      out_ << JsonLine(event) << std::endl;
      ++seen;
    }
    if (count >= 0 && seen >= count) {
      context.TryCancel();
      reader->Finish();
      return kExitOk;
    }
    grpc::Status status = reader->Finish();
    return status.ok() ? kExitOk : Fail(status);
  }

  int Status() {
    if (options_.verb.size() == 1) {
      grpc::ClientContext context;
      Prepare(&context);
      v1::ListStatusesResponse response;
      grpc::Status status = status_->ListStatuses(&context, {}, &response);
      if (!status.ok()) return Fail(status);
      if (Json()) {
        out_ << ToJson(response);
      } else {
        for (const std::string& name : response.names()) out_ << name << "\n";
      }
      return kExitOk;
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetStatusResponse response;
    grpc::Status status;
    if (options_.verb[1] == "set") {
      v1::SetStatusRequest request;
      if (options_.verb.size() != 4 ||
          !ParseJson(options_.verb[3], request.mutable_value())) {
        return Usage("status set takes NAME and a JSON value");
      }
      request.set_name(options_.verb[2]);
      status = status_->SetStatus(&context, request, &response);
    } else {
      if (options_.verb.size() != 2)
        return Usage("status takes at most one name");
      v1::GetStatusRequest request;
      request.set_name(options_.verb[1]);
      status = status_->GetStatus(&context, request, &response);
    }
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
      return kExitOk;
    }
    out_ << absl::StrFormat("%-8s %-7s %s\n", "PID", "WORKER", "VALUE");
    for (const v1::StatusEntry& entry : response.entries()) {
      std::string value = entry.error().empty()
                              ? JsonLine(entry.value())
                              : absl::StrCat("error: ", entry.error());
      out_ << absl::StrFormat(
          "%-8d %-7s %s\n", entry.pid(),
          entry.has_worker_id() ? absl::StrCat(entry.worker_id()) : "master",
          value);
    }
    return kExitOk;
  }

  int ChangePause(bool pause) {
    int pid = 0;
    if (options_.verb.size() != 2 ||
        !absl::SimpleAtoi(options_.verb[1], &pid)) {
      return Usage(pause ? "pause takes one pid" : "resume takes one pid");
    }
    grpc::ClientContext context;
    Prepare(&context);
    v1::Worker response;
    grpc::Status status;
    if (pause) {
      v1::PauseRequest request;
      request.set_pid(pid);
      status = stub_->Pause(&context, request, &response);
    } else {
      v1::ResumeRequest request;
      request.set_pid(pid);
      status = stub_->Resume(&context, request, &response);
    }
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
    } else {
      out_ << "worker pid " << pid << (pause ? " paused\n" : " resumed\n");
    }
    return kExitOk;
  }

  int Scale() {
    unsigned workers = 0;
    if (options_.verb.size() != 2 ||
        !absl::SimpleAtoi(options_.verb[1], &workers)) {
      return Usage("scale takes the number of workers");
    }
    v1::ScaleRequest request;
    request.set_workers(workers);
    grpc::ClientContext context;
    Prepare(&context);
    v1::ScaleResponse response;
    grpc::Status status = stub_->Scale(&context, request, &response);
    if (!status.ok()) return Fail(status);
    if (Json()) {
      out_ << ToJson(response);
    } else {
      out_ << "scaled from " << response.previous() << " to "
           << response.workers() << " workers\n";
    }
    return kExitOk;
  }

  // Resolves the cache server's socket: --cache-socket, else
  // $CLUSTER2_CACHE (without --run-dir), else <run dir>/cache.sock.
  // kExitNoMaster if the socket is missing.
  int ConnectCache() {
    std::string address;
    const char* env = std::getenv("CLUSTER2_CACHE");
    if (!options_.cache_socket.empty()) {
      address = absl::StartsWith(options_.cache_socket, "unix:")
                    ? options_.cache_socket
                    : absl::StrCat("unix:", options_.cache_socket);
    } else if (options_.run_dir.empty() && env != nullptr && *env != '\0') {
      address = env;
    } else {
      std::string dir =
          !options_.run_dir.empty()
              ? options_.run_dir
              : DefaultRunDir(options_.name, std::getenv, geteuid());
      address = absl::StrCat("unix:", dir, "/", kCacheSocketName);
    }
    bool unix_socket = absl::StartsWith(address, "unix:");
    cache_where_ = unix_socket ? address.substr(5) : address;
    if (unix_socket) {
      absl::Status socket = CheckTrustedSocket(cache_where_, geteuid());
      if (socket.code() == absl::StatusCode::kNotFound) {
        err_ << "cluster2ctl: no cache server at " << cache_where_
             << " (no such socket; start a cluster with the cache enabled, or "
                "pass --cache-socket)\n";
        return kExitNoMaster;
      }
      if (!socket.ok()) {
        err_ << "cluster2ctl: " << UntrustedSocketMessage(socket) << "\n";
        return kExitFailed;
      }
    }
    grpc::ChannelArguments args;
    SetClientKeepalive(&args);  // `cache watch` ends if the server freezes
    cache_ = v1::Cache::NewStub(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args));
    return kExitOk;
  }

  // Like Fail, for the cache server.
  int FailCache(const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      err_ << "cluster2ctl: no cache server at " << cache_where_ << " ("
           << status.error_message() << ")\n";
      return kExitNoMaster;
    }
    std::string message = status.error_message();
    if (message.empty()) {  // e.g. UNIMPLEMENTED from a server without the RPC
      message =
          absl::StrCat("the cache server answered ",
                       absl::StatusCodeToString(
                           static_cast<absl::StatusCode>(status.error_code())));
    }
    err_ << "cluster2ctl: " << message << "\n";
    return kExitFailed;
  }

  int CacheVerb() {
    const std::vector<std::string>& args = options_.verb;
    for (size_t i = 1; i < args.size() && args[i] != "--"; ++i) {
      if (args[i] == "-h" || args[i] == "--help") {
        out_ << kUsage;
        return kExitOk;
      }
    }
    std::string verb = args.size() > 1 ? args[1] : "";
    if (verb == "use") return CacheUse();
    if (verb == "get") return CacheGet();
    if (verb == "set") return CacheSet();
    if (verb == "del") return CacheDelete();
    if (verb == "keys") return CacheKeys();
    if (verb == "watch") return CacheWatch();
    if (verb == "stats") return CacheStats();
    return Usage(
        absl::StrCat("cache takes use, get, set, del, keys, watch or stats",
                     verb.empty() ? "" : absl::StrCat(", not '", verb, "'")));
  }

  int CacheUse() {
    constexpr char kTakes[] =
        "cache use takes NS [--persist] [--expire=DURATION] "
        "[--fsync=always|everysec|no]";
    auto args =
        SplitVerbArgs(options_.verb, 2, {"--expire", "--fsync"}, {"--persist"});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.size() != 1) return Usage(kTakes);
    v1::UseRequest request;
    request.set_namespace_(args->positional[0]);
    v1::NamespaceOptions* options = request.mutable_options();
    options->set_persist(args->flags.count("--persist") > 0);
    if (auto expire = args->flags.find("--expire");
        expire != args->flags.end()) {
      absl::Duration duration;
      if (!ParseDurationFlag(expire->second, &duration)) {
        return Usage(absl::StrCat("--expire takes a duration (30s, 1m, 90), ",
                                  "not '", expire->second, "'"));
      }
      ToProto(duration, options->mutable_expire());
    }
    if (auto fsync = args->flags.find("--fsync"); fsync != args->flags.end()) {
      static const std::map<std::string, v1::NamespaceOptions::Fsync> kFsync = {
          {"always", v1::NamespaceOptions::FSYNC_ALWAYS},
          {"everysec", v1::NamespaceOptions::FSYNC_EVERYSEC},
          {"no", v1::NamespaceOptions::FSYNC_NO}};
      auto policy = kFsync.find(fsync->second);
      if (policy == kFsync.end())
        return Usage("--fsync takes always, everysec or no");
      options->set_fsync(policy->second);
    }
    if (int code = ConnectCache(); code != kExitOk) return code;
    grpc::ClientContext context;
    Prepare(&context);
    v1::UseResponse response;
    grpc::Status status = cache_->Use(&context, request, &response);
    if (!status.ok()) return FailCache(status);
    if (response.conflict()) {
      err_ << "cluster2ctl: namespace '" << request.namespace_()
           << "' already exists with other options; it keeps them\n";
    }
    if (Json()) {
      out_ << ToJson(response);
      return kExitOk;
    }
    absl::Duration expire = FromProto(response.options().expire());
    out_ << FormatTable(
        {{"NAMESPACE", "PERSIST", "EXPIRE", "FSYNC", "CONFLICT"},
         {request.namespace_(), response.options().persist() ? "yes" : "no",
          expire == absl::ZeroDuration() ? "never"
                                         : absl::FormatDuration(expire),
          FsyncName(response.options().fsync()),
          response.conflict() ? "yes" : "no"}});
    return kExitOk;
  }

  int CacheGet() {
    auto args = SplitVerbArgs(options_.verb, 2, {}, {});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.size() != 2) return Usage("cache get takes NS KEY");
    if (int code = ConnectCache(); code != kExitOk) return code;
    v1::GetRequest request;
    request.set_namespace_(args->positional[0]);
    request.set_key(args->positional[1]);
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetResponse response;
    grpc::Status status = cache_->Get(&context, request, &response);
    if (!status.ok()) return FailCache(status);
    if (Json()) out_ << ToJson(response);
    if (!response.found())
      return KeyNotFound(request.namespace_(), request.key());
    if (!Json()) out_ << response.value();
    return kExitOk;
  }

  int KeyNotFound(const std::string& ns, const std::string& key) {
    err_ << "cluster2ctl: key '" << key << "' not found in namespace '" << ns
         << "'\n";
    return kExitFailed;
  }

  int CacheSet() {
    constexpr char kTakes[] =
        "cache set takes NS KEY VALUE [--ttl=DURATION] [--nx]";
    auto args = SplitVerbArgs(options_.verb, 2, {"--ttl"}, {"--nx"});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.size() != 3) return Usage(kTakes);
    v1::SetRequest request;
    request.set_namespace_(args->positional[0]);
    request.set_key(args->positional[1]);
    request.set_value(args->positional[2]);
    request.set_leave_if_not_null(args->flags.count("--nx") > 0);
    if (auto ttl = args->flags.find("--ttl"); ttl != args->flags.end()) {
      absl::Duration duration;
      if (!ParseDurationFlag(ttl->second, &duration) ||
          duration == absl::ZeroDuration()) {
        return Usage(absl::StrCat("--ttl takes a positive duration (30s, 1m, ",
                                  "90), not '", ttl->second, "'"));
      }
      ToProto(duration, request.mutable_ttl());
    }
    if (int code = ConnectCache(); code != kExitOk) return code;
    grpc::ClientContext context;
    Prepare(&context);
    v1::SetResponse response;
    grpc::Status status = cache_->Set(&context, request, &response);
    if (!status.ok()) return FailCache(status);
    if (Json()) {
      out_ << ToJson(response);
    } else if (response.written()) {
      out_ << "written (revision " << response.revision() << ")\n";
    } else {
      out_ << response.current();
    }
    if (!response.written()) {
      err_ << "cluster2ctl: key '" << request.key()
           << "' already has a value (printed); --nx left it\n";
      return kExitFailed;
    }
    return kExitOk;
  }

  int CacheDelete() {
    auto args = SplitVerbArgs(options_.verb, 2, {}, {});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.size() != 2) return Usage("cache del takes NS KEY");
    if (int code = ConnectCache(); code != kExitOk) return code;
    v1::DeleteRequest request;
    request.set_namespace_(args->positional[0]);
    request.set_key(args->positional[1]);
    grpc::ClientContext context;
    Prepare(&context);
    v1::DeleteResponse response;
    grpc::Status status = cache_->Delete(&context, request, &response);
    if (!status.ok()) return FailCache(status);
    if (Json()) out_ << ToJson(response);
    if (!response.found())
      return KeyNotFound(request.namespace_(), request.key());
    if (!Json()) out_ << response.old_value();
    return kExitOk;
  }

  int CacheKeys() {
    auto args = SplitVerbArgs(options_.verb, 2, {"--limit"}, {});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.empty() || args->positional.size() > 2)
      return Usage("cache keys takes NS [PREFIX] [--limit=N]");
    uint64_t limit = 0;  // 0 = every key
    if (auto flag = args->flags.find("--limit"); flag != args->flags.end()) {
      if (!absl::SimpleAtoi(flag->second, &limit) || limit == 0)
        return Usage("--limit takes a positive number");
    }
    if (int code = ConnectCache(); code != kExitOk) return code;
    constexpr uint64_t kMaxPage = 10000;  // the server's largest page
    v1::KeysRequest request;
    request.set_namespace_(args->positional[0]);
    if (args->positional.size() == 2) request.set_prefix(args->positional[1]);
    v1::KeysResponse all;  // for -o json
    uint64_t listed = 0;
    while (limit == 0 || listed < limit) {
      if (limit > 0)
        request.set_limit(static_cast<uint32_t>(
            std::min<uint64_t>(limit - listed, kMaxPage)));
      grpc::ClientContext context;
      Prepare(&context);
      v1::KeysResponse page;
      grpc::Status status = cache_->Keys(&context, request, &page);
      if (!status.ok()) return FailCache(status);
      for (const std::string& key : page.keys()) {
        if (limit > 0 && listed == limit) break;
        if (Json()) {
          all.add_keys(key);
        } else {
          out_ << key << "\n";
        }
        ++listed;
      }
      if (page.next_page_token().empty()) break;
      request.set_page_token(page.next_page_token());
    }
    if (Json()) out_ << ToJson(all);
    return kExitOk;
  }

  int CacheWatch() {
    constexpr char kTakes[] =
        "cache watch takes NS [KEY] [--from=REVISION] [--count=N]";
    auto args = SplitVerbArgs(options_.verb, 2, {"--from", "--count"}, {});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.empty() || args->positional.size() > 2)
      return Usage(kTakes);
    v1::WatchRequest request;
    request.set_namespace_(args->positional[0]);
    if (args->positional.size() == 2) request.set_key(args->positional[1]);
    if (auto from = args->flags.find("--from"); from != args->flags.end()) {
      uint64_t revision = 0;
      if (!absl::SimpleAtoi(from->second, &revision))
        return Usage("--from takes a revision number");
      request.set_from_revision(revision);
    }
    int64_t count = -1;  // -1 = until interrupted
    if (auto flag = args->flags.find("--count"); flag != args->flags.end()) {
      if (!absl::SimpleAtoi(flag->second, &count) || count <= 0)
        return Usage("--count takes a positive number");
    }
    if (int code = ConnectCache(); code != kExitOk) return code;
    int64_t seen = 0;
    while (true) {
      grpc::ClientContext context;  // no deadline: it streams until stopped
      auto reader = cache_->Watch(&context, request);
      v1::WatchEvent event;
      bool progressed = false;
      while (reader->Read(&event)) {
        progressed = true;
        // Resume after the last revision seen.
        if (event.revision() > 0) request.set_from_revision(event.revision());
        if (Json()) {
          out_ << JsonLine(event) << std::endl;
        } else {
          out_ << FormatWatchEvent(event) << std::flush;
        }
        if (event.kind() != v1::WatchEvent::KIND_UNSPECIFIED) ++seen;
        if (count > 0 && seen >= count) {
          context.TryCancel();
          reader->Finish();
          return kExitOk;
        }
      }
      grpc::Status status = reader->Finish();
      // The contract: a slow consumer is cut off and resumes. Resume only
      // after progress, so a server that refuses at once is not hammered.
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
          progressed) {
        continue;
      }
      return status.ok() ? kExitOk : FailCache(status);
    }
  }

  int CacheStats() {
    auto args = SplitVerbArgs(options_.verb, 2, {}, {});
    if (!args.ok()) return Usage(args.status().message());
    if (args->positional.size() > 1) return Usage("cache stats takes [NS]");
    if (int code = ConnectCache(); code != kExitOk) return code;
    v1::StatsRequest request;
    if (!args->positional.empty()) request.set_namespace_(args->positional[0]);
    grpc::ClientContext context;
    Prepare(&context);
    v1::StatsResponse response;
    grpc::Status status = cache_->Stats(&context, request, &response);
    if (!status.ok()) return FailCache(status);
    out_ << (Json() ? ToJson(response) : FormatCacheStatsTable(response));
    return kExitOk;
  }

  int Usage(absl::string_view problem) {
    err_ << "cluster2ctl: " << problem << " (see cluster2ctl --help)\n";
    return kExitUsage;
  }

  const Options options_;
  std::ostream& out_;
  std::ostream& err_;
  std::string address_;
  std::unique_ptr<v1::Cluster::Stub> stub_;
  std::unique_ptr<v1::Emitter::Stub> emitter_;
  std::unique_ptr<v1::Status::Stub> status_;
  std::unique_ptr<v1::Ecv::Stub> ecv_;
  std::string cache_where_;  // the cache server's socket path (or address)
  std::unique_ptr<v1::Cache::Stub> cache_;
};

}  // namespace

std::string FormatWorkersTable(const v1::ListWorkersResponse& workers,
                               absl::Time now) {
  std::string table = absl::StrFormat(
      "%-4s %-8s %-9s %-9s %-9s %-9s %-10s %-9s %s\n", "ID", "PID", "STATE",
      "UPTIME", "RESTARTS", "RSS", "HEARTBEAT", "REQUESTS", "NOTE");
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
        "%-4d %-8s %-9s %-9s %-9d %-9s %-10s %-9d %s", worker.id(),
        running ? absl::StrCat(worker.pid()) : "-", StateName(worker.state()),
        running ? FormatAge(now - FromProto(worker.started_at())) : "-",
        worker.restarts(), FormatBytes(worker.last_heartbeat().rss_bytes()),
        heartbeat, worker.last_heartbeat().requests_total(), note);
    while (!row.empty() && row.back() == ' ') row.pop_back();
    absl::StrAppend(&table, row, "\n");
  }
  return table;
}

std::string FormatCacheStatsTable(const v1::StatsResponse& stats) {
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "HITS", "MISSES", "LOADS", "ERRORS", "KEYS", "BYTES"}};
  for (const v1::NamespaceStats& ns : stats.namespaces()) {
    rows.push_back({ns.namespace_(), absl::StrCat(ns.hits()),
                    absl::StrCat(ns.misses()), absl::StrCat(ns.loads()),
                    absl::StrCat(ns.errors()), absl::StrCat(ns.keys()),
                    absl::StrCat(ns.bytes())});
  }
  return FormatTable(rows);
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

int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err) {
  Options options;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (!options.verb.empty()) {
      options.verb.push_back(arg);
      continue;
    }
    // Options take "--option VALUE" or "--option=VALUE".
    std::optional<std::string> inline_value;
    if (size_t equals = arg.find('=');
        absl::StartsWith(arg, "--") && equals != std::string::npos) {
      inline_value = arg.substr(equals + 1);
      arg.resize(equals);
    }
    auto value = [&](std::string* target) {
      if (inline_value.has_value()) {
        *target = *inline_value;
        return true;
      }
      if (i + 1 >= args.size()) return false;
      *target = args[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help" || arg == "help") {
      out << kUsage;
      return kExitOk;
    } else if (arg == "--name") {
      if (!value(&options.name)) break;
    } else if (arg == "--run-dir") {
      if (!value(&options.run_dir)) break;
    } else if (arg == "--master") {
      if (!value(&options.master)) break;
    } else if (arg == "--cache-socket") {
      if (!value(&options.cache_socket)) break;
    } else if (arg == "-o" || arg == "--output") {
      if (!value(&options.output)) break;
      if (options.output != "json" && options.output != "table") {
        err << "cluster2ctl: -o takes table or json\n";
        return kExitUsage;
      }
    } else if (arg == "--timeout") {
      std::string text;
      if (!value(&text) || !absl::SimpleAtoi(text, &options.timeout_seconds) ||
          options.timeout_seconds <= 0) {
        err << "cluster2ctl: --timeout takes a positive number of seconds\n";
        return kExitUsage;
      }
    } else if (absl::StartsWith(arg, "-")) {
      err << "cluster2ctl: unknown option '" << arg
          << "' (see cluster2ctl --help)\n";
      return kExitUsage;
    } else {
      options.verb.push_back(arg);
    }
  }
  if (options.verb.empty()) {
    err << "cluster2ctl: no verb given (see cluster2ctl --help)\n";
    return kExitUsage;
  }
  // Verbs accept -o and --cache-socket after them too (`cluster2ctl workers
  // -o json`), up to a "--" that ends the flags.
  std::vector<std::string>& verb = options.verb;
  for (size_t i = 1; i < verb.size() && verb[i] != "--";) {
    std::string* target = nullptr;
    std::string name = verb[i].substr(0, verb[i].find('='));
    if (name == "-o" || name == "--output") target = &options.output;
    if (name == "--cache-socket") target = &options.cache_socket;
    if (target != nullptr && name.size() < verb[i].size()) {
      *target = verb[i].substr(name.size() + 1);
      verb.erase(verb.begin() + i);
    } else if (target != nullptr && i + 1 < verb.size()) {
      *target = verb[i + 1];
      verb.erase(verb.begin() + i, verb.begin() + i + 2);
    } else {
      ++i;
    }
  }
  if (options.output != "json" && options.output != "table") {
    err << "cluster2ctl: -o takes table or json\n";
    return kExitUsage;
  }
  return Ctl(std::move(options), out, err).Run();
}

}  // namespace cluster2
