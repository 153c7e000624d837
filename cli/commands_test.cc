#include "cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/version.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
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
  pages->set_waiting(4);
  EXPECT_EQ(
      FormatCacheStatsTable(stats),
      "NAMESPACE       HITS    MISSES  LOADS  WAITING  ERRORS  KEYS  BYTES\n"
      "sessions        10      2       1      0        0       3     120\n"
      "rendered-pages  123456  0       0      4        7       0     0\n");
  EXPECT_EQ(FormatCacheStatsTable({}),
            "NAMESPACE  HITS  MISSES  LOADS  WAITING  ERRORS  KEYS  BYTES\n");
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

  worker->set_group("default");
  starting->set_group("node-web");
  std::string table = FormatWorkersTable(response, now);
  EXPECT_EQ(
      table,
      "ID   GROUP    PID      STATE     UPTIME    RESTARTS  RSS       "
      "HEARTBEAT  REQUESTS  NOTE\n"
      "0    default  4242     ready     1m5s      2         12.3MiB   2s ago "
      "    99\n"
      "1    node-web 4243     starting  0s        0         -         -      "
      "    0\n"
      "2    -        -        failed    -         10        -         -      "
      "    0         crash loop\n"
      "3    -        -        exited    -         0         -         -      "
      "    0         last exit: signal 9 (Killed)\n");
}

// Every verb, the words that select it and what its --help must mention.
struct VerbHelp {
  std::vector<std::string> words;
  std::vector<std::string> mentions;
};

const std::vector<VerbHelp>& EveryVerb() {
  static const auto* const kVerbs = new std::vector<VerbHelp>{
      {{"workers"}, {}},
      {{"worker"}, {"PID"}},
      {{"config"}, {}},
      {{"restart"}, {"--pid", "--surge"}},
      {{"recycle"}, {"PID", "--reason"}},
      {{"scale"}, {"N"}},
      {{"pause"}, {"PID"}},
      {{"resume"}, {"PID"}},
      {{"shutdown"}, {"--fast"}},
      {{"ecv"}, {}},
      {{"markup"}, {}},
      {{"markdown"}, {}},
      {{"emit"}, {"EVENT", "JSON", "--to"}},
      {{"subscribe"}, {"EVENT", "--count"}},
      {{"status"}, {"NAME"}},
      {{"status", "set"}, {"NAME", "JSON"}},
      {{"cache"}, {"cache use", "cache stats"}},
      {{"cache", "use"}, {"NS", "--persist", "--expire", "--fsync"}},
      {{"cache", "get"}, {"NS", "KEY"}},
      {{"cache", "set"}, {"NS", "KEY", "VALUE", "--ttl", "--nx"}},
      {{"cache", "del"}, {"NS", "KEY"}},
      {{"cache", "keys"}, {"NS", "PREFIX", "--limit"}},
      {{"cache", "watch"}, {"NS", "KEY", "--from", "--count"}},
      {{"cache", "stats"}, {"NS"}},
      {{"completion"}, {"bash|zsh"}},
      {{"help"}, {"VERB"}},
  };
  return *kVerbs;
}

TEST(RunCtlTest, EveryVerbHasHelpWithoutAMaster) {
  for (const VerbHelp& verb : EveryVerb()) {
    std::string path = absl::StrJoin(verb.words, " ");
    for (const char* flag : {"--help", "-h"}) {
      std::vector<std::string> args = {"--run-dir", "/nonexistent-c2"};
      args.insert(args.end(), verb.words.begin(), verb.words.end());
      args.push_back(flag);
      Result help = Ctl(args);
      EXPECT_EQ(help.code, kExitOk) << path << " " << help.err;
      EXPECT_TRUE(help.err.empty()) << path << " " << help.err;
      EXPECT_TRUE(absl::StartsWith(help.out, "usage: cluster2ctl " + path))
          << help.out;
      for (const std::string& mention : verb.mentions)
        EXPECT_TRUE(absl::StrContains(help.out, mention)) << path << mention;
    }
    // `help VERB` says the same.
    std::vector<std::string> args = {"help"};
    args.insert(args.end(), verb.words.begin(), verb.words.end());
    std::vector<std::string> flagged = verb.words;
    flagged.push_back("--help");
    EXPECT_EQ(Ctl(args).out, Ctl(flagged).out) << path;
  }
}

