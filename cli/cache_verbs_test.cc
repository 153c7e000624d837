// cluster2ctl's cache verbs against the real cluster2-cache, run alone on a
// short /tmp socket and reached with --cache-socket.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

struct Result {
  int code;
  std::string out;
  std::string err;
};

// True if a Unix socket at `path` accepts a connection.
bool Accepts(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  bool accepted =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return accepted;
}

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok())
      << json;
  return message;
}

// The revision in "written (revision N)\n"; 0 if it is not that.
uint64_t WrittenRevision(const std::string& out) {
  uint64_t revision = 0;
  absl::string_view text = out;
  if (!absl::ConsumePrefix(&text, "written (revision ") ||
      !absl::ConsumeSuffix(&text, ")\n") ||
      !absl::SimpleAtoi(text, &revision)) {
    return 0;
  }
  return revision;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

class CacheVerbsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = tmp_.path() + "/cache.sock";
    server_ = std::make_unique<Process>(std::vector<std::string>{
        BinaryPath("cache_server/cluster2-cache"), "--socket=" + socket_,
        "--data-dir=" + tmp_.path() + "/data"});
    ASSERT_TRUE(WaitUntil([&] { return Accepts(socket_); }, absl::Seconds(10)))
        << server_->Stderr();
    stub_ = v1::Cache::NewStub(grpc::CreateChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials()));
    Result used = Cache({"use", "ns"});
    ASSERT_EQ(used.code, kExitOk) << used.err;
  }

  void TearDown() override { StopServer(); }

  // Kills the server by its pid and reaps it (once).
  void StopServer() {
    if (stopped_) return;
    stopped_ = true;
    server_->Signal(SIGKILL);
    EXPECT_TRUE(server_->Wait(absl::Seconds(10)).has_value());
  }

  // cluster2ctl --cache-socket=<socket> cache ARGS...
  Result Cache(std::vector<std::string> args) {
    args.insert(args.begin(), {"--cache-socket=" + socket_, "cache"});
    std::ostringstream out, err;
    int code = RunCtl(args, out, err);
    return {code, out.str(), err.str()};
  }

  // Writes without the CLI: for values argv cannot carry, and many keys.
  void SetDirect(const std::string& key, const std::string& value) {
    v1::SetRequest request;
    request.set_namespace_("ns");
    request.set_key(key);
    request.set_value(value);
    v1::SetResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Set(&context, request, &response).ok());
  }

  // Runs `cache ARGS...` on a thread (for watch, which blocks).
  class Background {
   public:
    Background(CacheVerbsTest* test, std::vector<std::string> args)
        : thread_([this, test, args] {
            result_ = test->Cache(args);
            done_ = true;
          }) {}
    ~Background() {
      if (thread_.joinable()) thread_.join();
    }
    bool done() const { return done_.load(); }
    // The result; call after done() or once the thread is joined.
    const Result& result() {
      if (thread_.joinable()) thread_.join();
      return result_;
    }

   private:
    Result result_;
    std::atomic<bool> done_{false};
    std::thread thread_;
  };

  // Waits for `watch` to end; if it does not within 10 s, kills the server so
  // the stream fails and the thread can be joined (the test then fails).
  void AwaitWatch(Background& watch) {
    if (!WaitUntil([&] { return watch.done(); }, absl::Seconds(10))) {
      ADD_FAILURE() << "the watch did not end";
      StopServer();
    }
  }

  TempDir tmp_;
  std::string socket_;
  std::unique_ptr<Process> server_;
  bool stopped_ = false;
  std::unique_ptr<v1::Cache::Stub> stub_;
};

