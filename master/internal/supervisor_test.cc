#include "master/internal/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "common/fake_clock.h"
#include "gtest/gtest.h"
#include "master/internal/supervisor_fakes.h"
#include "master/internal/supervisor_test_fixture.h"

namespace cluster2 {
namespace {

TEST_F(SupervisorTest, StartsOneProcessPerSlotWithItsOwnToken) {
  Supervisor& supervisor = Start();
  ASSERT_EQ(launcher_.launched_.size(), 2u);
  EXPECT_EQ(launcher_.ids_[100], "0");
  EXPECT_EQ(launcher_.ids_[101], "1");
  EXPECT_NE(launcher_.tokens_[100], launcher_.tokens_[101]);
  std::vector<WorkerSnapshot> workers = supervisor.Workers();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].state, WorkerState::kStarting);
  EXPECT_FALSE(supervisor.AllReady());
}

TEST_F(SupervisorTest, StartFailsWithoutSpawningIfTheCommandCannotRun) {
  options_.groups[0].command = {"/no/such/worker"};
  Supervisor supervisor(options_, &launcher_, &clock_);
  EXPECT_EQ(supervisor.Start().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(launcher_.launched_.empty());
}

TEST_F(SupervisorTest, AttachWelcomesAndReadyCountsOnlyWhenAllAreReady) {
  Supervisor& supervisor = Start();
  FakeChannel first, second;
  auto attached = supervisor.Attach(launcher_.tokens_[101], &first);
  ASSERT_TRUE(attached.ok());
  EXPECT_EQ(attached->id, 1u);
  EXPECT_EQ(attached->pid, 101);
  EXPECT_EQ(first.messages_, std::vector<std::string>{"welcome 500ms"});
  supervisor.Ready(launcher_.tokens_[101]);
  EXPECT_EQ(Slot(1).state, WorkerState::kReady);
  EXPECT_TRUE(Slot(1).attached);
  EXPECT_FALSE(supervisor.AllReady());
  MakeReady(100, &second);
  EXPECT_TRUE(supervisor.AllReady());
}

TEST_F(SupervisorTest, AttachRefusesUnknownTokensAndSecondSessions) {
  Supervisor& supervisor = Start();
  FakeChannel channel, again;
  EXPECT_EQ(supervisor.Attach("forged", &channel).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[100], &channel).ok());
  EXPECT_EQ(supervisor.Attach(launcher_.tokens_[100], &again).status().code(),
            absl::StatusCode::kFailedPrecondition);
  supervisor.Detach(launcher_.tokens_[100]);
  EXPECT_FALSE(Slot(0).attached);
  EXPECT_TRUE(supervisor.Attach(launcher_.tokens_[100], &again).ok());
}

TEST_F(SupervisorTest, HeartbeatsAreKeptWithTheirArrivalTime) {
  Supervisor& supervisor = Start();
  HeartbeatFigures figures;
  figures.rss_bytes = 12345;
  figures.requests_total = 7;
  clock_.Advance(absl::Seconds(1));
  supervisor.Heartbeat(launcher_.tokens_[100], figures);
  WorkerSnapshot worker = Slot(0);
  ASSERT_TRUE(worker.heartbeat.has_value());
  EXPECT_EQ(worker.heartbeat->rss_bytes, 12345u);
  EXPECT_EQ(worker.heartbeat->requests_total, 7u);
  EXPECT_EQ(*worker.heartbeat_at, clock_.Now());
}

TEST_F(SupervisorTest,
       AWorkerThatDiesAfterAStableRunIsReplacedAtOnceInItsSlot) {
  Supervisor& supervisor = Start();
  FakeChannel channel;
  MakeReady(101, &channel);
  clock_.Advance(absl::Minutes(5));
  supervisor.ProcessExited(101, Killed(SIGKILL));
  supervisor.Tick();
  ASSERT_EQ(launcher_.launched_.size(), 3u);
  pid_t replacement = launcher_.launched_.back();
  EXPECT_EQ(launcher_.ids_[replacement], "1");
  WorkerSnapshot worker = Slot(1);
  EXPECT_EQ(worker.pid, replacement);
  EXPECT_EQ(worker.state, WorkerState::kStarting);
  EXPECT_EQ(worker.restarts, 1u);
  EXPECT_EQ(worker.last_exit, "signal 9 (Killed)");
  EXPECT_EQ(Slot(0).pid, 100) << "the other slot is untouched";
}

