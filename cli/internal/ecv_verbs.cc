// The verbs of the Ecv service: ecv, markup, markdown.
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/internal/output.h"
#include "cli/internal/verb.h"
#include "cluster2/v1/ecv.grpc.pb.h"

namespace cluster2::ctl {
namespace {

enum class EcvAction { kShow, kMarkUp, kMarkDown };

int RunEcv(EcvAction action, VerbContext& ctl) {
  if (int code = ctl.ConnectMaster(); code != kExitOk) return code;
  auto ecv = v1::Ecv::NewStub(ctl.master());
  grpc::ClientContext context;
  ctl.SetDeadline(&context);
  v1::EcvState response;
  v1::MarkRequest request;
  const char* user = std::getenv("USER");
  request.set_who(
      absl::StrCat("cluster2ctl by ", user != nullptr ? user : "?"));
  grpc::Status status;
  switch (action) {
    case EcvAction::kShow:
      status = ecv->GetEcv(&context, {}, &response);
      break;
    case EcvAction::kMarkUp:
      status = ecv->MarkUp(&context, request, &response);
      break;
    case EcvAction::kMarkDown:
      status = ecv->MarkDown(&context, request, &response);
      break;
  }
  if (!status.ok()) return ctl.FailMaster(status);
  if (ctl.json()) {
    ctl.out() << ToJson(response);
    return kExitOk;
  }
  std::string health = v1::EcvState::Health_Name(response.health());
  health = absl::AsciiStrToLower(health.substr(health.find('_') + 1));
  ctl.out() << health << " (" << response.mode() << " mode, "
            << response.ready_workers() << " ready workers; last change by "
            << response.changed_by() << ")\n";
  return kExitOk;
}

Verb EcvVerb(std::string path, std::string help, EcvAction action) {
  return {std::move(path), "", std::move(help), "",
          [action](CLI::App&) -> VerbHandler {
            return [action](VerbContext& ctl) { return RunEcv(action, ctl); };
          }};
}

}  // namespace

std::vector<Verb> EcvVerbs() {
  return {
      EcvVerb("ecv", "the load-balancer state (up, marked down, down)",
              EcvAction::kShow),
      EcvVerb("markup", "mark the cluster up (load balancers send to it)",
              EcvAction::kMarkUp),
      EcvVerb("markdown", "mark the cluster down (load balancers drain it)",
              EcvAction::kMarkDown),
  };
}

}  // namespace cluster2::ctl
