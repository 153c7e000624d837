#include "tests/testing/test_cluster.h"

#include "absl/strings/str_cat.h"
#include "cluster2/v1/cluster.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cluster2::testing {

TestCluster::TestCluster(int workers, std::vector<std::string> flags,
                         std::string worker)
    : port_(FreePort()), mon_port_(FreePort()), run_dir_(tmp_.path() + "/run") {
  std::vector<std::string> argv = {
      BinaryPath("master/cluster2-master"),
      absl::StrCat("--noWorkers=", workers), absl::StrCat("--port=", port_),
      "--host=127.0.0.1", absl::StrCat("--monPort=", mon_port_),
      "--runDir=" + run_dir_, "--cache.persistPath=" + run_dir_ + ".cache",
      "--heartbeatInterval=200",
      // Hang detection after 3 s, not 3 beats:
      // under ASan on 2 loaded cores a beat can
      // be late by more than 600 ms. Tests of
      // the nanny set their own tolerance.
      "--nanny.tolerance=3000", "--stopTimeout=5000"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back("--");
  argv.push_back(worker.empty() ? BinaryPath("examples/hello/hello_worker")
                                : worker);
  master_ = std::make_unique<Process>(argv);
}

CommandResult TestCluster::Ctl(std::vector<std::string> args) {
  args.insert(args.begin(),
              {BinaryPath("cli/cluster2ctl"), "--run-dir", run_dir_});
  return RunCommand(args);
}

std::vector<v1::Worker> TestCluster::Workers() {
  CommandResult result = Ctl({"workers", "-o", "json"});
  if (result.exit_code != 0) return {};
  v1::ListWorkersResponse response;
  if (!google::protobuf::util::JsonStringToMessage(result.out, &response).ok())
    return {};
  return {response.workers().begin(), response.workers().end()};
}

size_t TestCluster::ReadyCount() {
  size_t ready = 0;
  for (const v1::Worker& worker : Workers()) {
    if (worker.state() == v1::WORKER_STATE_READY) ++ready;
  }
  return ready;
}

std::set<int> TestCluster::ReadyPids(size_t count) {
  std::vector<v1::Worker> workers = Workers();
  std::set<int> pids;
  if (workers.size() != count) return {};
  for (const v1::Worker& worker : workers) {
    if (worker.state() != v1::WORKER_STATE_READY) return {};
    pids.insert(worker.pid());
  }
  return pids;
}

std::set<int> TestCluster::WaitReady(size_t count, absl::Duration timeout) {
  std::set<int> pids;
  WaitUntil([&] { return !(pids = ReadyPids(count)).empty(); }, timeout);
  return pids;
}

}  // namespace cluster2::testing