TEST_F(SupervisorTest, ACrashLoopBacksOffExponentiallyUpToTheMaximum) {
  options_.crash_loop_limit = 0;
  Supervisor& supervisor = Start();
  std::vector<absl::Duration> delays;
  pid_t pid = 100;
  for (int crash = 0; crash < 6; ++crash) {
    supervisor.ProcessExited(pid, Exited(1));
    absl::Time crashed = clock_.Now();
    size_t before = launcher_.launched_.size();
    // Step the clock 10 ms at a time until the slot is respawned.
    while (launcher_.launched_.size() == before) {
      supervisor.Tick();
      if (launcher_.launched_.size() == before)
        clock_.Advance(absl::Milliseconds(10));
    }
    delays.push_back(clock_.Now() - crashed);
    pid = launcher_.launched_.back();
  }
  std::vector<absl::Duration> expected = {
      absl::ZeroDuration(),    absl::Milliseconds(100), absl::Milliseconds(200),
      absl::Milliseconds(400), absl::Milliseconds(800), absl::Seconds(1)};
  EXPECT_EQ(delays, expected);
  EXPECT_EQ(Slot(0).restarts, 6u);
  EXPECT_EQ(Slot(0).last_exit, "exit 1");

  // A stable run resets the backoff.
  clock_.Advance(absl::Seconds(11));
  supervisor.ProcessExited(pid, Exited(1));
  supervisor.Tick();
  EXPECT_EQ(Slot(0).pid, launcher_.launched_.back());
  EXPECT_NE(launcher_.launched_.back(), pid);
}

TEST_F(SupervisorTest, TickReportsWhenTheNextRespawnIsDue) {
  Supervisor& supervisor = Start();
  supervisor.ProcessExited(100, Exited(1));
  supervisor.Tick();  // immediate first restart
  pid_t second = launcher_.launched_.back();
  supervisor.ProcessExited(second, Exited(1));
  EXPECT_EQ(supervisor.Tick(), clock_.Now() + absl::Milliseconds(100));
}

TEST_F(SupervisorTest, AFailedSpawnIsRetriedWithBackoff) {
  Supervisor& supervisor = Start();
  launcher_.fail_next_ = true;
  clock_.Advance(absl::Minutes(1));
  supervisor.ProcessExited(100, Exited(2));
  supervisor.Tick();  // the immediate restart fails
  EXPECT_EQ(launcher_.launched_.size(), 2u);
  clock_.Advance(absl::Milliseconds(100));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 3u);
  EXPECT_EQ(Slot(0).pid, launcher_.launched_.back());
}

