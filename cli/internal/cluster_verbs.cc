// The verbs of the Cluster service: workers, worker, config, restart,
// recycle, scale, pause, resume, shutdown, debug, stacks.
#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/exit_codes.h"
#include "cli/internal/output.h"
#include "cli/internal/verb.h"
#include "cli/tables.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "google/protobuf/struct.pb.h"

namespace cluster2::ctl {
namespace {

// Connects to the master and makes a Cluster stub; nullptr after printing
// why not (the exit code in *code).
std::unique_ptr<v1::Cluster::Stub> ClusterStub(VerbContext& ctl, int* code) {
  *code = ctl.ConnectMaster();
  if (*code != kExitOk) return nullptr;
  return v1::Cluster::NewStub(ctl.master());
}

int Workers(VerbContext& ctl) {
  if (!ctl.options().hosts.empty()) return FleetWorkers(ctl);
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::ListWorkersResponse response;
  grpc::Status status = stub->ListWorkers(&context, {}, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  ctl.out() << (ctl.json() ? ToJson(response)
                           : FormatWorkersTable(response, absl::Now()));
  return kExitOk;
}

int OneWorker(const std::string& pid_text, VerbContext& ctl) {
  int pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid)) return ctl.Usage("worker takes PID");
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::GetWorkerRequest request;
  request.set_pid(pid);
  v1::Worker response;
  grpc::Status status = stub->GetWorker(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else {
    ctl.out() << FormatWorkerDetail(response, absl::Now());
  }
  return kExitOk;
}

// The configuration is JSON in either output format.
int Config(VerbContext& ctl) {
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::GetConfigResponse response;
  grpc::Status status = stub->GetConfig(&context, {}, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  ctl.out() << ToJson(response.config());
  return kExitOk;
}

struct RestartArgs {
  std::string pid = "0";
  std::string surge = "0";
  std::string group;
};

int Restart(const RestartArgs& args, VerbContext& ctl) {
  int pid = 0;
  unsigned surge = 0;
  if (!absl::SimpleAtoi(args.pid, &pid) ||
      !absl::SimpleAtoi(args.surge, &surge)) {
    return ctl.Usage("restart takes [--pid PID] [--surge N]");
  }
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::RestartRequest request;
  request.set_pid(pid);
  request.set_surge(surge);
  request.set_group(args.group);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::RestartResponse response;
  grpc::Status status = stub->Restart(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else {
    ctl.out() << "replacing " << response.pids_size() << " worker(s):";
    for (int replaced : response.pids()) ctl.out() << " " << replaced;
    ctl.out() << "\n";
  }
  return kExitOk;
}

struct RecycleArgs {
  std::string pid;
  std::string reason = "manual";
};

int Recycle(const RecycleArgs& args, VerbContext& ctl) {
  int pid = 0;
  if (!absl::SimpleAtoi(args.pid, &pid))
    return ctl.Usage("recycle takes PID [--reason TEXT]");
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::RecycleRequest request;
  request.set_pid(pid);
  request.set_reason(args.reason);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::RecycleResponse response;
  grpc::Status status = stub->Recycle(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    // RecycleResponse is empty: say what was asked, like the table does.
    google::protobuf::Struct done;
    (*done.mutable_fields())["ok"].set_bool_value(true);
    (*done.mutable_fields())["pid"].set_number_value(pid);
    (*done.mutable_fields())["reason"].set_string_value(args.reason);
    ctl.out() << ToJson(done);
  } else {
    ctl.out() << "replacing worker pid " << pid << "\n";
  }
  return kExitOk;
}

struct ScaleArgs {
  std::string workers;
  std::string group;
};

int Scale(const ScaleArgs& args, VerbContext& ctl) {
  unsigned workers = 0;
  if (!absl::SimpleAtoi(args.workers, &workers))
    return ctl.Usage("scale takes the number of workers");
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::ScaleRequest request;
  request.set_workers(workers);
  request.set_group(args.group);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::ScaleResponse response;
  grpc::Status status = stub->Scale(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else {
    ctl.out() << "scaled "
              << (args.group.empty() ? "" : "group '" + args.group + "' ")
              << "from " << response.previous() << " to " << response.workers()
              << " workers\n";
  }
  return kExitOk;
}

int Reload(bool restart_all, VerbContext& ctl) {
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::ReloadRequest request;
  request.set_restart_all(restart_all);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::ReloadResponse response;
  grpc::Status status = stub->Reload(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  if (response.changes().empty()) ctl.out() << "reloaded: nothing changed\n";
  if (!response.changes().empty()) ctl.out() << "reloaded:\n";
  for (const std::string& change : response.changes())
    ctl.out() << "  " << change << "\n";
  if (!response.replaced_groups().empty()) {
    ctl.out() << "replacing the workers of "
              << absl::StrJoin(response.replaced_groups(), ", ")
              << " by a rolling restart: each successor must be ready "
                 "before its old worker drains; if one fails, the restart "
                 "stops and the old workers keep serving (see `cluster2ctl "
                 "workers`)\n";
  }
  if (!response.needs_restart().empty()) {
    ctl.out() << "not applied (they need a new master): "
              << absl::StrJoin(response.needs_restart(), ", ") << "\n";
  }
  return kExitOk;
}

int ChangePause(bool pause, const std::string& pid_text, VerbContext& ctl) {
  int pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid))
    return ctl.Usage(pause ? "pause takes PID" : "resume takes PID");
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::Worker response;
  grpc::Status status;
  if (pause) {
    v1::PauseRequest request;
    request.set_pid(pid);
    status = stub->Pause(&context, request, &response);
  } else {
    v1::ResumeRequest request;
    request.set_pid(pid);
    status = stub->Resume(&context, request, &response);
  }
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else {
    ctl.out() << "worker pid " << pid << (pause ? " paused\n" : " resumed\n");
  }
  return kExitOk;
}

int Shutdown(bool fast, VerbContext& ctl) {
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::ShutdownRequest request;
  request.set_fast(fast);
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::ShutdownResponse response;
  grpc::Status status = stub->Shutdown(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    // ShutdownResponse is empty: say what began, like the table does.
    google::protobuf::Struct done;
    (*done.mutable_fields())["ok"].set_bool_value(true);
    (*done.mutable_fields())["stop"].set_string_value(fast ? "fast"
                                                           : "graceful");
    ctl.out() << ToJson(done);
  } else {
    ctl.out() << (fast ? "fast stop begun\n" : "graceful stop begun\n");
  }
  return kExitOk;
}

struct DebugArgs {
  std::string pid;
  std::string protocol;
  bool fresh = false;
  bool end = false;
};

// A debug session's RPC waits for the worker's pause and the debugger.
constexpr absl::Duration kDebugTimeout = absl::Seconds(30);

int Debug(const DebugArgs& args, VerbContext& ctl) {
  int pid = 0;
  if ((!args.pid.empty() && !absl::SimpleAtoi(args.pid, &pid)) ||
      (pid != 0) + args.fresh + args.end > 1) {
    return ctl.Usage("debug takes PID [--protocol P] | --fresh | --end");
  }
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::DebugRequest request;
  request.set_pid(pid);
  request.set_protocol(args.protocol);
  request.set_fresh(args.fresh);
  request.set_end(args.end);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(
      absl::Now() + std::max(kDebugTimeout, ctl.options().timeout)));
  v1::DebugResponse response;
  grpc::Status status = stub->Debug(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
  } else if (args.end) {
    ctl.out() << "debug session ended: pid " << response.pid()
              << " killed, port " << response.address() << " free\n";
  } else {
    ctl.out() << "debug session" << (response.fresh() ? " (fresh worker)" : "")
              << ": pid " << response.pid() << ", " << response.protocol()
              << " on " << response.address() << "\n";
    if (!response.executable().empty())
      ctl.out() << "program: " << response.executable() << "\n";
    ctl.out() << "connect:\n  " << response.instructions();
  }
  return kExitOk;
}

int Stacks(const std::string& pid_text, VerbContext& ctl) {
  int pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid)) return ctl.Usage("stacks takes PID");
  int code;
  auto stub = ClusterStub(ctl, &code);
  if (stub == nullptr) return code;
  v1::StacksRequest request;
  request.set_pid(pid);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(
      absl::Now() + std::max(kDebugTimeout, ctl.options().timeout)));
  v1::StacksResponse response;
  grpc::Status status = stub->Stacks(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  for (const v1::StacksResponse::Thread& thread : response.threads()) {
    ctl.out() << "thread " << thread.number() << " lwp " << thread.lwp()
              << " \"" << thread.name() << "\"\n";
    for (const std::string& frame : thread.frames())
      ctl.out() << "  " << frame << "\n";
  }
  ctl.out() << response.threads_size() << " threads; gdb ran "
            << absl::FormatDuration(
                   absl::Seconds(response.gdb_time().seconds()) +
                   absl::Nanoseconds(response.gdb_time().nanos()))
            << "\n";
  return kExitOk;
}

// A verb of one required positional, e.g. PID.
Verb OnePositional(std::string path, std::string name, std::string what,
                   std::string help,
                   std::function<int(const std::string&, VerbContext&)> run) {
  std::string synopsis = name;
  return {std::move(path), std::move(synopsis), std::move(help), "",
          [name, what, run](CLI::App& command) -> VerbHandler {
            auto value = std::make_shared<std::string>();
            command.add_option(name, *value, what)->required();
            return [value, run](VerbContext& ctl) { return run(*value, ctl); };
          }};
}

}  // namespace

