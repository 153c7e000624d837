// The cache client against a real cluster2-cache, which the test starts,
// kills and restarts on one short socket path. (The in-process
// CacheServer::Start would do as well, but //cache_server:cache_server is
// visible to //master only.) The lease hand-off runs its first holder in a
// child process: this binary started again with --hold-lease.
#include "cache_client/cache.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache_client/internal/client.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

std::string Runfile(const std::string& path) {
  const char* dir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(dir ? dir : ".", "/", workspace ? workspace : "cluster2",
                      "/", path);
}

bool Connectable(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

// Waits for `condition` (re-checked every millisecond) up to `wait`.
template <typename F>
bool WaitUntil(F condition, absl::Duration wait = absl::Seconds(10)) {
  absl::Time deadline = absl::Now() + wait;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/c2ccXXXXXX";  // short: sun_path has 108 bytes
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/s";
    StartServer();
  }
  void TearDown() override {
    StopServer();
    system(("rm -rf " + dir_).c_str());
  }
  void StartServer() {
    server_ = fork();
    if (server_ == 0) {
      std::string binary = Runfile("cache_server/cluster2-cache");
      std::string socket = "--socket=" + socket_;
      std::string data = "--data-dir=" + dir_ + "/data";
      execl(binary.c_str(), binary.c_str(), socket.c_str(), data.c_str(),
            nullptr);
      _exit(127);
    }
    ASSERT_TRUE(WaitUntil([&] { return Connectable(socket_); }));
  }
  void StopServer() {
    if (server_ <= 0) return;
    kill(server_, SIGKILL);
    waitpid(server_, nullptr, 0);
    server_ = 0;
    unlink(socket_.c_str());
  }
  std::unique_ptr<cache_internal::ClientImpl> NewClient() {
    CacheClientOptions options;
    options.address = "unix:" + socket_;
    return std::make_unique<cache_internal::ClientImpl>(options);
  }

  std::string dir_, socket_;
  pid_t server_ = 0;
};

TEST_F(CacheTest, OperationsFromManyThreadsShareBatches) {
  auto client = NewClient();
  auto space = *client->Use("batch", {});
  constexpr int kThreads = 16, kOps = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string key = absl::StrCat("k", t, "-", i);
        if (!space->Set(key, "v").ok()) ++failures;
        auto got = space->Get(key);
        if (!got.ok() || !got->has_value() || (*got)->value != "v") ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  // 3,200 operations, at most 16 at once: they shared batches.
  EXPECT_LT(client->batches_sent(), kThreads * kOps);
  std::cerr << "batches: " << client->batches_sent() << " for "
            << kThreads * kOps * 2 << " operations\n";
}

TEST_F(CacheTest, OperationsStartedFromCallbacksJoinTheNextBatch) {
  auto client = NewClient();
  auto space = *client->Use("chain", {});
  constexpr int kChains = 8, kLength = 200;
  absl::Mutex mu;
  int finished = 0, failures = 0;
  std::function<void(int, int)> step = [&](int chain, int i) {
    space->SetAsync(absl::StrCat("c", chain), absl::StrCat(i), {},
                    [&, chain, i](absl::StatusOr<CacheSetOutcome> set) {
                      absl::MutexLock lock(&mu);
                      if (!set.ok()) ++failures;
                      if (i + 1 == kLength) {
                        ++finished;
                        return;
                      }
                      step(chain, i + 1);
                    });
  };
  for (int c = 0; c < kChains; ++c) step(c, 0);
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(
      mu.AwaitWithTimeout(absl::Condition(
                              +[](int* n) { return *n == kChains; }, &finished),
                          absl::Seconds(20)));
  EXPECT_EQ(failures, 0);
  // Each answer's callbacks start the next ops, which leave together in
  // the next batch: about two batches per round (two may be in flight, so
  // the chains split over them), never one per operation (1,600). A fast
  // server splits the rounds a little more (406 batches seen under ASan
  // with the one-thread server), so the bound is on the ratio.
  EXPECT_LE(client->batches_sent(), kChains * kLength / 3);
}

