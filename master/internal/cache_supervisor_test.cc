#include "master/internal/cache_supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <utility>
#include <vector>

#include "common/fake_clock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

using State = CacheServerSupervisor::State;

constexpr int kExit1 = 1 << 8;  // wait status of exit(1)

class FakeLauncher final : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Launch(const SpawnSpec&) override {
    if (fail_launches_ > 0) {
      --fail_launches_;
      return absl::ResourceExhaustedError("fork: out of processes");
    }
    launched_.push_back(next_pid_);
    return next_pid_++;
  }
  void Signal(pid_t pid, int signal) override {
    signals_.emplace_back(pid, signal);
  }
  std::vector<pid_t> launched_;
  std::vector<std::pair<pid_t, int>> signals_;
  int fail_launches_ = 0;

 private:
  pid_t next_pid_ = 100;
};

class CacheSupervisorTest : public ::testing::Test {
 protected:
  CacheSupervisorOptions Options() {
    CacheSupervisorOptions options;
    options.spec.argv = {"/bin/cluster2-cache"};
    options.backoff_initial = absl::Milliseconds(100);
    options.backoff_max = absl::Seconds(1);
    options.stable_period = absl::Seconds(10);
    options.give_up_after = 4;
    options.health_timeout = absl::Seconds(5);
    options.start_timeout = absl::Seconds(20);
    return options;
  }
  FakeClock clock_;
  FakeLauncher launcher_;
};

TEST_F(CacheSupervisorTest, RestartsAtOnceAfterAStableRun) {
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  ASSERT_EQ(launcher_.launched_.size(), 1u);
  for (int i = 0; i < 10; ++i) {  // healthy for 11 s
    clock_.Advance(absl::Seconds(1.1));
    supervisor.HealthAnswered(100);
    supervisor.Tick();
  }
  EXPECT_TRUE(supervisor.ProcessExited(100, kExit1));
  EXPECT_EQ(launcher_.launched_.size(), 2u);
  EXPECT_EQ(supervisor.state(), State::kRunning);
  EXPECT_EQ(supervisor.pid(), 101);
  EXPECT_EQ(supervisor.restarts(), 1u);
  EXPECT_FALSE(supervisor.ProcessExited(100, kExit1));  // not ours any more
}

TEST_F(CacheSupervisorTest, QuickFailuresBackOffThenGiveUp) {
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  // Three quick failures: restarted after 100, 200, 400 ms.
  for (absl::Duration delay : {absl::Milliseconds(100), absl::Milliseconds(200),
                               absl::Milliseconds(400)}) {
    const size_t launched = launcher_.launched_.size();
    ASSERT_TRUE(supervisor.ProcessExited(supervisor.pid(), kExit1));
    EXPECT_EQ(supervisor.state(), State::kWaiting);
    EXPECT_EQ(supervisor.Tick(), clock_.Now() + delay);
    clock_.Advance(delay - absl::Milliseconds(1));
    supervisor.Tick();
    EXPECT_EQ(launcher_.launched_.size(), launched) << "restarted too early";
    clock_.Advance(absl::Milliseconds(1));
    supervisor.Tick();
    EXPECT_EQ(launcher_.launched_.size(), launched + 1);
  }
  // The fourth quick failure gives up: no restart, ever.
  ASSERT_TRUE(supervisor.ProcessExited(supervisor.pid(), kExit1));
  EXPECT_EQ(supervisor.state(), State::kFailed);
  EXPECT_EQ(supervisor.Tick(), absl::InfiniteFuture());
  clock_.Advance(absl::Hours(1));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 4u);
}

TEST_F(CacheSupervisorTest, AFailedLaunchCountsAsAQuickFailure) {
  launcher_.fail_launches_ = 1;
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  EXPECT_EQ(supervisor.state(), State::kWaiting);
  clock_.Advance(absl::Milliseconds(100));
  supervisor.Tick();
  EXPECT_EQ(supervisor.state(), State::kRunning);
  EXPECT_EQ(launcher_.launched_.size(), 1u);
}

TEST_F(CacheSupervisorTest, AServerThatStopsAnsweringIsKilledAndRestarted) {
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  clock_.Advance(absl::Seconds(3));
  supervisor.HealthAnswered(100);
  EXPECT_EQ(supervisor.Tick(), clock_.Now() + absl::Seconds(5));
  clock_.Advance(absl::Seconds(4.9));
  supervisor.Tick();
  EXPECT_TRUE(launcher_.signals_.empty());
  // An answer from another pid does not count.
  supervisor.HealthAnswered(999);
  clock_.Advance(absl::Milliseconds(100));
  supervisor.Tick();
  ASSERT_EQ(launcher_.signals_.size(), 1u);
  EXPECT_EQ(launcher_.signals_[0], std::make_pair(pid_t{100}, SIGKILL));
  supervisor.Tick();  // killed once, not again while it dies
  EXPECT_EQ(launcher_.signals_.size(), 1u);
  // Its death (8 s after start: a quick failure) brings a restart.
  ASSERT_TRUE(supervisor.ProcessExited(100, SIGKILL));
  clock_.Advance(absl::Milliseconds(100));
  supervisor.Tick();
  EXPECT_EQ(supervisor.pid(), 101);
  EXPECT_EQ(supervisor.state(), State::kRunning);
}

TEST_F(CacheSupervisorTest, AServerThatNeverAnswersGetsTheStartTimeout) {
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  clock_.Advance(absl::Seconds(19));
  supervisor.Tick();
  EXPECT_TRUE(launcher_.signals_.empty()) << "killed while starting";
  clock_.Advance(absl::Seconds(1));
  supervisor.Tick();
  ASSERT_EQ(launcher_.signals_.size(), 1u);
}

TEST_F(CacheSupervisorTest, StopEndsRestarts) {
  CacheServerSupervisor supervisor(Options(), &launcher_, &clock_);
  supervisor.Start();
  EXPECT_EQ(supervisor.Stop(), 100);
  EXPECT_TRUE(supervisor.ProcessExited(100, 0));
  clock_.Advance(absl::Minutes(1));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 1u);
  EXPECT_TRUE(launcher_.signals_.empty());  // no health kill when stopped
  EXPECT_EQ(supervisor.state(), State::kStopped);
}

}  // namespace
}  // namespace cluster2
