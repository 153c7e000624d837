// What the supervisor tells its observer: worker events with their reasons
// (the page's timeline, cluster2_worker_lifecycle_events_total) and
// heartbeats (the per-slot counters and latency histogram).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "master/internal/supervisor_test_fixture.h"

namespace cluster2 {
namespace {

using ::testing::ElementsAre;

class RecordingObserver final : public SupervisorObserver {
 public:
  void OnWorkerEvent(const WorkerEvent& event) override {
    std::string line = absl::StrCat(WorkerEventName(event.kind), " ",
                                    event.slot, " ", event.pid);
    if (!event.detail.empty()) absl::StrAppend(&line, " (", event.detail, ")");
    events.push_back(line);
  }
  void OnHeartbeat(unsigned slot, const std::string& group, pid_t pid,
                   bool current, const HeartbeatFigures&) override {
    beats.push_back(absl::StrCat(slot, " ", group, " ", pid,
                                 current ? " current" : " not current"));
  }
  std::vector<std::string> events;
  std::vector<std::string> beats;
};

class SupervisorEventsTest : public SupervisorTest {
 protected:
  Supervisor& StartObserved() {
    supervisor_ = std::make_unique<Supervisor>(options_, &launcher_, &clock_);
    supervisor_->SetObserver(&observer_);
    EXPECT_TRUE(supervisor_->Start().ok());
    return *supervisor_;
  }
  RecordingObserver observer_;
};

TEST_F(SupervisorEventsTest, StartsCrashesAndRestartsAreToldWithTheExit) {
  Supervisor& supervisor = StartObserved();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  clock_.Advance(absl::Seconds(11));  // a stable run: restarted at once
  supervisor.ProcessExited(101, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_THAT(observer_.events,
              ElementsAre("started 0 100", "started 1 101", "ready 0 100",
                          "ready 1 101", "crashed 1 101 (signal 9 (Killed))",
                          "started 1 102 (restart 1)"));
}

TEST_F(SupervisorEventsTest, ARecycleSaysWhyAndItsSuccessorWhomItReplaces) {
  Supervisor& supervisor = StartObserved();
  FakeChannel a, b, c;
  MakeReady(100, &a);
  MakeReady(101, &b);
  observer_.events.clear();
  ASSERT_TRUE(supervisor.Recycle(100, "by http 127.0.0.1").ok());
  MakeReady(102, &c);
  supervisor.ProcessExited(100, Exited(0));
  EXPECT_THAT(
      observer_.events,
      ElementsAre("started 0 102 (restart 1)",
                  "recycled 0 100 (by http 127.0.0.1)",
                  "ready 0 102 (replaces pid 100)", "exited 0 100 (exit 0)"));
  // A rolling restart's replacement is "replacing".
  observer_.events.clear();
  ASSERT_TRUE(supervisor.Restart(101, 0).ok());
  supervisor.Tick();
  EXPECT_THAT(observer_.events, ElementsAre("started 1 103 (restart 1)",
                                            "replacing 1 101 (restart)"));
}

TEST_F(SupervisorEventsTest, AHungWorkerIsToldOnceNotAgainAtItsExit) {
  options_.hung_tolerance = absl::Seconds(3);
  Supervisor& supervisor = StartObserved();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  observer_.events.clear();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    supervisor.Heartbeat(launcher_.tokens_[101], {});
    supervisor.Tick();
  }
  supervisor.ProcessExited(100, Killed(SIGKILL));
  EXPECT_THAT(observer_.events,
              ElementsAre("hung 0 100 (hung: no heartbeat for 3s)"));
  EXPECT_EQ(observer_.beats.size(), 5u);
  EXPECT_EQ(observer_.beats.front(), "1 default 101 current");
}

TEST_F(SupervisorEventsTest, AGivenUpSlotAndAStartTimeoutAreTold) {
  options_.crash_loop_limit = 2;
  Supervisor& supervisor = StartObserved();
  observer_.events.clear();
  supervisor.ProcessExited(100, Exited(3));
  supervisor.Tick();  // restarted at once: the first failure
  supervisor.ProcessExited(102, Exited(3));
  EXPECT_THAT(observer_.events,
              ElementsAre("crashed 0 100 (exit 3)", "started 0 102 (restart 1)",
                          "crashed 0 102 (exit 3)",
                          "gave_up 0 0 (2 failures in a row, last: exit 3)"));
  observer_.events.clear();
  clock_.Advance(options_.start_timeout);
  supervisor.Tick();  // 101 never got ready
  EXPECT_THAT(observer_.events,
              ElementsAre("start_timeout 1 101 (not ready after 5s)"));
}

TEST_F(SupervisorEventsTest, ASuccessorsBeatsAreNotTheSlotsCurrentOnes) {
  Supervisor& supervisor = StartObserved();
  FakeChannel a, b, c;
  MakeReady(100, &a);
  MakeReady(101, &b);
  ASSERT_TRUE(supervisor.Recycle(100, "").ok());
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[102], &c).ok());
  supervisor.Heartbeat(launcher_.tokens_[102], {});
  supervisor.Heartbeat(launcher_.tokens_[100], {});
  EXPECT_THAT(observer_.beats, ElementsAre("0 default 102 not current",
                                           "0 default 100 current"));
}

}  // namespace
}  // namespace cluster2
