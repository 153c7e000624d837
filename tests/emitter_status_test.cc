// End-to-end emitter and status: a real master and 3 emitter_worker
// processes, driven through the Emitter and Status services (as a tool or
// another language would), the original cluster2's cluster-mode test rebuilt.
#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "cluster2/v1/status.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::FreePort;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

// Everything the master receives, through Emitter.Subscribe.
class Subscriber {
 public:
  explicit Subscriber(v1::Emitter::Stub* stub) {
    thread_ = std::thread([this, stub] {
      v1::SubscribeRequest request;
      auto reader = stub->Subscribe(&context_, request);
      {
        absl::MutexLock lock(&mu_);
        started_ = true;
      }
      v1::Event event;
      while (reader->Read(&event)) {
        absl::MutexLock lock(&mu_);
        events_.push_back(event);
      }
      reader->Finish();
    });
  }
  ~Subscriber() {
    context_.TryCancel();
    thread_.join();
  }
  std::vector<v1::Event> Named(const std::string& name) {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Event> found;
    for (const v1::Event& event : events_) {
      if (event.name() == name) found.push_back(event);
    }
    return found;
  }
  bool WaitFor(const std::string& name, size_t count,
               absl::Duration timeout = absl::Seconds(10)) {
    return WaitUntil([&] { return Named(name).size() >= count; }, timeout);
  }

 private:
  grpc::ClientContext context_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class EmitterStatusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    run_dir_ = tmp_.path() + "/run";
    master_ = std::make_unique<Process>(std::vector<std::string>{
        BinaryPath("master/cluster2-master"), "--noWorkers=3",
        absl::StrCat("--port=", FreePort()), "--host=127.0.0.1", "--monPort=0",
        "--runDir=" + run_dir_, "--heartbeatInterval=200",
        "--nanny.tolerance=3000", "--",
        BinaryPath("tests/testing/emitter_worker")});
    ASSERT_TRUE(WaitUntil(
        [&] { return access((run_dir_ + "/master.sock").c_str(), F_OK) == 0; },
        absl::Seconds(10)));
    channel_ = grpc::CreateChannel("unix:" + run_dir_ + "/master.sock",
                                   grpc::InsecureChannelCredentials());
    cluster_ = v1::Cluster::NewStub(channel_);
    emitter_ = v1::Emitter::NewStub(channel_);
    status_ = v1::Status::NewStub(channel_);
    ASSERT_TRUE(
        WaitUntil([&] { return ReadyPids().size() == 3; }, absl::Seconds(10)))
        << master_->Stderr();
    subscriber_ = std::make_unique<Subscriber>(emitter_.get());
    // The subscription is in place once an event to the master arrives.
    ASSERT_TRUE(WaitUntil(
        [&] {
          Emit("warm-up", {Master()});
          return !subscriber_->Named("warm-up").empty();
        },
        absl::Seconds(10)));
  }

  std::vector<int> ReadyPids() {
    grpc::ClientContext context;
    v1::ListWorkersResponse response;
    if (!cluster_->ListWorkers(&context, {}, &response).ok()) return {};
    std::vector<int> pids;
    for (const v1::Worker& worker : response.workers()) {
      if (worker.state() == v1::WORKER_STATE_READY)
        pids.push_back(worker.pid());
    }
    return pids;
  }

  static v1::Target Master() {
    v1::Target target;
    target.set_master(true);
    return target;
  }
  static v1::Target Pid(int pid) {
    v1::Target target;
    target.set_pid(pid);
    return target;
  }

  v1::EmitResponse Emit(const std::string& name,
                        std::vector<v1::Target> targets = {},
                        std::vector<google::protobuf::Value> args = {},
                        grpc::Status* status_out = nullptr) {
    v1::EmitRequest request;
    request.mutable_event()->set_name(name);
    for (const v1::Target& target : targets)
      *request.mutable_event()->add_targets() = target;
    for (const auto& arg : args) *request.mutable_event()->add_args() = arg;
    grpc::ClientContext context;
    v1::EmitResponse response;
    grpc::Status status = emitter_->Emit(&context, request, &response);
    if (status_out != nullptr) *status_out = status;
    return response;
  }

  std::set<int> PidsOf(const std::string& name, int arg_index) {
    std::set<int> pids;
    for (const v1::Event& event : subscriber_->Named(name)) {
      pids.insert(static_cast<int>(event.args(arg_index).number_value()));
    }
    return pids;
  }

  v1::GetStatusResponse GetStatus(const std::string& name,
                                  grpc::Status* status_out = nullptr) {
    grpc::ClientContext context;
    v1::GetStatusRequest request;
    request.set_name(name);
    v1::GetStatusResponse response;
    grpc::Status status = status_->GetStatus(&context, request, &response);
    if (status_out != nullptr) *status_out = status;
    return response;
  }

  TempDir tmp_;
  std::string run_dir_;
  std::unique_ptr<Process> master_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;
  std::unique_ptr<v1::Emitter::Stub> emitter_;
  std::unique_ptr<v1::Status::Stub> status_;
  std::unique_ptr<Subscriber> subscriber_;
};

