// TestCluster: a real cluster2-master with real workers for end-to-end
// tests, on free ports and in its own run directory, stopped (SIGKILL) and
// cleaned up with the object.
#ifndef CLUSTER2_TESTS_TESTING_TEST_CLUSTER_H_
#define CLUSTER2_TESTS_TESTING_TEST_CLUSTER_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cluster2/v1/common.pb.h"
#include "tests/testing/harness.h"

namespace cluster2::testing {

class TestCluster {
 public:
  // `workers` of `worker` (default: hello_worker) with 200 ms heartbeats,
  // a 5 s stop timeout and `flags` on top.
  explicit TestCluster(int workers, std::vector<std::string> flags = {},
                       std::string worker = "");

  int port() const { return port_; }
  int mon_port() const { return mon_port_; }
  const std::string& run_dir() const { return run_dir_; }
  Process& master() { return *master_; }

  // cluster2ctl --run-dir <run_dir> args...
  CommandResult Ctl(std::vector<std::string> args);
  // The workers as `cluster2ctl workers -o json` lists them (empty on error).
  std::vector<v1::Worker> Workers();
  size_t ReadyCount();
  // The pids of the workers if exactly `count` are listed and all are
  // ready; else empty.
  std::set<int> ReadyPids(size_t count);
  // Waits for ReadyPids(count); empty on timeout.
  std::set<int> WaitReady(size_t count,
                          absl::Duration timeout = absl::Seconds(10));

 private:
  TempDir tmp_;
  int port_;
  int mon_port_;
  std::string run_dir_;
  std::unique_ptr<Process> master_;
};

}  // namespace cluster2::testing

#endif  // CLUSTER2_TESTS_TESTING_TEST_CLUSTER_H_
