#include "cli/commands.h"

#include <sstream>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Ctl(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCtl(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(RunCtlTest, HelpAndUsageErrors) {
  Result help = Ctl({"--help"});
  EXPECT_EQ(help.code, kExitOk);
  EXPECT_NE(help.out.find("usage: cluster2ctl"), std::string::npos);
  EXPECT_EQ(Ctl({}).code, kExitUsage);
  EXPECT_EQ(Ctl({"--bogus", "workers"}).code, kExitUsage);
  Result format = Ctl({"-o", "yaml", "workers"});
  EXPECT_EQ(format.code, kExitUsage);
  EXPECT_EQ(format.err, "cluster2ctl: -o takes table or json\n");
  Result verb = Ctl({"--run-dir", "/nonexistent-c2", "frobnicate"});
  EXPECT_EQ(verb.code, kExitUsage);
  EXPECT_EQ(
      verb.err,
      "cluster2ctl: unknown verb 'frobnicate' (see cluster2ctl --help)\n");
}

TEST(RunCtlTest, NoMasterIsExitThreeWithOneLine) {
  Result result =
      Ctl({"--run-dir", "/nonexistent-c2", "workers", "-o", "json"});
  EXPECT_EQ(result.code, kExitNoMaster);
  EXPECT_EQ(result.err,
            "cluster2ctl: no master running: /nonexistent-c2/master.sock does "
            "not exist (start "
            "one with cluster2-master, or pass --name/--run-dir)\n");
  EXPECT_TRUE(result.out.empty());
}

TEST(FormatWorkersTableTest, OneRowPerWorkerWithHumanFigures) {
  v1::ListWorkersResponse response;
  absl::Time now = absl::FromUnixSeconds(1700000100);
  v1::Worker* worker = response.add_workers();
  worker->set_id(0);
  worker->set_pid(4242);
  worker->set_state(v1::WORKER_STATE_READY);
  worker->mutable_started_at()->set_seconds(1700000035);
  worker->set_restarts(2);
  worker->mutable_last_heartbeat()->set_rss_bytes(12 * 1048576 + 314573);
  worker->mutable_last_heartbeat()->set_requests_total(99);
  worker->mutable_last_heartbeat_at()->set_seconds(1700000098);
  v1::Worker* starting = response.add_workers();
  starting->set_id(1);
  starting->set_pid(4243);
  starting->set_state(v1::WORKER_STATE_STARTING);
  starting->mutable_started_at()->set_seconds(1700000100);

  v1::Worker* failed = response.add_workers();
  failed->set_id(2);
  failed->set_state(v1::WORKER_STATE_FAILED);
  failed->set_restarts(10);
  failed->set_last_exit("exit 1");
  failed->set_reason("crash loop");
  v1::Worker* exited = response.add_workers();
  exited->set_id(3);
  exited->set_state(v1::WORKER_STATE_EXITED);
  exited->set_last_exit("signal 9 (Killed)");

  std::string table = FormatWorkersTable(response, now);
  EXPECT_EQ(
      table,
      "ID   PID      STATE     UPTIME    RESTARTS  RSS       HEARTBEAT  "
      "REQUESTS  NOTE\n"
      "0    4242     ready     1m5s      2         12.3MiB   2s ago     99\n"
      "1    4243     starting  0s        0         -         -          0\n"
      "2    -        failed    -         10        -         -          0      "
      "   crash loop\n"
      "3    -        exited    -         0         -         -          0      "
      "   "
      "last exit: signal 9 (Killed)\n");
}

}  // namespace
}  // namespace cluster2