TEST_F(EmitterStatusTest, TheMastersDefaultEmitReachesItselfAndEveryWorker) {
  v1::EmitResponse response = Emit("ping", {}, {Number(7)});
  EXPECT_EQ(response.delivered(), 4u);  // the master and 3 workers
  ASSERT_TRUE(subscriber_->WaitFor("pong", 3)) << master_->Stderr();
  EXPECT_EQ(subscriber_->Named("ping").size(), 1u)
      << "the master receives its own event";
  std::vector<int> ready = ReadyPids();
  EXPECT_EQ(PidsOf("pong", 1), std::set<int>(ready.begin(), ready.end()));
  for (const v1::Event& pong : subscriber_->Named("pong")) {
    EXPECT_EQ(pong.args(0).number_value(), 7);
    EXPECT_EQ(pong.from_pid(), static_cast<int>(pong.args(1).number_value()));
  }
}

TEST_F(EmitterStatusTest, EachWorkersSelfRoundTripAndEchoArrive) {
  Emit("self-test");
  ASSERT_TRUE(subscriber_->WaitFor("self-ok", 3)) << master_->Stderr();
  std::vector<int> ready = ReadyPids();
  EXPECT_EQ(PidsOf("self-ok", 0), std::set<int>(ready.begin(), ready.end()));
}

TEST_F(EmitterStatusTest, APidTargetedEmitReachesOnlyThatWorker) {
  std::vector<int> ready = ReadyPids();
  v1::EmitResponse response =
      Emit("ping", {Pid(ready[1]), Pid(999999)}, {Number(1)});
  EXPECT_EQ(response.delivered(), 1u);
  ASSERT_EQ(response.unknown_pids_size(), 1);
  EXPECT_EQ(response.unknown_pids(0), 999999);
  ASSERT_TRUE(subscriber_->WaitFor("pong", 1));
  // Give any wrongly targeted worker the time of a round trip to answer.
  Emit("ping", {Pid(ready[1])}, {Number(2)});
  ASSERT_TRUE(subscriber_->WaitFor("pong", 2));
  EXPECT_EQ(PidsOf("pong", 1), std::set<int>{ready[1]});
}

TEST_F(EmitterStatusTest, OnceFiresOnceAndRemovalStopsDelivery) {
  Emit("once-event");
  Emit("once-event");
  Emit("removable");
  ASSERT_TRUE(subscriber_->WaitFor("removable-seen", 3));
  Emit("remove-it");
  ASSERT_TRUE(subscriber_->WaitFor("removed", 3));
  Emit("removable");
  Emit("ping", {}, {Number(3)});  // a marker: every worker answers it after
  ASSERT_TRUE(subscriber_->WaitFor("pong", 3));
  EXPECT_EQ(subscriber_->Named("once-fired").size(), 3u);
  EXPECT_EQ(subscriber_->Named("removable-seen").size(), 3u)
      << "delivered after removal";
}