TEST(RunCtlTest, HelpListsEveryVerb) {
  Result help = Ctl({"--help"});
  ASSERT_EQ(help.code, kExitOk);
  for (const VerbHelp& verb : EveryVerb()) {
    EXPECT_TRUE(
        absl::StrContains(help.out, "\n  " + absl::StrJoin(verb.words, " ")))
        << absl::StrJoin(verb.words, " ");
  }
  EXPECT_EQ(Ctl({"help"}).out, help.out);
  EXPECT_EQ(Ctl({"help", "frob"}).code, kExitUsage);
}

TEST(RunCtlTest, VersionIsTheOneConstant) {
  Result version = Ctl({"--version"});
  EXPECT_EQ(version.code, kExitOk);
  EXPECT_EQ(version.out, Cluster2ctlVersion() + "\n");
  EXPECT_EQ(version.out, "cluster2ctl 0.6.0\n");
}

TEST(RunCtlTest, AVerbArgumentMayBeAnotherVerbsName) {
  // `subscribe workers`: the event "workers", not the verb.
  Result subscribe = Ctl(
      {"--run-dir", "/nonexistent-c2", "subscribe", "workers", "--count", "x"});
  EXPECT_EQ(subscribe.code, kExitUsage);
  EXPECT_EQ(subscribe.err,
            "cluster2ctl: --count takes a positive number (see cluster2ctl "
            "--help)\n");
  Result twice = Ctl({"--run-dir", "/nonexistent-c2", "workers", "workers"});
  EXPECT_EQ(twice.code, kExitUsage);
  EXPECT_EQ(twice.err,
            "cluster2ctl: workers takes no arguments (see cluster2ctl "
            "--help)\n");
  Result fell =
      Ctl({"--run-dir", "/nonexistent-c2", "status", "x", "set", "level", "7"});
  EXPECT_EQ(fell.code, kExitUsage);
  EXPECT_EQ(fell.err,
            "cluster2ctl: status set takes NAME JSON (see cluster2ctl "
            "--help)\n");
}

TEST(RunCtlTest, GlobalOptionsGoAfterTheVerbToo) {
  Result result = Ctl({"workers", "--run-dir=/nonexistent-c2", "-o", "json"});
  EXPECT_EQ(result.code, kExitNoMaster);
  EXPECT_TRUE(absl::StrContains(result.err, "/nonexistent-c2/master.sock"))
      << result.err;
}

TEST(RunCtlTest, TimeoutTakesADuration) {
  for (const char* timeout : {"500ms", "2", "0.5", "2m", "1h30m"}) {
    Result result =
        Ctl({"--timeout", timeout, "--run-dir", "/nonexistent-c2", "workers"});
    EXPECT_EQ(result.code, kExitNoMaster) << timeout << result.err;
  }
  for (const char* timeout : {"soon", "0", "-1s", "5x"}) {
    Result result =
        Ctl({"--timeout", timeout, "--run-dir", "/nonexistent-c2", "workers"});
    EXPECT_EQ(result.code, kExitUsage) << timeout;
    EXPECT_EQ(result.err,
              absl::StrCat("cluster2ctl: --timeout takes a positive duration "
                           "(5s, 500ms, 2m, or seconds), not '",
                           timeout, "' (see cluster2ctl --help)\n"));
  }
}

