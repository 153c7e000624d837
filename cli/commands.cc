#include "cli/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/ecv.grpc.pb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "common/proto_time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "master/internal/run_dir.h"

namespace cluster2 {
namespace {

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

Options:
  --name NAME          cluster name (default "default")
  --run-dir DIR        run directory of the cluster (overrides --name)
  --master ADDRESS     master address, e.g. unix:/run/x/master.sock
                       (default: $CLUSTER2_MASTER, then the run directory)
  -o, --output FORMAT  table (default) or json
  --timeout SECONDS    RPC deadline (default 5)
  -h, --help           this text

Exit codes: 0 ok, 1 the master returned an error, 2 usage, 3 no master running.
)";

struct Options {
  std::string name = "default";
  std::string run_dir;
  std::string master;
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
      address_ = absl::StrCat("unix:", dir, "/", RunDirectory::kMasterSocket);
    }
    if (absl::StartsWith(address_, "unix:")) {
      std::string path = address_.substr(5);
      struct stat info;
      if (stat(path.c_str(), &info) != 0) {
        err_ << "cluster2ctl: no master running: " << path
             << " does not exist (start one with cluster2-master, or pass "
                "--name/--run-dir)\n";
        return kExitNoMaster;
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

int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err) {
  Options options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::string* target) {
      if (i + 1 >= args.size()) return false;
      *target = args[++i];
      return true;
    };
    if (!options.verb.empty()) {
      options.verb.push_back(arg);
    } else if (arg == "-h" || arg == "--help" || arg == "help") {
      out << kUsage;
      return kExitOk;
    } else if (arg == "--name") {
      if (!value(&options.name)) break;
    } else if (arg == "--run-dir") {
      if (!value(&options.run_dir)) break;
    } else if (arg == "--master") {
      if (!value(&options.master)) break;
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
  // Verbs accept -o after them too: `cluster2ctl workers -o json`.
  for (size_t i = 1; i + 1 < options.verb.size(); ++i) {
    if (options.verb[i] == "-o" || options.verb[i] == "--output") {
      options.output = options.verb[i + 1];
      options.verb.erase(options.verb.begin() + i,
                         options.verb.begin() + i + 2);
      break;
    }
  }
  if (options.output != "json" && options.output != "table") {
    err << "cluster2ctl: -o takes table or json\n";
    return kExitUsage;
  }
  return Ctl(std::move(options), out, err).Run();
}

}  // namespace cluster2
