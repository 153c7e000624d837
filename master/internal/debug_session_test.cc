#include "master/internal/debug_session.h"

#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/fake_clock.h"
#include "gtest/gtest.h"
#include "master/internal/supervisor.h"
#include "master/internal/supervisor_fakes.h"

namespace cluster2 {
namespace {

constexpr char kGdbDump[] =
    "[New LWP 11]\n"
    "0x00007f in poll () from /lib/libc.so.6\n"
    "\n"
    "Thread 2 (Thread 0x7f12 (LWP 11) \"c2-heartbeat\"):\n"
    "#0  0x00007f in clock_nanosleep () from /lib/libc.so.6\n"
    "#1  0x000055 in cluster2::Worker::HeartbeatLoop() ()\n"
    "\n"
    "Thread 1 (Thread 0x7f10 (LWP 10) \"hello_worker\"):\n"
    "#0  0x00007f in poll () from /lib/libc.so.6\n"
    "#1  0x000055 in main ()\n"
    "[Inferior 1 (process 10) detached]\n";

class DebugSessionTest : public ::testing::Test {
 protected:
  DebugSessionTest() {
    SupervisorOptions options;
    options.groups = {{"default", 2, {"/bin/sh"}, {}, ""}};
    supervisor_ = std::make_unique<Supervisor>(options, &launcher_, &clock_);
    EXPECT_TRUE(supervisor_->Start().ok());
    for (pid_t pid : {100, 101}) {
      channels_[pid - 100].on_pause_ = [this, pid] {
        // The worker confirms from its own thread, then reports an idle
        // heartbeat.
        acks_.emplace_back([this, pid] {
          supervisor_->Acknowledge(launcher_.tokens_[pid], true);
          supervisor_->Heartbeat(launcher_.tokens_[pid], HeartbeatFigures{});
        });
      };
      SessionHello hello;
      hello.pid = pid;
      if (pid == 101) hello.debug_protocols = {"debugpy"};
      EXPECT_TRUE(
          supervisor_
              ->Attach(launcher_.tokens_[pid], &channels_[pid - 100], hello)
              .ok());
      supervisor_->Ready(launcher_.tokens_[pid]);
    }
    DebugOptions debug;
    debug.port = 8082;
    debug.open_timeout = absl::Seconds(5);
    DebugProbes probes;
    probes.listening = [this](const std::string&, uint16_t) {
      return listening_.load();
    };
    probes.executable = [](pid_t pid) {
      return "/bin/worker-" + std::to_string(pid);
    };
    probes.child = [](pid_t pid) { return pid + 1000; };
    debug_ = std::make_unique<DebugSession>(debug, probes, supervisor_.get(),
                                            &launcher_, &clock_);
  }
  ~DebugSessionTest() override {
    for (std::thread& thread : acks_) thread.join();
  }

  FakeClock clock_;
  FakeLauncher launcher_;
  FakeChannel channels_[2];
  std::vector<std::thread> acks_;
  std::atomic<bool> listening_{true};  // gdbserver listens at once
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<DebugSession> debug_;
};

TEST_F(DebugSessionTest, ParsesThreadsWithNamesAndFrames) {
  std::vector<ThreadStack> threads = ParseGdbThreads(kGdbDump);
  ASSERT_EQ(threads.size(), 2u);
  EXPECT_EQ(threads[0].number, 2u);
  EXPECT_EQ(threads[0].lwp, 11);
  EXPECT_EQ(threads[0].name, "c2-heartbeat");
  ASSERT_EQ(threads[0].frames.size(), 2u);
  EXPECT_EQ(threads[1].name, "hello_worker");
  EXPECT_NE(threads[1].frames[1].find("main"), std::string::npos);
}

TEST_F(DebugSessionTest, LiveSessionPausesReplacesAndAttachesGdbserver) {
  listening_ = false;  // the port is free until gdbserver listens
  std::thread listen([this] {
    // gdbserver starts listening once launched (pid 102 is the
    // replacement, 103 gdbserver).
    while (launcher_.launched_.size() < 4)
      absl::SleepFor(absl::Milliseconds(1));
    listening_ = true;
  });
  absl::StatusOr<DebugInfo> info = debug_->Open(100, "");
  listen.join();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->protocol, "gdb");
  EXPECT_EQ(info->address, "127.0.0.1:8082");
  EXPECT_EQ(info->executable, "/bin/worker-100");
  EXPECT_NE(info->Instructions().find(
                "gdb -ex 'target remote 127.0.0.1:8082' /bin/worker-100"),
            std::string::npos);
  EXPECT_EQ(channels_[0].messages_.back(), "pause");
  // Slot 0 has a replacement; pid 100 is debugging outside the slots.
  ASSERT_EQ(launcher_.launched_.size(), 4u);
  pid_t replacement = launcher_.launched_[2];
  pid_t gdbserver = launcher_.launched_[3];
  EXPECT_EQ(info->gdbserver_pid, gdbserver);
  EXPECT_EQ(launcher_.specs_[gdbserver].argv,
            (std::vector<std::string>{"gdbserver", "--attach", "127.0.0.1:8082",
                                      "100"}));
  EXPECT_EQ(supervisor_->WorkerByPid(replacement)->id, 0u);
  EXPECT_EQ(supervisor_->WorkerByPid(100)->state, WorkerState::kDebugging);