// Runs `command` with bash; its exit code, stdout in *out.
int RunBash(const std::string& command, std::string* out) {
  FILE* pipe = popen(("bash -c '" + command + "' 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t read;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    out->append(buffer, read);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
  std::ofstream(path) << text;
  return path;
}

// The words the completion offers after `line` (words separated by spaces,
// the last one being completed).
std::vector<std::string> Complete(const std::string& script,
                                  const std::string& line) {
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  std::string array;
  for (const std::string& word : words)
    absl::StrAppend(&array, " \"", word, "\"");
  std::string out;
  int code = RunBash(absl::StrCat("source ", script, "; COMP_WORDS=(", array,
                                  "); COMP_CWORD=", words.size() - 1,
                                  "; _cluster2ctl; printf \"%s\\n\" "
                                  "\"${COMPREPLY[@]}\""),
                     &out);
  EXPECT_EQ(code, 0) << out;
  return absl::StrSplit(out, '\n', absl::SkipEmpty());
}

TEST(CompletionTest, BashScriptIsValidAndCompletesEveryVerb) {
  Result bash = Ctl({"completion", "bash"});
  ASSERT_EQ(bash.code, kExitOk) << bash.err;
  std::string script = WriteTemp("cluster2ctl.bash", bash.out);
  std::string out;
  ASSERT_EQ(RunBash("bash -n " + script, &out), 0) << out;

  std::vector<std::string> verbs = Complete(script, "cluster2ctl ");
  std::vector<std::string> cache = Complete(script, "cluster2ctl cache ");
  for (const VerbHelp& verb : EveryVerb()) {
    const auto& offered = verb.words.size() == 1 ? verbs : cache;
    EXPECT_NE(std::find(offered.begin(), offered.end(), verb.words.back()),
              offered.end())
        << verb.words.back();
  }
  EXPECT_EQ(Complete(script, "cluster2ctl cache set --n"),
            (std::vector<std::string>{"--nx", "--name"}));
  EXPECT_EQ(Complete(script, "cluster2ctl --name x shutdown --f"),
            (std::vector<std::string>{"--fast"}));
  EXPECT_EQ(Complete(script, "cluster2ctl workers -o "),
            (std::vector<std::string>{"table", "json"}));
  EXPECT_EQ(Complete(script, "cluster2ctl cache use ns --fsync e"),
            (std::vector<std::string>{"everysec"}));
  EXPECT_EQ(
      Complete(script, "cluster2ctl completion "),
      (std::vector<std::string>{
          "bash", "zsh", "--help", "-h", "--name", "--run-dir", "--master",
          "--cache-socket", "--hosts", "--tls-ca", "--tls-cert", "--tls-key",
          "--tls-server-name", "--output", "-o", "--timeout", "--version"}));
}

TEST(CompletionTest, ZshScriptIsTheBashFunctionThroughBashcompinit) {
  Result zsh = Ctl({"completion", "zsh"});
  ASSERT_EQ(zsh.code, kExitOk);
  EXPECT_TRUE(absl::StartsWith(zsh.out, "#compdef cluster2ctl\n"));
  EXPECT_TRUE(absl::StrContains(zsh.out, "bashcompinit"));
  EXPECT_TRUE(absl::StrContains(zsh.out, Ctl({"completion", "bash"}).out));
  std::string out;
  EXPECT_EQ(RunBash("bash -n " + WriteTemp("cluster2ctl.zsh", zsh.out), &out),
            0)
      << out;
  Result fish = Ctl({"completion", "fish"});
  EXPECT_EQ(fish.code, kExitUsage);
  EXPECT_EQ(fish.err,
            "cluster2ctl: completion takes bash or zsh (see cluster2ctl "
            "--help)\n");
}

// A master with only Shutdown and Recycle, on a Unix socket in a fresh
// directory, recording what it was asked.
class FakeMaster : public v1::Cluster::Service {
 public:
  FakeMaster() {
    char dir[] = "/tmp/c2ctl-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    run_dir_ = dir;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + run_dir_ + "/master.sock",
                             grpc::InsecureServerCredentials());
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeMaster() override {
    server_->Shutdown();
    unlink((run_dir_ + "/master.sock").c_str());
    rmdir(run_dir_.c_str());
  }

  const std::string& run_dir() const { return run_dir_; }

  grpc::Status Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                        v1::ShutdownResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Recycle(grpc::ServerContext* context,
                       const v1::RecycleRequest* request,
                       v1::RecycleResponse*) override {
    absl::MutexLock lock(&mu_);
    last_recycle_ = *request;
    deadline_left_ = absl::FromChrono(context->deadline()) - absl::Now();
    if (request->pid() == 1)
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no worker with pid 1");
    return grpc::Status::OK;
  }

  v1::RecycleRequest last_recycle() {
    absl::MutexLock lock(&mu_);
    return last_recycle_;
  }
  absl::Duration deadline_left() {
    absl::MutexLock lock(&mu_);
    return deadline_left_;
  }

 private:
  std::string run_dir_;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  v1::RecycleRequest last_recycle_ ABSL_GUARDED_BY(mu_);
  absl::Duration deadline_left_ ABSL_GUARDED_BY(mu_);
};

google::protobuf::Struct ParseStruct(const std::string& json) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok())
      << json;
  return parsed;
}