TEST_F(CacheVerbsTest, UsePrintsTheOptionsAndWhetherTheyConflict) {
  Result first = Cache({"use", "sessions", "--expire=30s"});
  EXPECT_EQ(first.code, kExitOk);
  EXPECT_EQ(first.out,
            "NAMESPACE  PERSIST  EXPIRE  FSYNC     CONFLICT\n"
            "sessions   no       30s     everysec  no\n");
  EXPECT_EQ(first.err, "");

  // Plain seconds are the same options: no conflict.
  Result same = Cache({"use", "sessions", "--expire", "30"});
  EXPECT_EQ(same.code, kExitOk);
  EXPECT_EQ(same.out, first.out);

  // Different options: the first use's stay, reported, and it is not an error.
  Result other = Cache({"use", "sessions", "--expire=1m"});
  EXPECT_EQ(other.code, kExitOk);
  EXPECT_EQ(other.out,
            "NAMESPACE  PERSIST  EXPIRE  FSYNC     CONFLICT\n"
            "sessions   no       30s     everysec  yes\n");
  EXPECT_EQ(other.err,
            "cluster2ctl: namespace 'sessions' already exists with other "
            "options; it keeps them\n");

  Result durable =
      Cache({"use", "durable", "--persist", "--fsync=always", "-o", "json"});
  EXPECT_EQ(durable.code, kExitOk) << durable.err;
  auto response = FromJson<v1::UseResponse>(durable.out);
  EXPECT_TRUE(response.options().persist());
  EXPECT_EQ(response.options().fsync(), v1::NamespaceOptions::FSYNC_ALWAYS);
  EXPECT_FALSE(response.conflict());

  Result bad = Cache({"use", "no spaces"});
  EXPECT_EQ(bad.code, kExitFailed);
  EXPECT_EQ(bad.err,
            "cluster2ctl: namespace names are 1-128 characters of "
            "[A-Za-z0-9._-]\n");
}

TEST_F(CacheVerbsTest, SetGetDeleteAndTheirExitCodes) {
  Result set = Cache({"set", "ns", "k", "hello"});
  EXPECT_EQ(set.code, kExitOk) << set.err;
  EXPECT_GT(WrittenRevision(set.out), 0u) << set.out;

  Result got = Cache({"get", "ns", "k"});
  EXPECT_EQ(got.code, kExitOk);
  EXPECT_EQ(got.out, "hello");  // raw: no newline added
  EXPECT_EQ(got.err, "");

  Result miss = Cache({"get", "ns", "absent"});
  EXPECT_EQ(miss.code, kExitFailed);
  EXPECT_EQ(miss.out, "");
  EXPECT_EQ(miss.err,
            "cluster2ctl: key 'absent' not found in namespace 'ns'\n");

  // --nx on a present key: not written, the current value printed, exit 1.
  Result kept = Cache({"set", "ns", "k", "other", "--nx"});
  EXPECT_EQ(kept.code, kExitFailed);
  EXPECT_EQ(kept.out, "hello");
  EXPECT_EQ(kept.err,
            "cluster2ctl: key 'k' already has a value (printed); --nx left "
            "it\n");
  EXPECT_EQ(Cache({"get", "ns", "k"}).out, "hello");
  Result fresh = Cache({"set", "ns", "fresh", "new", "--nx"});
  EXPECT_EQ(fresh.code, kExitOk) << fresh.err;
  auto fresh_json = FromJson<v1::GetResponse>(
      Cache({"get", "ns", "fresh", "-o", "json"}).out);
  EXPECT_TRUE(fresh_json.found());
  EXPECT_EQ(fresh_json.value(), "new");

  // "--" lets a value start with dashes.
  EXPECT_EQ(Cache({"set", "ns", "dash", "--", "--v"}).code, kExitOk);
  EXPECT_EQ(Cache({"get", "ns", "dash"}).out, "--v");

  Result deleted = Cache({"del", "ns", "k"});
  EXPECT_EQ(deleted.code, kExitOk);
  EXPECT_EQ(deleted.out, "hello");
  Result again = Cache({"del", "ns", "k"});
  EXPECT_EQ(again.code, kExitFailed);
  EXPECT_EQ(again.out, "");
  EXPECT_EQ(again.err, "cluster2ctl: key 'k' not found in namespace 'ns'\n");
  EXPECT_EQ(Cache({"get", "ns", "k"}).code, kExitFailed);

  // The server's errors: exit 1 with its message.
  Result unknown = Cache({"get", "nope", "k"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_EQ(unknown.err, "cluster2ctl: no namespace 'nope' (Use it first)\n");
  Result empty_key = Cache({"set", "ns", "", "v"});
  EXPECT_EQ(empty_key.code, kExitFailed);
  EXPECT_EQ(empty_key.err, "cluster2ctl: the key is empty\n");
}

TEST_F(CacheVerbsTest, ValuesArePrintedByteForByte) {
  const std::string binary("a\0b\n\xff", 5);
  SetDirect("bin", binary);
  Result got = Cache({"get", "ns", "bin"});
  EXPECT_EQ(got.code, kExitOk);
  EXPECT_EQ(got.out, binary);
  Result deleted = Cache({"del", "ns", "bin"});
  EXPECT_EQ(deleted.out, binary);
}

TEST_F(CacheVerbsTest, TtlTakesDurationsAndPlainSeconds) {
  ASSERT_EQ(Cache({"set", "ns", "hour", "v", "--ttl=1h"}).code, kExitOk);
  auto hour =
      FromJson<v1::GetResponse>(Cache({"get", "ns", "hour", "-o", "json"}).out);
  int64_t in_an_hour = absl::ToUnixMicros(absl::Now() + absl::Hours(1));
  EXPECT_NEAR(static_cast<double>(hour.expires_unix_micros()),
              static_cast<double>(in_an_hour), 60e6);

  ASSERT_EQ(Cache({"set", "ns", "brief", "v", "--ttl", "0.2"}).code, kExitOk);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return Cache({"get", "ns", "brief"}).code == kExitFailed;
      },
      absl::Seconds(5)))
      << "a 0.2 s ttl did not expire";
  EXPECT_EQ(Cache({"get", "ns", "hour"}).code, kExitOk);
}