TEST_F(SupervisorTest, AWorkerNotReadyByTheStartDeadlineIsKilledAndReplaced) {
  Supervisor& supervisor = Start();
  FakeChannel channel;
  MakeReady(101, &channel);
  clock_.Advance(absl::Seconds(5));
  supervisor.Tick();
  ASSERT_EQ(launcher_.signals_.size(), 1u);
  EXPECT_EQ(launcher_.signals_[0], std::make_pair(pid_t{100}, SIGKILL));
  supervisor.ProcessExited(100, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_EQ(Slot(0).pid, launcher_.launched_.back());
  EXPECT_EQ(Slot(1).pid, 101);
}

TEST_F(SupervisorTest, GracefulStopDrainsAttachedWorkersAndSignalsTheOthers) {
  Supervisor& supervisor = Start();
  FakeChannel channel;
  MakeReady(100, &channel);
  supervisor.Stop(/*fast=*/false, absl::Seconds(3), "SIGTERM");
  EXPECT_EQ(channel.messages_.back(), "drain 3s SIGTERM");
  ASSERT_EQ(launcher_.signals_.size(), 1u);
  EXPECT_EQ(launcher_.signals_[0], std::make_pair(pid_t{101}, SIGTERM));
  EXPECT_EQ(Slot(0).state, WorkerState::kDraining);
  EXPECT_TRUE(supervisor.Stopping());
  EXPECT_FALSE(supervisor.Stopped());

  // Worker 0 drains in time; worker 1 outlives the grace and is killed.
  supervisor.ProcessExited(100, Exited(0));
  clock_.Advance(absl::Milliseconds(2999));
  supervisor.Tick();
  EXPECT_EQ(launcher_.signals_.size(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  supervisor.Tick();
  ASSERT_EQ(launcher_.signals_.size(), 2u);
  EXPECT_EQ(launcher_.signals_[1], std::make_pair(pid_t{101}, SIGKILL));
  supervisor.ProcessExited(101, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_TRUE(supervisor.Stopped());
  EXPECT_EQ(launcher_.launched_.size(), 2u)
      << "nothing may be restarted while stopping";
}

TEST_F(SupervisorTest, AWorkerAttachingDuringStopIsToldToDrainAtOnce) {
  Supervisor& supervisor = Start();
  supervisor.Stop(/*fast=*/false, absl::Seconds(10), "SIGTERM");
  clock_.Advance(absl::Seconds(4));
  FakeChannel channel;
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[100], &channel).ok());
  EXPECT_EQ(channel.messages_,
            (std::vector<std::string>{"welcome 500ms", "drain 6s SIGTERM"}));
}

TEST_F(SupervisorTest, FastStopKillsEveryWorker) {
  Supervisor& supervisor = Start();
  supervisor.Stop(/*fast=*/true, absl::ZeroDuration(), "SIGQUIT");
  supervisor.Tick();
  ASSERT_EQ(launcher_.signals_.size(), 2u);
  EXPECT_EQ(launcher_.signals_[0].second, SIGKILL);
  EXPECT_EQ(launcher_.signals_[1].second, SIGKILL);
}

TEST_F(SupervisorTest, UnknownPidsAndTokensAreIgnored) {
  Supervisor& supervisor = Start();
  supervisor.ProcessExited(4242, Exited(0));
  supervisor.Ready("nope");
  supervisor.Heartbeat("nope", {});
  supervisor.Detach("nope");
  EXPECT_EQ(supervisor.Workers().size(), 2u);
  EXPECT_EQ(supervisor.WorkerByPid(4242).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(supervisor.WorkerByPid(100)->id, 0u);
}

// A policy that flags the workers listed in `flag`.
class FlagPolicy final : public RecyclePolicy {
 public:
  std::optional<std::string> Evaluate(const WorkerView& worker) override {
    if (flag.count(worker.pid) == 0) return std::nullopt;
    return "flagged";
  }
  void Forget(pid_t pid) override { forgotten.push_back(pid); }
  std::set<pid_t> flag;
  std::vector<pid_t> forgotten;
};

TEST_F(SupervisorTest,
       ReplacementDrainsTheOldWorkerOnlyOnceTheSuccessorIsReady) {
  Supervisor& supervisor = Start();
  FakeChannel old_channel, new_channel, other;
  MakeReady(100, &old_channel);
  MakeReady(101, &other);
  ASSERT_TRUE(supervisor.Recycle(100, "test").ok());
  ASSERT_EQ(launcher_.launched_.size(), 3u);
  pid_t successor = launcher_.launched_.back();
  EXPECT_EQ(launcher_.ids_[successor], "0")
      << "the successor takes the same slot";
  EXPECT_EQ(Slot(0).pid, 100) << "the old worker keeps its slot until then";
  EXPECT_EQ(Slot(0).state, WorkerState::kReady);
  EXPECT_EQ(old_channel.messages_.size(), 1u)
      << "no drain before the successor is ready";
  EXPECT_EQ(supervisor.Workers().size(),
            3u);  // 2 slots + the starting successor
  EXPECT_EQ(supervisor.Recycle(100, "again").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(supervisor.Recycle(successor, "x").code(),
            absl::StatusCode::kFailedPrecondition);

  MakeReady(successor, &new_channel);
  EXPECT_EQ(Slot(0).pid, successor);
  EXPECT_EQ(old_channel.messages_.back(), "drain 1m replaced: test");
  EXPECT_EQ(supervisor.WorkerByPid(100)->state, WorkerState::kDraining);
  supervisor.ProcessExited(100, Exited(0));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 3u)
      << "a drained worker is not respawned";
  EXPECT_EQ(Slot(0).pid, successor);
}

TEST_F(SupervisorTest,
       AFailedSuccessorLeavesTheOldWorkerServingAndStopsTheRollingRestart) {
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  auto pids = supervisor.Restart(0, 1);
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, (std::vector<pid_t>{100, 101}));
  EXPECT_EQ(supervisor.Restart(0, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  supervisor.Tick();
  ASSERT_EQ(launcher_.launched_.size(), 3u) << "one replacement at a time";
  pid_t successor = launcher_.launched_.back();
  supervisor.ProcessExited(successor, Exited(1));
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    supervisor.Tick();
  }
  EXPECT_EQ(launcher_.launched_.size(), 3u) << "the rolling restart went on";
  EXPECT_EQ(Slot(0).pid, 100);
  EXPECT_EQ(Slot(0).state, WorkerState::kReady);
  EXPECT_EQ(Slot(1).pid, 101);
  EXPECT_TRUE(supervisor.Restart(0, 1).ok()) << "a new restart may begin";
}

TEST_F(SupervisorTest, RollingRestartReplacesEverySlotInTurn) {
  options_.groups[0].workers = 3;
  Supervisor& supervisor = Start();
  std::vector<std::unique_ptr<FakeChannel>> channels;
  for (pid_t pid : {100, 101, 102}) {
    channels.push_back(std::make_unique<FakeChannel>());
    MakeReady(pid, channels.back().get());
  }
  ASSERT_TRUE(supervisor.Restart(0, 0).ok());
  std::set<pid_t> old = {100, 101, 102};
  for (int round = 0; round < 3; ++round) {
    supervisor.Tick();
    ASSERT_EQ(launcher_.launched_.size(), 4u + round);
    pid_t successor = launcher_.launched_.back();
    // Capacity never drops: every slot has a ready worker throughout.
    for (unsigned id = 0; id < 3; ++id)
      EXPECT_EQ(Slot(id).state, WorkerState::kReady);
    supervisor.Tick();
    EXPECT_EQ(launcher_.launched_.size(), 4u + round)
        << "next one only after this one";
    channels.push_back(std::make_unique<FakeChannel>());
    MakeReady(successor, channels.back().get());
  }
  for (unsigned id = 0; id < 3; ++id) EXPECT_EQ(old.count(Slot(id).pid), 0u);
}

TEST_F(SupervisorTest, SurgeReplacesSeveralAtOnce) {
  options_.groups[0].workers = 3;
  Supervisor& supervisor = Start();
  ASSERT_TRUE(supervisor.Restart(0, 2).ok());
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 5u);
}

TEST_F(SupervisorTest, IfTheOldWorkerDiesTheStartingSuccessorTakesTheSlot) {
  Supervisor& supervisor = Start();
  FakeChannel channel;
  MakeReady(100, &channel);
  ASSERT_TRUE(supervisor.Recycle(100, "x").ok());
  pid_t successor = launcher_.launched_.back();
  supervisor.ProcessExited(100, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_EQ(Slot(0).pid, successor);
  EXPECT_EQ(launcher_.launched_.size(), 3u) << "no extra respawn";
}

TEST_F(SupervisorTest, ACrashLoopGivesTheSlotUpUntilRestart) {
  options_.crash_loop_limit = 3;
  Supervisor& supervisor = Start();
  pid_t pid = 100;
  for (int crash = 0; crash < 3; ++crash) {
    supervisor.ProcessExited(pid, Exited(3));
    clock_.Advance(absl::Seconds(1));
    supervisor.Tick();
    pid = launcher_.launched_.back();
  }
  EXPECT_EQ(Slot(0).state, WorkerState::kFailed);
  EXPECT_EQ(Slot(0).pid, 0);
  EXPECT_EQ(Slot(0).last_exit, "exit 3");
  size_t launched = launcher_.launched_.size();
  clock_.Advance(absl::Minutes(5));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), launched)
      << "a given-up slot is not respawned";
  ASSERT_TRUE(supervisor.Restart(0, 0).ok());
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), launched + 2)
      << "respawn + replacement of slot 1";
  EXPECT_EQ(Slot(0).state, WorkerState::kStarting);
}