TEST_F(CacheTest, ABlockingCallFromACallbackFailsInsteadOfDeadlocking) {
  auto client = NewClient();
  auto space = *client->Use("reentry", {});
  absl::Notification done;
  absl::Status inner;
  space->SetAsync("k", "v", {}, [&](absl::StatusOr<CacheSetOutcome>) {
    inner = space->Get("k").status();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(inner.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CacheTest, AWatchResumesAcrossAServerRestart) {
  CacheNamespaceConfig persistent;
  persistent.persist = true;
  persistent.fsync = CacheNamespaceConfig::Fsync::kAlways;
  auto writer = NewClient();
  auto watcher = NewClient();
  auto written = *writer->Use("events", persistent);
  auto watched = *watcher->Use("events", persistent);
  auto volatile_space = *watcher->Use("volatile", {});
  absl::Mutex mu;
  std::vector<CacheWatchEvent> events;
  bool resync = false;
  auto watch = watched->Watch("", [&](const CacheWatchEvent& event) {
    absl::MutexLock lock(&mu);
    events.push_back(event);
  });
  auto volatile_watch =
      volatile_space->Watch("", [&](const CacheWatchEvent& event) {
        absl::MutexLock lock(&mu);
        resync = resync || event.kind == CacheWatchEvent::Kind::kResync;
      });
  ASSERT_TRUE(watch->WaitUntilLive(absl::Seconds(5)));
  ASSERT_TRUE(volatile_watch->WaitUntilLive(absl::Seconds(5)));
  auto count = [&] {
    absl::MutexLock lock(&mu);
    return events.size();
  };
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(written->Set(absl::StrCat("k", i), absl::StrCat(i)).ok());
  ASSERT_TRUE(volatile_space->Set("v", "1").ok());
  ASSERT_TRUE(WaitUntil([&] { return count() == 20; }));

  StopServer();
  StartServer();
  // Written while the watcher is reconnecting: it must catch up.
  for (int i = 20; i < 40; ++i)
    ASSERT_TRUE(written->Set(absl::StrCat("k", i), absl::StrCat(i)).ok());
  ASSERT_TRUE(WaitUntil([&] { return count() >= 40; }));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(events.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(events[i].kind, CacheWatchEvent::Kind::kSet);
    EXPECT_EQ(events[i].key, absl::StrCat("k", i));
    if (i > 0) {
      EXPECT_GT(events[i].revision, events[i - 1].revision);
    }
  }
  // The volatile namespace's revision is gone: it is told to resync.
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&resync), absl::Seconds(10)));
}

TEST_F(CacheTest, TheNextWaiterLoadsWhenTheLeaseHoldersHoldEnds) {
  // The first holder: a process that takes the lease and never loads.
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t holder = fork();
  if (holder == 0) {
    dup2(out[1], 1);
    execl("/proc/self/exe", "cache_test", "--hold-lease", socket_.c_str(),
          nullptr);
    _exit(127);
  }
  close(out[1]);
  char line[64] = {};
  ASSERT_GT(read(out[0], line, sizeof(line) - 1), 0);
  EXPECT_EQ(std::string(line), "loading\n");

  auto client = NewClient();
  auto space = *client->Use("lease", {});
  std::atomic<int> loads{0};
  absl::StatusOr<CacheValue> got = absl::UnknownError("not yet");
  std::thread waiter([&] {
    got = space->GetOrLoad("k", [&](const std::string&) {
      ++loads;
      return absl::StatusOr<std::string>("second");
    });
  });
  // Once the waiter is parked on the holder's lease, the holder dies.
  ASSERT_TRUE(WaitUntil([&] {
    auto stats = client->Stats("lease");
    return stats.ok() && !stats->empty() && (*stats)[0].waiting == 1;
  }));
  EXPECT_EQ(loads.load(), 0);
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  waiter.join();
  close(out[0]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value, "second");
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ((*space->Get("k"))->value, "second");
}

TEST_F(CacheTest, TheNearCacheFollowsOtherProcessesWritesAndItsOwn) {
  CacheNamespaceConfig near;
  near.near_cache = true;
  auto reader = NewClient();
  auto writer = NewClient();
  auto cached = *reader->Use("near", near);
  auto other = *writer->Use("near", {});
  ASSERT_TRUE(other->Set("k", "v1").ok());
  EXPECT_EQ((*cached->Get("k"))->value, "v1");  // fills it
  uint64_t hits = cached->near_hits();
  EXPECT_EQ((*cached->Get("k"))->value, "v1");
  EXPECT_EQ(cached->near_hits(), hits + 1);  // no round trip
  // Another process's write arrives on the watch.
  ASSERT_TRUE(other->Set("k", "v2").ok());
  ASSERT_TRUE(WaitUntil([&] { return (*cached->Get("k"))->value == "v2"; }));
  // Its own write is read back at once, from the near-cache.
  ASSERT_TRUE(cached->Set("k", "v3").ok());
  hits = cached->near_hits();
  EXPECT_EQ((*cached->Get("k"))->value, "v3");
  EXPECT_EQ(cached->near_hits(), hits + 1);
  // A delete elsewhere empties it.
  ASSERT_TRUE(other->Delete("k").ok());
  ASSERT_TRUE(WaitUntil([&] { return !cached->Get("k")->has_value(); }));
  // While the server restarts, reads bypass it; then it serves again.
  StopServer();
  StartServer();
  auto again = writer->Use("near", {});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Set("k", "v4").ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto got = cached->Get("k");
    return got.ok() && got->has_value() && (*got)->value == "v4";
  }));
}

// The child of the lease test: takes the lease of "k" and never loads.
int HoldLease(const char* socket) {
  CacheClientOptions options;
  options.address = absl::StrCat("unix:", socket);
  auto client = CacheClient::Connect(options);
  auto space = (*client)->Use("lease", {});
  auto never = (*space)->GetOrLoad(
      "k", [](const std::string&) -> absl::StatusOr<std::string> {
        printf("loading\n");
        fflush(stdout);
        pause();  // until SIGKILL
        return "first";
      });
  return never.ok() ? 1 : 2;
}

}  // namespace
}  // namespace cluster2

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--hold-lease")
    return cluster2::HoldLease(argv[2]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
