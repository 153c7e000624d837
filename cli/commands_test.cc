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

TEST(RunCtlTest, CacheUsageErrorsAreExitTwoBeforeAnyConnection) {
  // The socket does not exist: usage errors must win over exit 3.
  const std::string socket = "--cache-socket=/nonexistent-c2/cache.sock";
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"cache"}, "cache takes use, get, set, del, keys, watch or stats"},
      {{"cache", "frob"},
       "cache takes use, get, set, del, keys, watch or stats, not 'frob'"},
      {{"cache", "get", "ns"}, "cache get takes NS KEY"},
      {{"cache", "get", "ns", "k", "extra"}, "cache get takes NS KEY"},
      {{"cache", "get", "ns", "k", "--bogus"}, "unknown flag '--bogus'"},
      {{"cache", "set", "ns", "k"},
       "cache set takes NS KEY VALUE [--ttl=DURATION] [--nx]"},
      {{"cache", "set", "ns", "k", "v", "--ttl=soon"},
       "--ttl takes a positive duration (30s, 1m, 90), not 'soon'"},
      {{"cache", "set", "ns", "k", "v", "--ttl=0"},
       "--ttl takes a positive duration (30s, 1m, 90), not '0'"},
      {{"cache", "set", "ns", "k", "v", "--nx=1"}, "--nx takes no value"},
      {{"cache", "set", "ns", "k", "v", "--ttl"}, "--ttl needs a value"},
      {{"cache", "use", "ns", "--fsync=sometimes"},
       "--fsync takes always, everysec or no"},
      {{"cache", "use", "ns", "--expire", "-5s"},
       "--expire takes a duration (30s, 1m, 90), not '-5s'"},
      {{"cache", "use"},
       "cache use takes NS [--persist] [--expire=DURATION] "
       "[--fsync=always|everysec|no]"},
      {{"cache", "del", "ns"}, "cache del takes NS KEY"},
      {{"cache", "keys", "ns", "--limit=0"}, "--limit takes a positive number"},
      {{"cache", "keys"}, "cache keys takes NS [PREFIX] [--limit=N]"},
      {{"cache", "watch", "ns", "--count=x"},
       "--count takes a positive number"},
      {{"cache", "watch", "ns", "--from=-1"}, "--from takes a revision number"},
      {{"cache", "stats", "a", "b"}, "cache stats takes [NS]"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {socket};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result result = Ctl(args);
    EXPECT_EQ(result.code, kExitUsage) << c.err;
    EXPECT_EQ(result.err,
              "cluster2ctl: " + c.err + " (see cluster2ctl --help)\n");
    EXPECT_TRUE(result.out.empty()) << c.err;
  }
}

TEST(RunCtlTest, CacheHelpPrintsTheUsage) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"cache", "--help"}, {"cache", "set", "-h"}}) {
    Result help = Ctl(args);
    EXPECT_EQ(help.code, kExitOk);
    EXPECT_NE(help.out.find("cache set NS KEY VALUE [--ttl=DURATION] [--nx]"),
              std::string::npos);
  }
}

TEST(RunCtlTest, NoCacheServerIsExitThreeWithOneLine) {
  const std::string hint =
      " (no such socket; start a cluster with the cache enabled, or pass "
      "--cache-socket)\n";
  // --cache-socket in both forms, before or after the verb.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--cache-socket=/nonexistent-c2/c.sock", "cache", "get", "ns", "k"},
           {"--cache-socket", "/nonexistent-c2/c.sock", "cache", "stats"},
           {"cache", "keys", "ns", "--cache-socket", "/nonexistent-c2/c.sock"},
           {"cache", "stats", "--cache-socket=/nonexistent-c2/c.sock"}}) {
    Result result = Ctl(args);
    EXPECT_EQ(result.code, kExitNoMaster) << args[0];
    EXPECT_EQ(result.err,
              "cluster2ctl: no cache server at /nonexistent-c2/c.sock" + hint);
    EXPECT_TRUE(result.out.empty());
  }
  // Without --cache-socket: the run directory's cache.sock.
  Result by_dir = Ctl({"--run-dir", "/nonexistent-c2", "cache", "stats"});
  EXPECT_EQ(by_dir.code, kExitNoMaster);
  EXPECT_EQ(
      by_dir.err,
      "cluster2ctl: no cache server at /nonexistent-c2/cache.sock" + hint);
}

TEST(FormatCacheStatsTableTest, OneRowPerNamespaceColumnsAligned) {
  v1::StatsResponse stats;
  v1::NamespaceStats* sessions = stats.add_namespaces();
  sessions->set_namespace_("sessions");
  sessions->set_hits(10);
  sessions->set_misses(2);
  sessions->set_loads(1);
  sessions->set_keys(3);
  sessions->set_bytes(120);
  v1::NamespaceStats* pages = stats.add_namespaces();
  pages->set_namespace_("rendered-pages");
  pages->set_hits(123456);
  pages->set_errors(7);
  EXPECT_EQ(FormatCacheStatsTable(stats),
            "NAMESPACE       HITS    MISSES  LOADS  ERRORS  KEYS  BYTES\n"
            "sessions        10      2       1      0       3     120\n"
            "rendered-pages  123456  0       0      7       0     0\n");
  EXPECT_EQ(FormatCacheStatsTable({}),
            "NAMESPACE  HITS  MISSES  LOADS  ERRORS  KEYS  BYTES\n");
}

TEST(FormatWatchEventTest, RevisionKindKeyValueAndResync) {
  v1::WatchEvent set;
  set.set_kind(v1::WatchEvent::KIND_SET);
  set.set_key("user:1");
  set.set_value("ada lovelace");
  set.set_revision(42);
  EXPECT_EQ(FormatWatchEvent(set), "42 set user:1 ada lovelace\n");
  v1::WatchEvent deleted;
  deleted.set_kind(v1::WatchEvent::KIND_DELETE);
  deleted.set_key("user:1");
  deleted.set_revision(43);
  EXPECT_EQ(FormatWatchEvent(deleted), "43 delete user:1\n");
  deleted.set_kind(v1::WatchEvent::KIND_EXPIRE);
  EXPECT_EQ(FormatWatchEvent(deleted), "43 expire user:1\n");
  deleted.set_kind(v1::WatchEvent::KIND_EVICT);
  EXPECT_EQ(FormatWatchEvent(deleted), "43 evict user:1\n");
  v1::WatchEvent resync;
  resync.set_resync(true);
  EXPECT_EQ(FormatWatchEvent(resync), "resync\n");
  set.set_resync(true);
  EXPECT_EQ(FormatWatchEvent(set), "resync\n42 set user:1 ada lovelace\n");
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