TEST_F(SupervisorTest, AWorkerWithoutHeartbeatsIsHungKilledAndReplaced) {
  options_.hung_tolerance = absl::Seconds(3);
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    supervisor.Heartbeat(launcher_.tokens_[101], {});
    supervisor.Tick();
  }
  ASSERT_EQ(launcher_.signals_.size(), 1u);
  EXPECT_EQ(launcher_.signals_[0], std::make_pair(pid_t{100}, SIGKILL));
  EXPECT_EQ(supervisor.WorkerByPid(100)->reason, "hung: no heartbeat for 3s");
  supervisor.ProcessExited(100, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_EQ(Slot(0).pid, launcher_.launched_.back());
}

TEST_F(SupervisorTest, ScaleUpStartsSlotsAndScaleDownDrainsTheHighest) {
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  EXPECT_EQ(*supervisor.Scale(4), 2u);
  EXPECT_EQ(supervisor.desired_workers(), 4u);
  EXPECT_EQ(launcher_.ids_[102], "2");
  EXPECT_EQ(launcher_.ids_[103], "3");
  EXPECT_EQ(*supervisor.Scale(1), 4u);
  EXPECT_EQ(b.messages_.back(), "drain 1m scale down");
  std::vector<std::pair<pid_t, int>> expected = {{102, SIGTERM},
                                                 {103, SIGTERM}};
  EXPECT_EQ(launcher_.signals_, expected) << "unattached workers get SIGTERM";
  for (pid_t pid : {101, 102, 103}) supervisor.ProcessExited(pid, Exited(0));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), 4u)
      << "retired slots are not respawned";
  ASSERT_EQ(supervisor.Workers().size(), 1u);
  EXPECT_EQ(*supervisor.Scale(2), 1u);
  EXPECT_EQ(launcher_.ids_[launcher_.launched_.back()], "1")
      << "slot 1 comes back";
  EXPECT_EQ(supervisor.Scale(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(supervisor.Scale(5000).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SupervisorTest, PoliciesRecycleWithinTheBudget) {
  auto policy = std::make_shared<FlagPolicy>();
  options_.policies = {policy};
  options_.recycle_budget = 1;
  options_.recycle_window = absl::Minutes(1);
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  policy->flag = {100, 101};
  supervisor.Heartbeat(launcher_.tokens_[100], {});
  ASSERT_EQ(launcher_.launched_.size(), 3u);
  EXPECT_EQ(supervisor.WorkerByPid(launcher_.launched_.back())->reason,
            "replacing pid 100: recycle: flagged");
  supervisor.Heartbeat(launcher_.tokens_[101], {});
  EXPECT_EQ(launcher_.launched_.size(), 3u) << "over budget: deferred";
  clock_.Advance(absl::Minutes(1));
  supervisor.Heartbeat(launcher_.tokens_[101], {});
  EXPECT_EQ(launcher_.launched_.size(), 4u) << "a new window, a new recycle";
  supervisor.ProcessExited(100, Exited(0));
  EXPECT_EQ(policy->forgotten, std::vector<pid_t>{100});
}

TEST_F(SupervisorTest, PauseAndResumeChangeStateWhenTheWorkerConfirms) {
  Supervisor& supervisor = Start();
  FakeChannel channel;
  EXPECT_EQ(supervisor.Pause(100).code(), absl::StatusCode::kFailedPrecondition)
      << "not ready";
  MakeReady(100, &channel);
  EXPECT_EQ(supervisor.Resume(100).code(),
            absl::StatusCode::kFailedPrecondition)
      << "not paused";
  ASSERT_TRUE(supervisor.Pause(100).ok());
  EXPECT_EQ(channel.messages_.back(), "pause");
  EXPECT_EQ(Slot(0).state, WorkerState::kReady) << "until the worker confirms";
  EXPECT_FALSE(supervisor.AwaitState(100, WorkerState::kPaused, absl::Now()));
  supervisor.Acknowledge(launcher_.tokens_[100], /*paused=*/true);
  EXPECT_EQ(Slot(0).state, WorkerState::kPaused);
  EXPECT_TRUE(supervisor.AwaitState(100, WorkerState::kPaused, absl::Now()));
  ASSERT_TRUE(supervisor.Resume(100).ok());
  EXPECT_EQ(channel.messages_.back(), "resume");
  supervisor.Acknowledge(launcher_.tokens_[100], /*paused=*/false);
  EXPECT_EQ(Slot(0).state, WorkerState::kReady);
  EXPECT_EQ(supervisor.Pause(4242).code(), absl::StatusCode::kNotFound);
  supervisor.Detach(launcher_.tokens_[100]);
  EXPECT_EQ(supervisor.Pause(100).code(), absl::StatusCode::kFailedPrecondition)
      << "no session";
}

TEST_F(SupervisorTest,
       WithOneSocketPerSlotScaleMayGrowButNotShrinkBelowTheSockets) {
  options_.listen_fds = {7, 8};
  Supervisor& supervisor = Start();
  EXPECT_EQ(*supervisor.Scale(3), 2u);
  EXPECT_EQ(*supervisor.Scale(2), 3u);
  EXPECT_EQ(supervisor.Scale(1).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SupervisorTest, PauseIsRefusedWithOneSocketPerSlot) {
  options_.pause_supported = false;
  Supervisor& supervisor = Start();
  FakeChannel channel;
  MakeReady(100, &channel);
  EXPECT_EQ(supervisor.Pause(100).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SupervisorTest, WithSlotSocketsOnlyReadyWorkersGetConnections) {
  FakeSlotSockets sockets;
  options_.slot_sockets = &sockets;
  options_.listen_fds = {7};  // ignored: each worker gets its id's socket
  Supervisor& supervisor = Start();
  EXPECT_EQ(launcher_.specs_[100].listen_fd, 1000);
  EXPECT_EQ(launcher_.specs_[101].listen_fd, 1001);
  FakeChannel a, b;
  MakeReady(100, &a);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0}));
  MakeReady(101, &b);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}));
  // A crashed worker's slot gets nothing until its replacement is ready.
  supervisor.ProcessExited(101, Killed(SIGKILL));
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0}));
  supervisor.Tick();
  ASSERT_EQ(launcher_.launched_.back(), 102);
  EXPECT_EQ(launcher_.specs_[102].listen_fd, 1001) << "the slot's socket";
  FakeChannel c;
  MakeReady(102, &c);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}));
  // A replacement takes over the slot without a gap.
  ASSERT_TRUE(supervisor.Recycle(100, "test").ok());
  FakeChannel d;
  sockets.log_ = &a.messages_;
  MakeReady(103, &d);
  EXPECT_EQ(a.messages_.back(), "drain 1m replaced: test");
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}));
}