TEST_F(EmitterStatusTest, PerSenderOrderHoldsOver10000Events) {
  // From the master side to every worker...
  for (int i = 1; i <= 10000; ++i) {
    v1::Target workers;
    workers.set_workers(true);
    Emit("count", {workers}, {Number(i)});
  }
  Emit("count-done");
  ASSERT_TRUE(subscriber_->WaitFor("count-result", 3, absl::Seconds(60)));
  for (const v1::Event& result : subscriber_->Named("count-result")) {
    EXPECT_EQ(result.args(1).number_value(), 10000);
    EXPECT_TRUE(result.args(2).bool_value())
        << "out of order in pid " << result.from_pid();
  }
  // ...and from one worker to the master.
  int worker = ReadyPids()[0];
  Emit("flood", {Pid(worker)}, {Number(10000)});
  ASSERT_TRUE(subscriber_->WaitFor("flood-item", 10000, absl::Seconds(60)));
  std::vector<v1::Event> items = subscriber_->Named("flood-item");
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_EQ(items[i].args(1).number_value(), i + 1.0) << "at " << i;
    if (i > 0) {
      ASSERT_GT(items[i].sequence(), items[i - 1].sequence());
    }
  }
}

TEST_F(EmitterStatusTest, CtlEmitsSubscribesAndReadsAndSetsStatus) {
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath("cli/cluster2ctl"), "--run-dir", run_dir_});
    return testing::RunCommand(args);
  };
  // A subscriber that exits after the first pong.
  Process subscriber({BinaryPath("cli/cluster2ctl"), "--run-dir", run_dir_,
                      "subscribe", "pong", "--count", "1"});
  testing::CommandResult emitted;
  ASSERT_TRUE(WaitUntil(
      [&] {
        emitted =
            ctl({"emit", "ping", "42", "--to", "workers", "--to", "999999"});
        return subscriber.Wait(absl::Milliseconds(200)).has_value();
      },
      absl::Seconds(10)));
  EXPECT_EQ(emitted.exit_code, 0) << emitted.err;
  EXPECT_EQ(emitted.out, "delivered to 3 process(es); unknown pids: 999999\n");
  EXPECT_NE(subscriber.Stdout().find("\"name\":\"pong\""), std::string::npos)
      << subscriber.Stdout();
  EXPECT_NE(subscriber.Stdout().find("42"), std::string::npos)
      << subscriber.Stdout();

  EXPECT_EQ(ctl({"status"}).out, "level\nworkers\n");
  testing::CommandResult set = ctl({"status", "set", "level", "7"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  testing::CommandResult get = ctl({"status", "level"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(std::count(get.out.begin(), get.out.end(), '\n'), 4)
      << get.out;  // header + 3
  size_t sevens = 0;
  for (size_t at = get.out.find(" 7\n"); at != std::string::npos;
       at = get.out.find(" 7\n", at + 1)) {
    ++sevens;
  }
  EXPECT_EQ(sevens, 3u) << get.out;
  testing::CommandResult missing = ctl({"status", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "cluster2ctl: no process registered status 'nope'\n");
  testing::CommandResult bad = ctl({"emit", "x", "not-json"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST_F(EmitterStatusTest, TheWorkerLibraryRefusesReservedNamesBeforeSending) {
  int worker = ReadyPids()[0];
  Emit("bad-emit", {Pid(worker)});
  ASSERT_TRUE(subscriber_->WaitFor("bad-emit-result", 1));
  EXPECT_EQ(subscriber_->Named("bad-emit-result")[0].args(0).number_value(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST_F(EmitterStatusTest, ReservedAndEmptyNamesAreRefused) {
  grpc::Status status;
  Emit("cluster2:ready", {}, {}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Emit("", {}, {}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(EmitterStatusTest,
       StatusGathersOneEntryPerProcessAndFollowsSetAndDeaths) {
  // The master's own status ("workers") and the workers' "level".
  grpc::ClientContext list_context;
  v1::ListStatusesResponse names;
  ASSERT_TRUE(status_->ListStatuses(&list_context, {}, &names).ok());
  EXPECT_EQ(
      std::vector<std::string>(names.names().begin(), names.names().end()),
      (std::vector<std::string>{"level", "workers"}));
  v1::GetStatusResponse workers = GetStatus("workers");
  ASSERT_EQ(workers.entries_size(), 1);
  EXPECT_EQ(workers.entries(0).value().list_value().values_size(), 3);

  v1::GetStatusResponse level = GetStatus("level");
  ASSERT_EQ(level.entries_size(), 3);
  std::set<unsigned> ids;
  for (const v1::StatusEntry& entry : level.entries()) {
    EXPECT_TRUE(entry.error().empty()) << entry.error();
    EXPECT_EQ(entry.value().number_value(), 0);
    ids.insert(entry.worker_id());
  }
  EXPECT_EQ(ids, (std::set<unsigned>{0, 1, 2}));

  grpc::ClientContext set_context;
  v1::SetStatusRequest set;
  set.set_name("level");
  *set.mutable_value() = Number(5);
  v1::GetStatusResponse answers;
  ASSERT_TRUE(status_->SetStatus(&set_context, set, &answers).ok());
  ASSERT_EQ(answers.entries_size(), 3);
  v1::GetStatusResponse after = GetStatus("level");
  for (const v1::StatusEntry& entry : after.entries()) {
    EXPECT_EQ(entry.value().number_value(), 5);
  }

  int victim = level.entries(0).pid();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::GetStatusResponse now = GetStatus("level");
        for (const v1::StatusEntry& entry : now.entries()) {
          if (entry.pid() == victim) return false;
        }
        return now.entries_size() >=
               2;  // the replacement may have registered too
      },
      absl::Seconds(5)));

  grpc::Status status;
  GetStatus("no-such-status", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(EmbeddedMasterTest, TheMastersDefaultEmitReachesItselfAndEveryWorker) {
  TempDir tmp;
  Process app({BinaryPath("tests/testing/embedded_cluster")},
              {"XDG_RUNTIME_DIR=" + tmp.path()});
  auto lines_with = [&](const std::string& prefix) {
    std::set<std::string> found;
    std::string out = app.Stdout();
    size_t start = 0;
    while (start < out.size()) {
      size_t end = out.find('\n', start);
      if (end == std::string::npos) break;
      std::string line = out.substr(start, end - start);
      if (line.rfind(prefix, 0) == 0) found.insert(line);
      start = end + 1;
    }
    return found;
  };
  ASSERT_TRUE(WaitUntil([&] { return lines_with("pong ").size() == 3; },
                        absl::Seconds(20)))
      << app.Stdout() << app.Stderr();
  EXPECT_EQ(lines_with("delivered "), std::set<std::string>{"delivered 4"});
  EXPECT_EQ(lines_with("master got ping").size(), 1u);
  // "level", registered by the master and the 3 workers: 4 entries, and a
  // set reaches all of them.
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {BinaryPath("cli/cluster2ctl"), "--run-dir",
                               tmp.path() + "/cluster2/default"});
    return testing::RunCommand(args);
  };
  testing::CommandResult before = ctl({"status", "level"});
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(std::count(before.out.begin(), before.out.end(), '\n'), 5)
      << before.out;
  EXPECT_NE(before.out.find("master  0"), std::string::npos) << before.out;
  testing::CommandResult set = ctl({"status", "set", "level", "3"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  testing::CommandResult after = ctl({"status", "level"});
  size_t threes = 0;
  for (size_t at = after.out.find(" 3\n"); at != std::string::npos;
       at = after.out.find(" 3\n", at + 1)) {
    ++threes;
  }
  EXPECT_EQ(threes, 4u) << after.out;
  app.Signal(SIGTERM);
  EXPECT_TRUE(app.Wait(absl::Seconds(10)).has_value());
}

}  // namespace
}  // namespace cluster2