  // One session at a time, named in the refusal.
  absl::StatusOr<DebugInfo> second = debug_->Open(101, "gdb");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(
                "a debug session is open: pid 100 on 127.0.0.1:8082"),
            std::string::npos);
  EXPECT_EQ(debug_->OpenFresh().status().code(),
            absl::StatusCode::kFailedPrecondition);

  // gdbserver exits (the debugger detached): the worker is killed.
  debug_->ProcessExited(gdbserver);
  EXPECT_FALSE(debug_->Current().has_value());
  EXPECT_TRUE(launcher_.Signalled(100, SIGKILL));
  supervisor_->ProcessExited(100, SIGKILL);
  EXPECT_EQ(supervisor_->WorkerByPid(100).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(debug_->End().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DebugSessionTest, UnknownPidIsNotFoundAndLeavesNoSession) {
  EXPECT_EQ(debug_->Open(999, "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(debug_->Current().has_value());
}

TEST_F(DebugSessionTest, ProtocolMustBeOffered) {
  EXPECT_EQ(debug_->Open(100, "debugpy").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(channels_[0].messages_.back().rfind("welcome", 0) == 0);
}

TEST_F(DebugSessionTest, RuntimeDebuggerIsOpenedByTheWorker) {
  channels_[1].on_open_debugger_ = [this] {
    acks_.emplace_back(
        [this] { debug_->DebuggerOpened(101, "tcp://127.0.0.1:8082", ""); });
  };
  listening_ = false;
  absl::StatusOr<DebugInfo> info = debug_->Open(101, "");  // its first
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->protocol, "debugpy");
  EXPECT_EQ(info->url, "tcp://127.0.0.1:8082");
  EXPECT_EQ(info->gdbserver_pid, 0);
  EXPECT_EQ(channels_[1].messages_.back(), "open debugpy 127.0.0.1:8082");

  absl::StatusOr<DebugInfo> ended = debug_->End();
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->pid, 101);
  EXPECT_TRUE(launcher_.Signalled(101, SIGKILL));
}

TEST_F(DebugSessionTest, FreshWorkerRunsUnderThePrefixOutsideTheSlots) {
  listening_ = false;
  std::thread listen([this] {
    while (launcher_.launched_.size() < 3)
      absl::SleepFor(absl::Milliseconds(1));
    listening_ = true;
  });
  absl::StatusOr<DebugInfo> info = debug_->OpenFresh();
  listen.join();
  ASSERT_TRUE(info.ok()) << info.status();
  pid_t gdbserver = launcher_.launched_.back();
  EXPECT_EQ(
      launcher_.specs_[gdbserver].argv,
      (std::vector<std::string>{"gdbserver", "127.0.0.1:8082", "/bin/sh"}));
  EXPECT_EQ(launcher_.ids_[gdbserver], "2");  // past the slots
  EXPECT_TRUE(info->fresh);
  EXPECT_EQ(info->pid, gdbserver + 1000);  // gdbserver's child
  WorkerSnapshot worker = *supervisor_->WorkerByPid(gdbserver);
  EXPECT_EQ(worker.state, WorkerState::kDebugging);
  EXPECT_FALSE(worker.ready_at.has_value());
  // It is not counted and never hang-killed or timed out.
  clock_.Advance(absl::Minutes(10));
  supervisor_->Tick();
  EXPECT_FALSE(launcher_.Signalled(gdbserver, SIGKILL));

  ASSERT_TRUE(debug_->End().ok());
  EXPECT_TRUE(launcher_.Signalled(gdbserver, SIGKILL));
  EXPECT_TRUE(launcher_.Signalled(gdbserver + 1000, SIGKILL));
}

TEST_F(DebugSessionTest, PortInUseIsRefused) {
  // Something else listens on the port (listening_ stays true).
  EXPECT_EQ(debug_->OpenFresh().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(debug_->Current().has_value());
}

TEST_F(DebugSessionTest, StacksRunGdbAndParseItsOutput) {
  launcher_.output_ = kGdbDump;
  absl::StatusOr<StackDump> dump = debug_->Stacks(100);
  ASSERT_TRUE(dump.ok()) << dump.status();
  ASSERT_EQ(dump->threads.size(), 2u);
  pid_t gdb = launcher_.launched_.back();
  const std::vector<std::string>& argv = launcher_.specs_[gdb].argv;
  EXPECT_EQ(argv.front(), "gdb");
  EXPECT_EQ(argv.back(), "thread apply all bt");
  EXPECT_EQ(debug_->Stacks(999).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cluster2