TEST_F(SupervisorTest, WithSlotSocketsPauseRoutesAwayBeforeTheWorkerStops) {
  FakeSlotSockets sockets;
  options_.slot_sockets = &sockets;
  options_.pause_supported = false;  // not needed with slot sockets
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  sockets.log_ = &a.messages_;
  ASSERT_TRUE(supervisor.Pause(100).ok());
  EXPECT_EQ(a.messages_,
            (std::vector<std::string>{"welcome 500ms", "route 1", "pause"}));
  supervisor.Acknowledge(launcher_.tokens_[100], /*paused=*/true);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{1}));
  ASSERT_TRUE(supervisor.Resume(100).ok());
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{1}))
      << "until the worker accepts again";
  supervisor.Acknowledge(launcher_.tokens_[100], /*paused=*/false);
  EXPECT_EQ(a.messages_.back(), "route 0,1");
  // A worker that never confirms a pause is routed to again.
  ASSERT_TRUE(supervisor.Pause(101).ok());
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0}));
  clock_.Advance(absl::Seconds(11));
  supervisor.Tick();
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}));
}

TEST_F(SupervisorTest, WithSlotSocketsScaleDownRoutesAwayBeforeTheDrain) {
  FakeSlotSockets sockets;
  options_.slot_sockets = &sockets;
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  EXPECT_EQ(*supervisor.Scale(3), 2u);
  EXPECT_EQ(launcher_.specs_[102].listen_fd, 1002);
  FakeChannel c;
  MakeReady(102, &c);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1, 2}));
  sockets.log_ = &b.messages_;
  EXPECT_EQ(*supervisor.Scale(1), 3u) << "below the initial sockets too";
  EXPECT_EQ(b.messages_, (std::vector<std::string>{"welcome 500ms", "route 0",
                                                   "drain 1m scale down"}));
  supervisor.ProcessExited(101, Exited(0));
  supervisor.ProcessExited(102, Exited(0));
  EXPECT_EQ(*supervisor.Scale(2), 1u);
  EXPECT_EQ(launcher_.specs_[launcher_.launched_.back()].listen_fd, 1001)
      << "slot 1 comes back on its socket";
}

