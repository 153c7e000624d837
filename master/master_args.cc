// cluster2-master's arguments: the usage text, and flags plus config file
// into a complete, validated v1::ClusterConfig (declared in master/master.h).
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "master/internal/config.h"
#include "master/master.h"

namespace cluster2 {

std::string MasterUsage() {
  return R"(usage: cluster2-master [--config FILE] [--key=value ...] [-- COMMAND [ARGS...]]

Runs COMMAND as N workers sharing one listening port (fd 3, LISTEN_FDS=1).
Configuration (docs/configuration.md) comes from the JSON file, then flags:
  --noWorkers=N          number of workers (default: CPU count)
  --port=P               service port (default 8080; 0 = any free port)
  --host=ADDR            bind address (default 0.0.0.0)
  --monPort=P            monitor port (default 8081)
  --name=NAME            cluster name (default "default")
  --runDir=DIR           socket directory (default $XDG_RUNTIME_DIR/cluster2/NAME
                         or /tmp/cluster2-UID/NAME)
  --heartbeatInterval=MS, --stopTimeout=MS, --timeout=MS, --ecv.mode=..., ...
Any field of ClusterConfig is a flag; nested fields use dots.
  --check                validate the configuration and exit (0, or 2 and
                         the one-line error a start would print)
Signals: TERM/INT graceful stop, QUIT fast stop, HUP reload the config file
and restart every worker, TTIN/TTOU one worker more/less (first group),
USR1 reopen the log file. `cluster2ctl reload` reloads and replaces only
the workers whose group changed.
)";
}

absl::StatusOr<v1::ClusterConfig> ConfigFromArgs(
    const std::vector<std::string>& args) {
  std::string config_file;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> command;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      command.assign(args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "--help" || arg == "-h")
      return absl::FailedPreconditionError(MasterUsage());
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg,
                       "' (the worker command goes after '--')"));
    }
    std::string key = arg.substr(2);
    std::string value;
    if (size_t equals = key.find('='); equals != std::string::npos) {
      value = key.substr(equals + 1);
      key.resize(equals);
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", key, " needs a value"));
    }
    key = absl::StrReplaceAll(key, {{"-", "_"}});
    if (key == "config") {
      config_file = value;
    } else {
      flags.emplace_back(key, value);
    }
  }
  v1::ClusterConfig config;
  if (!config_file.empty()) {
    CLUSTER2_ASSIGN_OR_RETURN(config, LoadConfigFile(config_file));
  }
  for (const auto& [key, value] : flags) {
    CLUSTER2_RETURN_IF_ERROR(ApplyConfigFlag(key, value, &config));
  }
  if (!command.empty()) {
    config.clear_command();
    for (const std::string& part : command) config.add_command(part);
  }
  return CompleteConfig(std::move(config));
}

absl::StatusOr<v1::ClusterConfig> CompleteConfig(v1::ClusterConfig config) {
  ApplyConfigDefaults(std::thread::hardware_concurrency(), &config);
  CLUSTER2_RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

}  // namespace cluster2
