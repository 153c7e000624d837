// The verbs of the Emitter and Status services: emit, subscribe, status,
// status set.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/exit_codes.h"
#include "cli/internal/output.h"
#include "cli/internal/verb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cluster2::ctl {
namespace {

// Parses a JSON value ("5", "\"text\"", "{\"a\": 1}"); false if invalid.
bool ParseJson(const std::string& text, google::protobuf::Value* value) {
  return google::protobuf::util::JsonStringToMessage(text, value).ok();
}

struct EmitArgs {
  std::string event;
  std::vector<std::string> json;
  std::vector<std::string> to;
};

int Emit(const EmitArgs& args, VerbContext& ctl) {
  v1::EmitRequest request;
  request.mutable_event()->set_name(args.event);
  for (const std::string& arg : args.json) {
    if (!ParseJson(arg, request.mutable_event()->add_args())) {
      return ctl.Usage(absl::StrCat(
          "argument '", arg, "' is not JSON (quote strings: '\"text\"')"));
    }
  }
  for (const std::string& to : args.to) {
    v1::Target* target = request.mutable_event()->add_targets();
    int pid = 0;
    if (to == "self") {
      target->set_self(true);
    } else if (to == "master") {
      target->set_master(true);
    } else if (to == "workers") {
      target->set_workers(true);
    } else if (to == "cluster") {
      target->set_cluster(true);
    } else if (absl::SimpleAtoi(to, &pid) && pid > 0) {
      target->set_pid(pid);
    } else {
      return ctl.Usage("--to takes self, master, workers, cluster or a pid");
    }
  }
  if (int code = ctl.ConnectMaster(); code != kExitOk) return code;
  auto emitter = v1::Emitter::NewStub(ctl.master());
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::EmitResponse response;
  grpc::Status status = emitter->Emit(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  ctl.out() << "delivered to " << response.delivered() << " process(es)";
  if (response.unknown_pids_size() > 0) {
    ctl.out() << "; unknown pids:";
    for (int pid : response.unknown_pids()) ctl.out() << " " << pid;
  }
  ctl.out() << "\n";
  return kExitOk;
}

struct SubscribeArgs {
  std::vector<std::string> events;
  std::string count;
};

// One JSON object per line in either output format.
int Subscribe(const SubscribeArgs& args, VerbContext& ctl) {
  int count = -1;  // -1 = until interrupted
  if (!args.count.empty() &&
      (!absl::SimpleAtoi(args.count, &count) || count <= 0)) {
    return ctl.Usage("--count takes a positive number");
  }
  if (int code = ctl.ConnectMaster(); code != kExitOk) return code;
  auto emitter = v1::Emitter::NewStub(ctl.master());
  v1::SubscribeRequest request;
  for (const std::string& event : args.events) request.add_events(event);
  grpc::ClientContext context;  // no deadline: it streams until stopped
  auto reader = emitter->Subscribe(&context, request);
  v1::Event event;
  int seen = 0;
  while ((count < 0 || seen < count) && reader->Read(&event)) {
    ctl.out() << JsonLine(event) << std::endl;
    ++seen;
  }
  if (count >= 0 && seen >= count) {
    context.TryCancel();
    reader->Finish();
    return kExitOk;
  }
  grpc::Status status = reader->Finish();
  return status.ok() ? kExitOk : ctl.FailMaster(status);
}

// Prints every process's value of a status (table or JSON).
int PrintStatus(const v1::GetStatusResponse& response, VerbContext& ctl) {
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  ctl.out() << absl::StrFormat("%-8s %-7s %s\n", "PID", "WORKER", "VALUE");
  for (const v1::StatusEntry& entry : response.entries()) {
    std::string value = entry.error().empty()
                            ? JsonLine(entry.value())
                            : absl::StrCat("error: ", entry.error());
    ctl.out() << absl::StrFormat(
        "%-8d %-7s %s\n", entry.pid(),
        entry.has_worker_id() ? absl::StrCat(entry.worker_id()) : "master",
        value);
  }
  return kExitOk;
}

// `status` lists the names; `status NAME` shows one.
int Status(const std::string& name, VerbContext& ctl) {
  if (!ctl.options().hosts.empty()) {
    if (name.empty()) return ctl.Usage("--hosts works with status NAME");
    return FleetStatus(name, ctl);
  }
  if (int code = ctl.ConnectMaster(); code != kExitOk) return code;
  auto stub = v1::Status::NewStub(ctl.master());
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  if (name.empty()) {
    v1::ListStatusesResponse response;
    grpc::Status status = stub->ListStatuses(&context, {}, &response);
    if (!status.ok()) return ctl.FailMaster(status);
    if (ctl.json()) {
      ctl.out() << ToJson(response);
    } else {
      for (const std::string& one : response.names()) ctl.out() << one << "\n";
    }
    return kExitOk;
  }
  v1::GetStatusRequest request;
  request.set_name(name);
  v1::GetStatusResponse response;
  grpc::Status status = stub->GetStatus(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  return PrintStatus(response, ctl);
}

struct StatusSetArgs {
  std::string name;
  std::string json;
};

int StatusSet(const StatusSetArgs& args, VerbContext& ctl) {
  v1::SetStatusRequest request;
  request.set_name(args.name);
  if (!ParseJson(args.json, request.mutable_value()))
    return ctl.Usage("status set takes NAME and a JSON value");
  if (int code = ctl.ConnectMaster(); code != kExitOk) return code;
  auto stub = v1::Status::NewStub(ctl.master());
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::GetStatusResponse response;
  grpc::Status status = stub->SetStatus(&context, request, &response);
  if (!status.ok()) return ctl.FailMaster(status);
  return PrintStatus(response, ctl);
}

}  // namespace

std::vector<Verb> EventVerbs() {
  return {
      {"emit", "EVENT [JSON ...] [--to self|master|workers|cluster|PID ...]",
       "send an event (default: to the master and every worker)",
       "Each JSON is one argument of the event: quote strings ('\"text\"').",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<EmitArgs>();
         command.add_option("EVENT", args->event, "the event's name")
             ->required();
         command.add_option("JSON", args->json, "the event's arguments");
         command
             .add_option("--to", args->to,
                         "a recipient: self, master, workers, cluster (every "
                         "host of the emitter bridge) or a pid "
                         "(repeatable)")
             ->type_name("TARGET")
             ->allow_extra_args(false);
         return [args](VerbContext& ctl) { return Emit(*args, ctl); };
       }},
      {"subscribe", "[EVENT ...] [--count N]",
       "print the events the master receives, one JSON per line",
       "Without EVENT: every event. Until interrupted, or N events.",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<SubscribeArgs>();
         command.add_option("EVENT", args->events, "the events to print");
         command.add_option("--count", args->count, "exit 0 after N events")
             ->type_name("N");
         return [args](VerbContext& ctl) { return Subscribe(*args, ctl); };
       }},
      {"status", "[NAME]",
       "the status names registered in the cluster, or every process's value "
       "of NAME",
       "",
       [](CLI::App& command) -> VerbHandler {
         auto name = std::make_shared<std::string>();
         command.add_option("NAME", *name, "a status name");
         return [name](VerbContext& ctl) { return Status(*name, ctl); };
       }},
      {"status set", "NAME JSON", "set NAME everywhere it is registered", "",
       [](CLI::App& command) -> VerbHandler {
         auto args = std::make_shared<StatusSetArgs>();
         command.add_option("NAME", args->name, "the status name")->required();
         command.add_option("JSON", args->json, "its new value, as JSON")
             ->required();
         return [args](VerbContext& ctl) { return StatusSet(*args, ctl); };
       }},
  };
}

}  // namespace cluster2::ctl
