// End-to-end tests of debug sessions and stack dumps: the real master,
// hello_worker, cluster2ctl, gdbserver and gdb.
#include <sys/wait.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"
#include "tests/testing/test_cluster.h"

namespace cluster2::testing {
namespace {

constexpr char kGdb[] = "/usr/bin/gdb";

class DebugTest : public ::testing::Test {
 protected:
  DebugTest()
      : debug_port_(FreePortBelowEphemeral()),
        // gdb loading a worker's symbols takes a core for about a second;
        // on a 2-core machine the other workers' heartbeats can then miss
        // a tight tolerance and the nanny kills them (seen with 600 ms: a
        // ready worker killed as hung mid-gdb, its requests lost). The
        // hang detector is not what these tests are about.
        cluster_(2, {absl::StrCat("--debug.webPort=", debug_port_),
                     "--nanny.tolerance=5000"}) {}

  std::string address() const {
    return absl::StrCat("127.0.0.1:", debug_port_);
  }

  // The pids of the READY workers (the session's process is not one).
  std::set<int> Ready() {
    std::set<int> pids;
    for (const v1::Worker& worker : cluster_.Workers()) {
      if (worker.state() == v1::WORKER_STATE_READY) pids.insert(worker.pid());
    }
    return pids;
  }

  std::optional<v1::Worker> Debugging() {
    for (const v1::Worker& worker : cluster_.Workers()) {
      if (worker.state() == v1::WORKER_STATE_DEBUGGING) return worker;
    }
    return std::nullopt;
  }

  // cluster2ctl debug ARGS -o json.
  v1::DebugResponse Debug(std::vector<std::string> args) {
    args.insert(args.begin(), "debug");
    args.insert(args.end(), {"-o", "json"});
    CommandResult result = cluster_.Ctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.err << "\n"
                                   << cluster_.master().Stderr();
    v1::DebugResponse response;
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(result.out, &response).ok())
        << result.out;
    return response;
  }

  std::unique_ptr<v1::Cluster::Stub> Stub() {
    return v1::Cluster::NewStub(
        grpc::CreateChannel("unix:" + cluster_.run_dir() + "/master.sock",
                            grpc::InsecureChannelCredentials()));
  }

  int debug_port_;
  TestCluster cluster_;
};

TEST_F(DebugTest, LiveWorkerUnderLoadIsReplacedAndGdbReadsItsBacktrace) {
  std::set<int> pids = cluster_.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u);
  const int target = *pids.begin();
  // New connection per request; keep-alive clients: see docs/operations.md.
  LoadGenerator load(cluster_.port(), 4, /*keep_alive=*/false);
  ASSERT_TRUE(WaitUntil([&] { return load.ok() > 200; }, absl::Seconds(10)));

  std::string phases;  // failures seen at the end of each phase
  auto phase = [&](const char* name) {
    absl::StrAppend(&phases, name, "=", load.failed(), " ");
  };
  phase("before");
  v1::DebugResponse session = Debug({absl::StrCat(target)});
  phase("debug");
  EXPECT_EQ(session.pid(), target);
  EXPECT_EQ(session.protocol(), "gdb");
  EXPECT_EQ(session.address(), address());
  EXPECT_TRUE(absl::EndsWith(session.executable(), "hello_worker"))
      << session.executable();
  EXPECT_NE(session.gdbserver_pid(), 0);
  // The human form says how to connect.
  CommandResult shown = cluster_.Ctl({"debug"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_TRUE(absl::StrContains(
      shown.out, absl::StrCat("gdb -ex 'target remote ", address(), "' ",
                              session.executable())))
      << shown.out;

  // N workers serve without it; it is listed as debugging.
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::set<int> ready = Ready();
        return ready.size() == 2 && ready.count(target) == 0;
      },
      absl::Seconds(10)));
  std::optional<v1::Worker> debugging = Debugging();
  ASSERT_TRUE(debugging.has_value());
  EXPECT_EQ(debugging->pid(), target);
  EXPECT_TRUE(absl::StrContains(
      HttpGet(cluster_.mon_port(), "/metrics").body,
      "cluster2_debug_session_open{cluster=\"default\"} 1\n"));
  uint64_t before = load.ok();
  ASSERT_TRUE(
      WaitUntil([&] { return load.ok() > before + 200; }, absl::Seconds(10)));

  phase("replaced");
  CommandResult gdb = RunCommand(
      {kGdb, "-batch", "-nx", "-ex", "target remote " + session.address(),
       "-ex", "thread apply all bt", "-ex", "disconnect", session.executable()},
      absl::Seconds(60));
  EXPECT_TRUE(absl::StrContains(gdb.out, " main (")) << gdb.out << "\n"
                                                     << gdb.err;
  EXPECT_TRUE(ProcessAlive(target));  // still the session's

  phase("gdb");
  v1::DebugResponse ended = Debug({"--end"});
  phase("end");
  EXPECT_EQ(ended.pid(), target);
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessAlive(target); }, absl::Seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return Ready().size() == 2 && !Debugging().has_value(); },
                absl::Seconds(10)));
  EXPECT_TRUE(absl::StrContains(
      HttpGet(cluster_.mon_port(), "/metrics").body,
      "cluster2_debug_session_open{cluster=\"default\"} 0\n"));
  before = load.ok();
  ASSERT_TRUE(
      WaitUntil([&] { return load.ok() > before + 100; }, absl::Seconds(10)));
  load.Stop();
  EXPECT_EQ(load.failed(), 0u)
      << (load.errors().empty() ? "" : load.errors()[0]) << "; " << phases
      << "\n"
      << cluster_.master().Stderr();
}

