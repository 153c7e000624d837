// The fixture of the Supervisor's unit tests (supervisor_test.cc,
// supervisor_groups_test.cc): a supervisor of two "/bin/sh" workers on a
// fake launcher and clock.
#ifndef CLUSTER2_MASTER_INTERNAL_SUPERVISOR_TEST_FIXTURE_H_
#define CLUSTER2_MASTER_INTERNAL_SUPERVISOR_TEST_FIXTURE_H_

#include <memory>

#include "common/fake_clock.h"
#include "gtest/gtest.h"
#include "master/internal/supervisor.h"
#include "master/internal/supervisor_fakes.h"

namespace cluster2 {

inline int Killed(int signal) {
  return signal;
}  // wait status of death by `signal`
inline int Exited(int code) { return code << 8; }

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() {
    options_.groups = {{"default", 2, {"/bin/sh"}, {}, ""}};
    options_.heartbeat_interval = absl::Milliseconds(500);
    options_.start_timeout = absl::Seconds(5);
    options_.backoff_initial = absl::Milliseconds(100);
    options_.backoff_max = absl::Seconds(1);
    options_.stable_period = absl::Seconds(10);
  }

  Supervisor& Start() {
    supervisor_ = std::make_unique<Supervisor>(options_, &launcher_, &clock_);
    EXPECT_TRUE(supervisor_->Start().ok());
    return *supervisor_;
  }

  // Attaches and readies the worker of `pid`.
  void MakeReady(pid_t pid, FakeChannel* channel) {
    ASSERT_TRUE(supervisor_->Attach(launcher_.tokens_[pid], channel).ok());
    supervisor_->Ready(launcher_.tokens_[pid]);
  }

  WorkerSnapshot Slot(unsigned id) {
    for (const WorkerSnapshot& worker : supervisor_->Workers()) {
      if (worker.id == id) return worker;
    }
    ADD_FAILURE() << "no worker in slot " << id;
    return {};
  }

  SupervisorOptions options_;
  FakeClock clock_;
  FakeLauncher launcher_;
  std::unique_ptr<Supervisor> supervisor_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_SUPERVISOR_TEST_FIXTURE_H_
