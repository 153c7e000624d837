// cluster2-master: runs a cluster. See MasterUsage() and docs/configuration.md.
#include <iostream>
#include <string>
#include <vector>

#include "master/master.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // --check: validate the configuration (file, flags, command) and exit,
  // 0 if it would start (the Bazel rule cluster2_service runs this at build
  // time), else 2 with the same one-line error as a start.
  bool check = false;
  for (auto it = args.begin(); it != args.end() && *it != "--"; ++it) {
    if (*it == "--check") {
      check = true;
      args.erase(it);
      break;
    }
  }
  absl::StatusOr<cluster2::v1::ClusterConfig> config =
      cluster2::ConfigFromArgs(args);
  if (!config.ok()) {
    bool help = config.status().code() == absl::StatusCode::kFailedPrecondition;
    (help ? std::cout : std::cerr)
        << (help ? "" : "cluster2-master: ") << config.status().message()
        << (help ? "" : "\n");
    return help ? 0 : 2;
  }
  if (check) return 0;
  // A reload (SIGHUP, cluster2ctl reload) reads the file again and applies
  // the same flags and command line on top.
  return cluster2::RunMaster(*config, {}, nullptr,
                             [args] { return cluster2::ConfigFromArgs(args); });
}