TEST_F(DebugTest, DetachingTheDebuggerEndsTheSession) {
  std::set<int> pids = cluster_.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u);
  const int target = *pids.rbegin();
  v1::DebugResponse session = Debug({absl::StrCat(target)});
  ASSERT_EQ(session.pid(), target);
  RunCommand(
      {kGdb, "-batch", "-nx", "-ex", "target remote " + session.address(),
       "-ex", "detach", session.executable()},
      absl::Seconds(60));
  // gdbserver exits with the detach: the session ends, the worker dies.
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessAlive(target); }, absl::Seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return Ready().size() == 2; }, absl::Seconds(10)));
  CommandResult query = cluster_.Ctl({"debug"});
  EXPECT_EQ(query.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(query.err, "no debug session is open"))
      << query.err;
}

TEST_F(DebugTest, FreshWorkerWaitsForTheDebuggerThenServes) {
  ASSERT_EQ(cluster_.WaitReady(2).size(), 2u);
  v1::DebugResponse session = Debug({"--fresh"});
  EXPECT_TRUE(session.fresh());
  ASSERT_NE(session.pid(), 0);
  std::optional<v1::Worker> fresh = Debugging();
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->id(), 2u);  // past the slots
  EXPECT_FALSE(fresh->has_ready_at());
  const std::string fresh_body = "worker 2 ";
  // Not in rotation while it waits: every request goes to the others.
  for (int i = 0; i < 30; ++i) {
    HttpResult result = HttpGet(cluster_.port(), "/");
    ASSERT_EQ(result.status, 200) << result.error;
    EXPECT_FALSE(absl::StartsWith(result.body, fresh_body)) << result.body;
  }
  EXPECT_FALSE(Debugging()->has_ready_at());

  // The debugger lets it run: it reports ready and takes requests.
  Process gdb({kGdb, "-batch", "-nx", "-ex",
               "target remote " + session.address(), "-ex", "continue",
               session.executable()});
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::optional<v1::Worker> worker = Debugging();
        return worker && worker->has_ready_at();
      },
      absl::Seconds(20)));
  EXPECT_TRUE(WaitUntil(
      [&] {
        return absl::StartsWith(HttpGet(cluster_.port(), "/").body, fresh_body);
      },
      absl::Seconds(10)));
  EXPECT_EQ(Ready().size(), 2u);

  Debug({"--end"});
  EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(session.pid()); },
                        absl::Seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return !Debugging().has_value(); }, absl::Seconds(10)));
  EXPECT_TRUE(gdb.Wait(absl::Seconds(10)).has_value());
}

TEST_F(DebugTest, OneSessionAtATimeAndUnknownPidIsNotFound) {
  std::set<int> pids = cluster_.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u);
  auto stub = Stub();
  v1::DebugResponse response;
  {
    grpc::ClientContext context;
    v1::DebugRequest request;
    request.set_pid(999999);
    EXPECT_EQ(stub->Debug(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  const int first = *pids.begin();
  {
    grpc::ClientContext context;
    v1::DebugRequest request;
    request.set_pid(first);
    ASSERT_TRUE(stub->Debug(&context, request, &response).ok());
  }
  for (bool fresh : {false, true}) {
    grpc::ClientContext context;
    v1::DebugRequest request;
    if (fresh) {
      request.set_fresh(true);
    } else {
      request.set_pid(*pids.rbegin());
    }
    grpc::Status refused = stub->Debug(&context, request, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(
        refused.error_message(),
        absl::StrCat("a debug session is open: pid ", first, " on ", address(),
                     " (end it with cluster2ctl debug --end)"));
  }
  CommandResult ctl = cluster_.Ctl({"debug", absl::StrCat(*pids.rbegin())});
  EXPECT_EQ(ctl.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(ctl.err, "a debug session is open")) << ctl.err;
  {
    grpc::ClientContext context;
    v1::DebugRequest request;
    request.set_end(true);
    EXPECT_TRUE(stub->Debug(&context, request, &response).ok());
  }
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessAlive(first); }, absl::Seconds(10)));
}

TEST_F(DebugTest, StacksNameTheWorkersThreadsAndItKeepsServing) {
  std::set<int> pids = cluster_.WaitReady(2);
  ASSERT_EQ(pids.size(), 2u);
  const int target = *pids.begin();
  LoadGenerator load(cluster_.port(), 2, /*keep_alive=*/false);
  CommandResult stacks = cluster_.Ctl({"stacks", absl::StrCat(target)});
  ASSERT_EQ(stacks.exit_code, 0) << stacks.err;
  for (const char* name : {"\"c2-heartbeat\"", "\"c2-reader\"",
                           "\"c2-dispatcher\"", "\"hello_worker\""}) {
    EXPECT_TRUE(absl::StrContains(stacks.out, name)) << name << stacks.out;
  }
  EXPECT_TRUE(absl::StrContains(stacks.out, " main ")) << stacks.out;
  uint64_t before = load.ok();
  ASSERT_TRUE(
      WaitUntil([&] { return load.ok() > before + 100; }, absl::Seconds(10)));
  load.Stop();
  EXPECT_EQ(load.failed(), 0u);
  EXPECT_EQ(cluster_.WaitReady(2), pids);  // the same workers, all ready
  EXPECT_TRUE(absl::StrContains(cluster_.master().Stderr(),
                                absl::StrCat("stacks of worker")));
}

}  // namespace
}  // namespace cluster2::testing