TEST_F(CacheVerbsTest, KeysFollowsEveryPageOrStopsAtTheLimit) {
  // More than two of the server's 1000-key pages.
  for (int i = 0; i < 2500; ++i) SetDirect(absl::StrFormat("k%04d", i), "v");
  SetDirect("other", "v");

  std::vector<std::string> all = Lines(Cache({"keys", "ns"}).out);
  ASSERT_EQ(all.size(), 2501u);
  for (int i = 0; i < 2500; ++i) ASSERT_EQ(all[i], absl::StrFormat("k%04d", i));
  EXPECT_EQ(all.back(), "other");

  std::vector<std::string> prefixed = Lines(Cache({"keys", "ns", "k1"}).out);
  ASSERT_EQ(prefixed.size(), 1000u);
  EXPECT_EQ(prefixed.front(), "k1000");
  EXPECT_EQ(prefixed.back(), "k1999");

  Result limited = Cache({"keys", "ns", "--limit=1500"});
  EXPECT_EQ(limited.code, kExitOk);
  std::vector<std::string> first = Lines(limited.out);
  ASSERT_EQ(first.size(), 1500u);
  EXPECT_EQ(first.back(), "k1499");
  EXPECT_EQ(Cache({"keys", "ns", "k24", "--limit", "3"}).out,
            "k2400\nk2401\nk2402\n");

  auto json =
      FromJson<v1::KeysResponse>(Cache({"keys", "ns", "o", "-o", "json"}).out);
  ASSERT_EQ(json.keys_size(), 1);
  EXPECT_EQ(json.keys(0), "other");

  Result unknown = Cache({"keys", "nope"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_EQ(unknown.err, "cluster2ctl: no namespace 'nope' (Use it first)\n");
}

TEST_F(CacheVerbsTest, StatsTableAndJson) {
  ASSERT_EQ(Cache({"use", "st"}).code, kExitOk);
  ASSERT_EQ(Cache({"set", "st", "a", "1"}).code, kExitOk);
  ASSERT_EQ(Cache({"get", "st", "a"}).code, kExitOk);
  ASSERT_EQ(Cache({"get", "st", "b"}).code, kExitFailed);

  Result table = Cache({"stats", "st"});
  EXPECT_EQ(table.code, kExitOk) << table.err;
  std::vector<std::string> lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 2u) << table.out;
  EXPECT_EQ(lines[0],
            "NAMESPACE  HITS  MISSES  LOADS  WAITING  ERRORS  KEYS  BYTES");
  std::vector<std::string> row =
      absl::StrSplit(lines[1], ' ', absl::SkipEmpty());
  ASSERT_EQ(row.size(), 8u) << lines[1];
  EXPECT_EQ(std::vector<std::string>(row.begin(), row.begin() + 7),
            (std::vector<std::string>{"st", "1", "1", "0", "0", "0", "1"}));
  uint64_t bytes = 0;
  EXPECT_TRUE(absl::SimpleAtoi(row[7], &bytes) && bytes > 0) << row[7];

  auto json = FromJson<v1::StatsResponse>(Cache({"stats", "-o", "json"}).out);
  ASSERT_EQ(json.namespaces_size(), 2);  // ns and st
  for (const v1::NamespaceStats& stats : json.namespaces()) {
    if (stats.namespace_() != "st") continue;
    EXPECT_EQ(stats.hits(), 1u);
    EXPECT_EQ(stats.misses(), 1u);
    EXPECT_EQ(stats.keys(), 1u);
    EXPECT_EQ(stats.bytes(), bytes);
  }

  Result unknown = Cache({"stats", "nope"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_EQ(unknown.err, "cluster2ctl: no namespace 'nope'\n");
}

TEST_F(CacheVerbsTest, WatchPrintsEachChangeAfterARevision) {
  uint64_t start = WrittenRevision(Cache({"set", "ns", "a", "1"}).out);
  ASSERT_GT(start, 0u);
  // --from makes the start race-free: changes after `start` are all
  // delivered, whether they happen before or after the watch registers.
  Background watch(this,
                   {"watch", "ns", "--from", absl::StrCat(start), "--count=3"});
  uint64_t set_b = WrittenRevision(Cache({"set", "ns", "b", "2"}).out);
  ASSERT_EQ(Cache({"del", "ns", "a"}).code, kExitOk);
  uint64_t set_c = WrittenRevision(Cache({"set", "ns", "c", "x y"}).out);
  Cache({"set", "ns", "d", "after the count"});
  AwaitWatch(watch);
  const Result& watched = watch.result();
  EXPECT_EQ(watched.code, kExitOk) << watched.err;
  std::vector<std::string> lines = Lines(watched.out);
  ASSERT_EQ(lines.size(), 3u) << watched.out;
  EXPECT_EQ(lines[0], absl::StrCat(set_b, " set b 2"));
  std::vector<std::string> del = absl::StrSplit(lines[1], ' ');
  ASSERT_EQ(del.size(), 3u) << lines[1];
  uint64_t del_revision = 0;
  EXPECT_TRUE(absl::SimpleAtoi(del[0], &del_revision));
  EXPECT_GT(del_revision, set_b);
  EXPECT_LT(del_revision, set_c);
  EXPECT_EQ(del[1], "delete");
  EXPECT_EQ(del[2], "a");
  EXPECT_EQ(lines[2], absl::StrCat(set_c, " set c x y"));

  // One key only; the changes are kept, so this returns at once.
  Result one =
      Cache({"watch", "ns", "c", "--from=" + absl::StrCat(start), "--count=1"});
  EXPECT_EQ(one.code, kExitOk);
  EXPECT_EQ(one.out, absl::StrCat(set_c, " set c x y\n"));

  // -o json: one object per line.
  Result json = Cache({"watch", "ns", "b", "--from=" + absl::StrCat(start),
                       "--count=1", "-o", "json"});
  EXPECT_EQ(json.code, kExitOk);
  auto event = FromJson<v1::WatchEvent>(json.out);
  EXPECT_EQ(event.kind(), v1::WatchEvent::KIND_SET);
  EXPECT_EQ(event.key(), "b");
  EXPECT_EQ(event.revision(), set_b);

  Result unknown = Cache({"watch", "nope", "--count=1"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_EQ(unknown.err, "cluster2ctl: no namespace 'nope' (Use it first)\n");
}

TEST_F(CacheVerbsTest, WatchFromAGoneRevisionSaysResync) {
  uint64_t now = WrittenRevision(Cache({"set", "ns", "a", "1"}).out);
  ASSERT_GT(now, 0u);
  // A revision the server has not reached is not kept: resync, then live
  // changes. The watch registers at some point: write until it has seen one.
  Background watch(this, {"watch", "ns", "--from", absl::StrCat(now + 1000000),
                          "--count=1"});
  int writes = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        Cache({"set", "ns", "live", absl::StrCat(writes++)});
        return watch.done();
      },
      absl::Seconds(10)));
  AwaitWatch(watch);
  const Result& watched = watch.result();
  EXPECT_EQ(watched.code, kExitOk) << watched.err;
  std::vector<std::string> lines = Lines(watched.out);
  ASSERT_EQ(lines.size(), 2u) << watched.out;
  EXPECT_EQ(lines[0], "resync");
  std::vector<std::string> set = absl::StrSplit(lines[1], ' ');
  ASSERT_EQ(set.size(), 4u) << lines[1];
  EXPECT_EQ(set[1], "set");
  EXPECT_EQ(set[2], "live");
}

TEST_F(CacheVerbsTest, AStoppedServerIsExitThree) {
  Result reachable = Cache({"get", "ns", "k"});
  ASSERT_EQ(reachable.code, kExitFailed);  // a miss, from a live server

  StopServer();  // SIGKILL leaves its socket file behind: nobody accepts
  Result stale = Cache({"get", "ns", "k"});
  EXPECT_EQ(stale.code, kExitNoMaster);
  EXPECT_TRUE(absl::StartsWith(
      stale.err, "cluster2ctl: no cache server at " + socket_ + " ("))
      << stale.err;
  EXPECT_EQ(Lines(stale.err).size(), 1u);
  EXPECT_EQ(stale.out, "");

  unlink(socket_.c_str());
  Result gone = Cache({"stats"});
  EXPECT_EQ(gone.code, kExitNoMaster);
  EXPECT_EQ(gone.err, "cluster2ctl: no cache server at " + socket_ +
                          " (no such socket; start a cluster with the cache "
                          "enabled, or pass --cache-socket)\n");
}

// A frozen server (SIGSTOP, a deadlock) keeps its connection open and
// answers nothing: without keepalive, `cache watch` waited forever.
TEST_F(CacheVerbsTest, AWatchOfAFrozenServerEnds) {
  Background watch(this, {"watch", "ns"});
  // One round trip of another command: the watch has connected by then.
  // (Had it not, its handshake with the frozen server would time out
  // within gRPC's 20 s connect deadline and end it the same way.)
  ASSERT_EQ(Cache({"set", "ns", "a", "1"}).code, kExitOk);
  server_->Signal(SIGSTOP);
  // Keepalive: a ping every 5 s, 5 s to answer it.
  bool ended = WaitUntil([&] { return watch.done(); }, absl::Seconds(30));
  server_->Signal(SIGCONT);
  if (!ended) {
    ADD_FAILURE() << "the watch of a frozen server did not end";
    StopServer();
  }
  const Result& watched = watch.result();
  EXPECT_EQ(watched.code, kExitNoMaster) << watched.err;
  EXPECT_TRUE(absl::StartsWith(watched.err, "cluster2ctl: no cache server at"))
      << watched.err;
}

}  // namespace
}  // namespace cluster2