std::vector<Verb> ClusterVerbs() {
  return {
      {"workers", "",
       "list the workers (id, pid, state, uptime, restarts, heartbeat)", "",
       [](CLI::App&) -> VerbHandler { return Workers; }},
      OnePositional("worker", "PID", "the worker's process id", "one worker",
                    OneWorker),
      {"config", "", "the effective configuration (JSON)", "",
       [](CLI::App&) -> VerbHandler { return Config; }},
      {"restart", "[--pid PID | --group NAME] [--surge N]",
       "rolling restart: each worker is replaced by a successor that is "
       "ready before it drains (all workers, a group's, or one)",
       "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<RestartArgs>();
         command
             .add_option("--pid", args->pid, "only this worker (default: all)")
             ->type_name("PID");
         command
             .add_option("--surge", args->surge,
                         "extra workers started at once (default 0)")
             ->type_name("N");
         command
             .add_option("--group", args->group,
                         "only the workers of this group")
             ->type_name("NAME");
         return [args](VerbContext& ctl) { return Restart(*args, ctl); };
       }},
      {"recycle", "PID [--reason TEXT]",
       "replace one worker now, the same safe way", "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<RecycleArgs>();
         command.add_option("PID", args->pid, "the worker's process id")
             ->required();
         command
             .add_option("--reason", args->reason,
                         "recorded with the replacement (default \"manual\")")
             ->type_name("TEXT");
         return [args](VerbContext& ctl) { return Recycle(*args, ctl); };
       }},
      {"scale", "N [--group NAME]",
       "set the number of workers (of a group, when there are several)", "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<ScaleArgs>();
         command.add_option("N", args->workers, "the number of workers")
             ->required();
         command
             .add_option("--group", args->group,
                         "the group to scale (needed with several)")
             ->type_name("NAME");
         return [args](VerbContext& ctl) { return Scale(*args, ctl); };
       }},
      {"reload", "[--all]",
       "re-read the config file and apply it: changed groups are replaced "
       "by a rolling restart, counts and timings change at once",
       "Fields that need a new master (port, host, monPort, runDir, name, "
       "balance, cache, logFile, debug, the ECV's paths) are listed, not "
       "applied. An "
       "invalid file changes nothing: its error is printed (exit 1). "
       "SIGHUP to the master reloads too, and restarts every worker "
       "(--all).",
       [](CLI::App& command) -> VerbHandler {
         auto all = std::make_shared<bool>(false);
         command
             .add_flag("--all", *all,
                       "replace every worker, not only changed groups")
             ->disable_flag_override();
         return [all](VerbContext& ctl) { return Reload(*all, ctl); };
       }},
      OnePositional("pause", "PID", "the worker's process id",
                    "the worker stops accepting new connections (others serve)",
                    [](const std::string& pid, VerbContext& ctl) {
                      return ChangePause(true, pid, ctl);
                    }),
      OnePositional("resume", "PID", "the worker's process id",
                    "the paused worker accepts again",
                    [](const std::string& pid, VerbContext& ctl) {
                      return ChangePause(false, pid, ctl);
                    }),
      {"debug", "[PID [--protocol P] | --fresh | --end]",
       "debug a worker: out of rotation and replaced, under gdbserver (or "
       "its runtime's debugger); prints how to connect",
       "PID: that worker leaves rotation and its slot (a replacement keeps N "
       "workers serving) and gets a debugger on debug.host:debug.webPort.\n"
       "--fresh: a new worker, beyond N, waits under gdbserver for the "
       "debugger before it runs.\n"
       "--end: kill the session's process and debugger. No argument: the "
       "open session. One session at a time.",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<DebugArgs>();
         command.add_option("PID", args->pid, "the worker's process id");
         command
             .add_option("--protocol", args->protocol,
                         "gdb, debugpy, v8-inspector (default: the worker's "
                         "first offered, else gdb)")
             ->type_name("P");
         command
             .add_flag("--fresh", args->fresh,
                       "debug a new worker from its first instruction")
             ->disable_flag_override();
         command.add_flag("--end", args->end, "end the debug session")
             ->disable_flag_override();
         return [args](VerbContext& ctl) { return Debug(*args, ctl); };
       }},
      OnePositional("stacks", "PID", "the worker's process id",
                    "every thread's stack of a worker (gdb stops it for a "
                    "moment); also in the master's log",
                    Stacks),
      {"shutdown", "[--fast]",
       "stop the cluster (graceful drain, or kill at once)", "",
       [](CLI::App& command) -> VerbHandler {
         auto fast = std::make_shared<bool>(false);
         command
             .add_flag("--fast", *fast,
                       "kill the workers at once instead of draining them")
             ->disable_flag_override();
         return [fast](VerbContext& ctl) { return Shutdown(*fast, ctl); };
       }},
  };
}

}  // namespace cluster2::ctl