TEST(FakeMasterTest, ShutdownAndRecyclePrintJson) {
  FakeMaster master;
  Result shutdown =
      Ctl({"--run-dir", master.run_dir(), "shutdown", "-o", "json"});
  ASSERT_EQ(shutdown.code, kExitOk) << shutdown.err;
  google::protobuf::Struct stop = ParseStruct(shutdown.out);
  EXPECT_TRUE(stop.fields().at("ok").bool_value());
  EXPECT_EQ(stop.fields().at("stop").string_value(), "graceful");
  EXPECT_EQ(ParseStruct(Ctl({"--run-dir", master.run_dir(), "-o", "json",
                             "shutdown", "--fast"})
                            .out)
                .fields()
                .at("stop")
                .string_value(),
            "fast");
  EXPECT_EQ(Ctl({"--run-dir", master.run_dir(), "shutdown"}).out,
            "graceful stop begun\n");

  Result recycle = Ctl({"--run-dir", master.run_dir(), "recycle", "42",
                        "--reason", "a \"test\"", "-o", "json"});
  ASSERT_EQ(recycle.code, kExitOk) << recycle.err;
  google::protobuf::Struct replaced = ParseStruct(recycle.out);
  EXPECT_TRUE(replaced.fields().at("ok").bool_value());
  EXPECT_EQ(replaced.fields().at("pid").number_value(), 42);
  EXPECT_EQ(replaced.fields().at("reason").string_value(), "a \"test\"");
  EXPECT_EQ(master.last_recycle().pid(), 42);
  EXPECT_EQ(master.last_recycle().reason(), "a \"test\"");
  // The master's error: exit 1, one line, nothing on stdout.
  Result unknown =
      Ctl({"--run-dir", master.run_dir(), "-o", "json", "recycle", "1"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_EQ(unknown.err, "cluster2ctl: no worker with pid 1\n");
  EXPECT_TRUE(unknown.out.empty());
  EXPECT_EQ(master.last_recycle().reason(), "manual");
}

TEST(FakeMasterTest, TimeoutIsEachCallsDeadline) {
  FakeMaster master;
  ASSERT_EQ(
      Ctl({"--run-dir", master.run_dir(), "--timeout", "500ms", "recycle", "7"})
          .code,
      kExitOk);
  EXPECT_GT(master.deadline_left(), absl::ZeroDuration());
  // The server sees the deadline a little later (and rounded up).
  EXPECT_LE(master.deadline_left(), absl::Milliseconds(600));
  ASSERT_EQ(
      Ctl({"--run-dir", master.run_dir(), "recycle", "7", "--timeout", "2"})
          .code,
      kExitOk);
  EXPECT_GT(master.deadline_left(), absl::Seconds(1));
  EXPECT_LE(master.deadline_left(), absl::Milliseconds(2100));
}
}  // namespace
}  // namespace cluster2

namespace cluster2 {
namespace {

TEST(FormatWorkerDetailTest, ShowsTheGroupAndWhenTheLastHeartbeatWasSent) {
  absl::Time now = absl::FromUnixSeconds(1700000100);
  v1::Worker worker;
  worker.set_id(1);
  worker.set_pid(4242);
  worker.set_group("node");
  worker.set_attached(true);
  worker.set_state(v1::WORKER_STATE_READY);
  worker.mutable_started_at()->set_seconds(1700000000);
  v1::Heartbeat* beat = worker.mutable_last_heartbeat();
  beat->set_requests_total(7);
  beat->mutable_latency_p99()->set_nanos(3000000);
  beat->mutable_sent_at()->set_seconds(1700000098);
  worker.mutable_last_heartbeat_at()->set_seconds(1700000098);
  worker.mutable_last_heartbeat_at()->set_nanos(2000000);
  std::string text = FormatWorkerDetail(worker, now);
  EXPECT_NE(text.find("group: node\nsession: attached\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("p99 3ms"), std::string::npos) << text;
  EXPECT_NE(text.find("last heartbeat: sent 2023-11-14 22:14:58.000 UTC, "
                      "reached the master 2ms later\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cluster2
