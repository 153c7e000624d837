#include "embed/listen.h"

#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "master/master.h"

namespace cluster2 {

bool IsWorker() { return std::getenv("CLUSTER2_WORKER_TOKEN") != nullptr; }

int Listen(int argc, char** argv, ListenOptions options) {
  const char* program = argc > 0 ? argv[0] : "cluster2";
  if (!options.serve) {
    std::cerr << program << ": cluster2::Listen needs a serve function\n";
    return 2;
  }
  if (IsWorker()) {
    absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Attach();
    if (!worker.ok()) {
      std::cerr << program << ": " << worker.status().message() << "\n";
      return 1;
    }
    return options.serve(**worker);
  }
  // Master role: the workers are this very program.
  char self[PATH_MAX];
  ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) {
    std::cerr << program << ": cannot read /proc/self/exe\n";
    return 1;
  }
  v1::ClusterConfig& config = options.config;
  config.clear_command();
  config.add_command(std::string(self, static_cast<size_t>(length)));
  for (int i = 1; i < argc; ++i) config.add_command(argv[i]);
  absl::StatusOr<v1::ClusterConfig> complete =
      CompleteConfig(std::move(config));
  if (!complete.ok()) {
    std::cerr << program << ": " << complete.status().message() << "\n";
    return 2;
  }
  return RunMaster(*complete, std::move(options.recycle_policies),
                   std::move(options.on_master));
}

}  // namespace cluster2