TEST_F(SupervisorTest, WithSlotSocketsAFreshDebugWorkerServesOnceReady) {
  FakeSlotSockets sockets;
  options_.slot_sockets = &sockets;
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  absl::StatusOr<pid_t> fresh = supervisor.StartDebugWorker({"gdb"}, "test");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(launcher_.specs_[*fresh].listen_fd, 1002);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}));
  FakeChannel d;
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[*fresh], &d).ok());
  supervisor.Ready(launcher_.tokens_[*fresh]);
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1, 2}));
}

TEST_F(SupervisorTest, RestartAndRecycleReportUnknownPids) {
  Supervisor& supervisor = Start();
  EXPECT_EQ(supervisor.Restart(4242, 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(supervisor.Recycle(4242, "").code(), absl::StatusCode::kNotFound);
  supervisor.Stop(false, absl::Seconds(1), "test");
  EXPECT_EQ(supervisor.Restart(0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(supervisor.Scale(3).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SupervisorTest, ADebuggedWorkerLeavesItsSlotForAReplacement) {
  options_.hung_tolerance = absl::Seconds(3);
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  // Only a paused worker can be debugged.
  EXPECT_EQ(supervisor.BeginDebug(100, "debug").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(supervisor.BeginDebug(999, "debug").code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(supervisor.Pause(100).ok());
  supervisor.Acknowledge(launcher_.tokens_[100], true);
  ASSERT_TRUE(supervisor.BeginDebug(100, "debug session").ok());
  const pid_t replacement = launcher_.launched_.back();
  EXPECT_EQ(Slot(0).pid, replacement);
  EXPECT_EQ(launcher_.ids_[replacement], "0");
  EXPECT_EQ(supervisor.WorkerByPid(100)->state, WorkerState::kDebugging);
  EXPECT_EQ(supervisor.Workers().size(), 3u);  // two slots and the session
  // Never recycled, hang-killed or replaced.
  EXPECT_EQ(supervisor.Recycle(100, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  clock_.Advance(absl::Minutes(5));
  supervisor.Tick();
  for (const auto& [pid, signal] : launcher_.signals_) EXPECT_NE(pid, 100);
  // Ending kills it; its exit does not touch the slot.
  ASSERT_TRUE(supervisor.EndDebug(100).ok());
  EXPECT_TRUE(launcher_.Signalled(100, SIGKILL));
  size_t launched = launcher_.launched_.size();
  supervisor.ProcessExited(100, Killed(SIGKILL));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), launched);
  EXPECT_EQ(Slot(0).pid, replacement);
  EXPECT_EQ(supervisor.EndDebug(100).code(), absl::StatusCode::kNotFound);
}

TEST_F(SupervisorTest, AFreshDebugWorkerRunsOutsideTheSlots) {
  Supervisor& supervisor = Start();
  absl::StatusOr<pid_t> pid =
      supervisor.StartDebugWorker({"gdbserver", "127.0.0.1:1"}, "fresh");
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(launcher_.specs_[*pid].argv,
            (std::vector<std::string>{"gdbserver", "127.0.0.1:1", "/bin/sh"}));
  EXPECT_EQ(launcher_.ids_[*pid], "2");
  bool under_debugger = false;
  for (const std::string& entry : launcher_.specs_[*pid].env)
    under_debugger |= entry == "CLUSTER2_UNDER_DEBUGGER=1";
  EXPECT_TRUE(under_debugger);
  // No start deadline while it waits for the debugger.
  clock_.Advance(absl::Minutes(5));
  supervisor.Tick();
  EXPECT_FALSE(launcher_.Signalled(*pid, SIGKILL));
  FakeChannel channel;
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[*pid], &channel).ok());
  supervisor.Ready(launcher_.tokens_[*pid]);
  WorkerSnapshot fresh = *supervisor.WorkerByPid(*pid);
  EXPECT_EQ(fresh.state, WorkerState::kDebugging);
  EXPECT_TRUE(fresh.ready_at.has_value());
  EXPECT_EQ(fresh.id, 2u);
  ASSERT_TRUE(supervisor.OpenDebugger(*pid, "debugpy", "127.0.0.1", 1).ok());
  EXPECT_EQ(channel.messages_.back(), "open debugpy 127.0.0.1:1");
  size_t launched = launcher_.launched_.size();
  supervisor.ProcessExited(*pid, Exited(0));
  supervisor.Tick();
  EXPECT_EQ(launcher_.launched_.size(), launched);  // not restarted
}

TEST_F(SupervisorTest, ExcusedHeartbeatsPostponeTheHungCheck) {
  options_.hung_tolerance = absl::Seconds(3);
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  supervisor.ExcuseHeartbeats(100, clock_.Now() + absl::Seconds(10));
  clock_.Advance(absl::Seconds(12));
  supervisor.Heartbeat(launcher_.tokens_[101], {});
  supervisor.Tick();
  EXPECT_FALSE(launcher_.Signalled(100, SIGKILL));
  clock_.Advance(absl::Seconds(2));
  supervisor.Tick();
  EXPECT_TRUE(launcher_.Signalled(100, SIGKILL));
}

TEST_F(SupervisorTest, AWorkerWhoseSessionEndsIsTakenOutOfServiceAndReplaced) {
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  supervisor.Detach(launcher_.tokens_[100]);
  EXPECT_EQ(Slot(0).state, WorkerState::kDraining);
  EXPECT_EQ(Slot(0).reason, "session ended");
  EXPECT_TRUE(launcher_.Signalled(100, SIGTERM));
  supervisor.ProcessExited(100, Exited(0));
  supervisor.Tick();
  EXPECT_EQ(launcher_.ids_[launcher_.launched_.back()], "0")
      << "its slot is restarted";
  // A drained worker closing its session is the normal end: nothing more.
  supervisor.Stop(false, absl::Seconds(5), "test");
  supervisor.Detach(launcher_.tokens_[101]);
  EXPECT_FALSE(launcher_.Signalled(101, SIGTERM));
}

TEST_F(SupervisorTest, TheHungCheckCountsFromReadyNotFromABeatBeforeIt) {
  options_.hung_tolerance = absl::Seconds(3);
  Supervisor& supervisor = Start();
  FakeChannel a;
  ASSERT_TRUE(supervisor.Attach(launcher_.tokens_[100], &a).ok());
  supervisor.Heartbeat(launcher_.tokens_[100], {});  // while starting
  clock_.Advance(absl::Seconds(5));
  supervisor.Ready(launcher_.tokens_[100]);
  supervisor.Tick();
  EXPECT_EQ(Slot(0).state, WorkerState::kReady);
  clock_.Advance(absl::Seconds(4));
  supervisor.Tick();
  EXPECT_EQ(Slot(0).state, WorkerState::kDraining) << "hung 4 s after ready";
}

TEST_F(SupervisorTest, AWorkerThatRefusesAPauseServesOnAndThePauseFailsAtOnce) {
  FakeSlotSockets sockets;
  options_.slot_sockets = &sockets;
  Supervisor& supervisor = Start();
  FakeChannel a, b;
  MakeReady(100, &a);
  MakeReady(101, &b);
  ASSERT_TRUE(supervisor.Pause(100).ok());
  EXPECT_EQ(sockets.routed_, std::vector<unsigned>{1});
  supervisor.RefusePause(launcher_.tokens_[100], "cannot stop accepting");
  EXPECT_EQ(sockets.routed_, (std::vector<unsigned>{0, 1}))
      << "it gets connections again";
  absl::Status paused = supervisor.AwaitPause(100, absl::InfiniteFuture());
  EXPECT_EQ(paused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(paused.message(),
            "worker pid 100 cannot pause: cannot stop accepting");
  EXPECT_EQ(Slot(0).state, WorkerState::kReady);
  // A later pause that is confirmed clears the refusal.
  ASSERT_TRUE(supervisor.Pause(100).ok());
  supervisor.Acknowledge(launcher_.tokens_[100], /*paused=*/true);
  EXPECT_TRUE(supervisor.AwaitPause(100, absl::InfiniteFuture()).ok());
}

}  // namespace
}  // namespace cluster2
