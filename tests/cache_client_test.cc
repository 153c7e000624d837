// End-to-end: the worker library's cache client (cache_client/cache.h) against
// the real cluster2-cache, with real worker processes (cache_worker) for
// the cluster-wide single-flight cases, and SIGKILLs of the server for
// persistence and watch resumption.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache_client/cache.h"
#include "gtest/gtest.h"
#include "tests/testing/cache_workers.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::AwaitCacheWorkers;
using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::CacheWorkersOutcome;
using ::cluster2::testing::Lines;
using ::cluster2::testing::Process;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

class CacheClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = tmp_.path() + "/cache.sock";
    data_ = tmp_.path() + "/data";
    StartServer();
    client_ = Connect();
  }

  void StartServer() {
    unlink(socket_.c_str());
    server_ = std::make_unique<Process>(
        std::vector<std::string>{BinaryPath("cache_server/cluster2-cache"),
                                 "--socket=" + socket_, "--data-dir=" + data_});
    ASSERT_TRUE(WaitUntil([&] { return access(socket_.c_str(), F_OK) == 0; },
                          absl::Seconds(10)))
        << server_->Stderr();
  }

  std::unique_ptr<CacheClient> Connect() {
    CacheClientOptions options;
    options.address = socket_;
    auto client = CacheClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  std::shared_ptr<CacheNamespace> Use(CacheClient& client,
                                      const std::string& name,
                                      CacheNamespaceConfig config = {}) {
    auto space = client.Use(name, config);
    EXPECT_TRUE(space.ok()) << space.status();
    return space.ok() ? *space : nullptr;
  }

  std::unique_ptr<Process> StartWorker(int callers, int load_ms, bool barrier) {
    std::vector<std::string> argv = {BinaryPath("tests/testing/cache_worker"),
                                     "--socket=" + socket_,
                                     "--ns=users",
                                     "--key=42",
                                     absl::StrCat("--callers=", callers),
                                     absl::StrCat("--load-ms=", load_ms)};
    if (barrier) argv.push_back("--barrier");
    return std::make_unique<Process>(argv);
  }

  uint64_t Waiting(const std::string& ns) {
    auto stats = client_->Stats(ns);
    return stats.ok() && stats->size() == 1 ? (*stats)[0].waiting : 0;
  }

  TempDir tmp_;
  std::string socket_;
  std::string data_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<CacheClient> client_;
};

TEST_F(CacheClientTest, EightProcessesFiftyCallersOneLoad) {
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 8; ++i) workers.push_back(StartWorker(50, 300, true));
  for (auto& worker : workers) {
    ASSERT_TRUE(
        WaitUntil([&] { return !Lines(worker->Stdout(), "ready").empty(); },
                  absl::Seconds(20)))
        << worker->Stdout() << worker->Stderr();
  }
  auto barrier = Use(*client_, "barrier");
  ASSERT_TRUE(barrier->Set("go", "1").ok());

  CacheWorkersOutcome outcome = AwaitCacheWorkers(workers);
  EXPECT_EQ(outcome.loads, 1) << "the loader runs in exactly one process";
  EXPECT_EQ(outcome.got, 400);
  EXPECT_EQ(outcome.values.size(), 1u) << "every caller got the loaded value";
  auto stats = client_->Stats("users");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].loads, 1u);
}

TEST_F(CacheClientTest, KilledLeaseHolderHandsTheLoadToAWaiterAtOnce) {
  auto holder = StartWorker(1, 600000, false);  // loads "forever"
  ASSERT_TRUE(
      WaitUntil([&] { return !Lines(holder->Stdout(), "loading").empty(); },
                absl::Seconds(20)))
      << holder->Stderr();
  auto waiter = StartWorker(1, 0, false);
  ASSERT_TRUE(
      WaitUntil([&] { return Waiting("users") == 1; }, absl::Seconds(20)));
  absl::Time killed = absl::Now();
  holder->Signal(SIGKILL);
  ASSERT_TRUE(
      WaitUntil([&] { return !Lines(waiter->Stdout(), "loading").empty(); },
                absl::Seconds(5)));
  EXPECT_LT(absl::Now() - killed, absl::Seconds(1));
  ASSERT_TRUE(waiter->Wait(absl::Seconds(10)).has_value());
  EXPECT_EQ(Lines(waiter->Stdout(), "got ")[0],
            absl::StrCat("got 1 value-", waiter->pid()));
}

TEST_F(CacheClientTest, FailedLoaderErrorReachesWaitersOrPassesTheLease) {
  auto space = Use(*client_, "ns");
  auto other_client = Connect();
  auto other = Use(*other_client, "ns");
  absl::Notification loading, fail;
  std::thread holder([&] {
    auto got = space->GetOrLoad(
        "k", [&](const std::string&) -> absl::StatusOr<std::string> {
          loading.Notify();
          fail.WaitForNotification();
          return absl::UnavailableError("database down");
        });
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  });
  loading.WaitForNotification();
  absl::StatusOr<CacheValue> waited;
  std::thread waiter([&] {
    waited = other->GetOrLoad("k", [](const std::string&) {
      return absl::StatusOr<std::string>("never");
    });
  });
  ASSERT_TRUE(WaitUntil([&] { return Waiting("ns") == 1; }, absl::Seconds(10)));
  fail.Notify();
  holder.join();
  waiter.join();
  EXPECT_EQ(waited.status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(absl::StrContains(waited.status().message(), "database down"));

  // With retry_waiters, the waiter loads instead.
  CacheLoadOptions retry;
  retry.retry_waiters = true;
  absl::Notification loading2, fail2;
  std::thread holder2([&] {
    space
        ->GetOrLoad(
            "k2",
            [&](const std::string&) -> absl::StatusOr<std::string> {
              loading2.Notify();
              fail2.WaitForNotification();
              return absl::UnavailableError("database down");
            },
            retry)
        .IgnoreError();
  });
  loading2.WaitForNotification();
  std::thread waiter2([&] {
    waited = other->GetOrLoad("k2", [](const std::string&) {
      return absl::StatusOr<std::string>("second try");
    });
  });
  ASSERT_TRUE(WaitUntil([&] { return Waiting("ns") == 1; }, absl::Seconds(10)));
  fail2.Notify();
  holder2.join();
  waiter2.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->value, "second try");
}

TEST_F(CacheClientTest, SixteenConcurrentLeaveIfNotNullSetsOneWins) {
  constexpr int kWriters = 16;
  std::vector<std::unique_ptr<CacheClient>> clients;
  std::vector<std::shared_ptr<CacheNamespace>> spaces;
  for (int i = 0; i < kWriters; ++i) {
    clients.push_back(Connect());
    spaces.push_back(Use(*clients.back(), "ns"));
  }
  absl::Barrier start(kWriters);
  std::atomic<int> written{0};
  std::vector<std::string> currents(kWriters);
  std::vector<std::thread> threads;
  CacheSetOptions nx;
  nx.leave_if_not_null = true;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      start.Block();
      auto set = spaces[i]->Set("lock", absl::StrCat("owner-", i), nx);
      ASSERT_TRUE(set.ok()) << set.status();
      if (set->written) {
        ++written;
        currents[i] = absl::StrCat("owner-", i);
      } else {
        currents[i] = set->current;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(written.load(), 1);
  // Everyone agrees on the winner.
  EXPECT_EQ(std::set<std::string>(currents.begin(), currents.end()).size(), 1u);
  EXPECT_EQ(spaces[0]->Get("lock")->value().value, currents[0]);
}

TEST_F(CacheClientTest, ExpiredKeysAreNeverReturnedAndWatchersSeeExpiry) {
  CacheNamespaceConfig config;
  config.expire = absl::Milliseconds(300);
  auto space = Use(*client_, "short", config);
  absl::Notification expired;
  auto watch = space->Watch("k", [&](const CacheWatchEvent& event) {
    if (event.kind == CacheWatchEvent::Kind::kExpire) expired.Notify();
  });
  ASSERT_TRUE(watch->WaitUntilLive(absl::Seconds(5)));
  ASSERT_TRUE(space->Set("k", "v").ok());
  // The server set the TTL before it answered.
  absl::Time written = absl::Now();
  // Read until it is gone: a value is only ever returned before its TTL.
  while (true) {
    absl::Time asked = absl::Now();
    auto got = space->Get("k");
    ASSERT_TRUE(got.ok());
    if (!got->has_value()) break;
    EXPECT_LT(asked - written, absl::Milliseconds(300));
    ASSERT_LT(absl::Now() - written, absl::Seconds(5));
  }
  EXPECT_TRUE(expired.WaitForNotificationWithTimeout(absl::Seconds(5)));
  // A per-key TTL overrides the namespace's.
  CacheSetOptions longer;
  longer.ttl = absl::Hours(1);
  ASSERT_TRUE(space->Set("long", "v", longer).ok());
  EXPECT_TRUE(space->Get("long")->has_value());
}

TEST_F(CacheClientTest, WatchKeepsOrderAndResumesAcrossAServerRestart) {
  CacheNamespaceConfig persistent;
  persistent.persist = true;
  persistent.fsync = CacheNamespaceConfig::Fsync::kAlways;
  auto space = Use(*client_, "events", persistent);
  auto volatile_space = Use(*client_, "volatile");
  auto watcher_client = Connect();
  auto watched = Use(*watcher_client, "events", persistent);
  auto watched_volatile = Use(*watcher_client, "volatile");
  absl::Mutex mu;
  std::vector<CacheWatchEvent> events;
  bool resync = false;
  auto watch = watched->Watch("", [&](const CacheWatchEvent& event) {
    absl::MutexLock lock(&mu);
    events.push_back(event);
  });
  auto volatile_watch =
      watched_volatile->Watch("", [&](const CacheWatchEvent& event) {
        absl::MutexLock lock(&mu);
        resync = resync || event.kind == CacheWatchEvent::Kind::kResync;
      });
  ASSERT_TRUE(watch->WaitUntilLive(absl::Seconds(5)));
  ASSERT_TRUE(volatile_watch->WaitUntilLive(absl::Seconds(5)));
  auto count = [&] {
    absl::MutexLock lock(&mu);
    return events.size();
  };
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(space->Set(absl::StrCat("k", i), absl::StrCat(i)).ok());
  ASSERT_TRUE(volatile_space->Set("v", "1").ok());
  ASSERT_TRUE(WaitUntil([&] { return count() == 50; }, absl::Seconds(10)));

  server_->Signal(SIGKILL);
  ASSERT_TRUE(server_->Wait(absl::Seconds(5)).has_value());
  StartServer();
  // Written while the watcher is still reconnecting: it must catch up.
  for (int i = 50; i < 100; ++i)
    ASSERT_TRUE(space->Set(absl::StrCat("k", i), absl::StrCat(i)).ok());
  ASSERT_TRUE(WaitUntil([&] { return count() >= 100; }, absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(events.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(events[i].kind, CacheWatchEvent::Kind::kSet);
    EXPECT_EQ(events[i].key, absl::StrCat("k", i));
    if (i > 0) EXPECT_GT(events[i].revision, events[i - 1].revision);
  }
  // The non-persistent namespace lost its history with the server: its
  // watcher is told to resync rather than silently missing changes.
  mu.Unlock();
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::MutexLock lock(&mu);
        return resync;
      },
      absl::Seconds(10)));
  mu.Lock();
}

TEST_F(CacheClientTest, AlwaysFsyncLosesNoAcknowledgedWriteToSigkill) {
  CacheNamespaceConfig persistent;
  persistent.persist = true;
  persistent.fsync = CacheNamespaceConfig::Fsync::kAlways;
  auto space = Use(*client_, "durable", persistent);
  std::atomic<int> acked{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (!space->Set(absl::StrCat("k", i), std::string(100, 'a' + i % 26))
               .ok())
        return;
      acked = i + 1;
    }
  });
  ASSERT_TRUE(
      WaitUntil([&] { return acked.load() >= 300; }, absl::Seconds(20)));
  server_->Signal(SIGKILL);
  ASSERT_TRUE(server_->Wait(absl::Seconds(5)).has_value());
  stop = true;
  int acknowledged = acked.load();
  // A write torn by the crash: half a record at the end of the log.
  std::string torn = "\x40\x00\x00\x00\x12\x34\x56\x78\x02partial";
  int fd = open((data_ + "/durable.log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, torn.data(), torn.size()),
            static_cast<ssize_t>(torn.size()));
  close(fd);
  StartServer();
  writer.join();
  // Every write acknowledged before the kill is there.
  for (int i = 0; i < acknowledged; ++i) {
    auto got = space->Get(absl::StrCat("k", i));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value()) << "lost acknowledged write k" << i;
    EXPECT_EQ((*got)->value, std::string(100, 'a' + i % 26));
  }
  ASSERT_TRUE(
      WaitUntil([&] { return absl::StrContains(server_->Stderr(), "torn"); },
                absl::Seconds(5)))
      << server_->Stderr();
  EXPECT_TRUE(space->Set("after", "ok").ok());  // and it serves on
}

TEST_F(CacheClientTest, NearCacheServesHotReadsAndFollowsOtherWriters) {
  CacheNamespaceConfig near_config;
  near_config.near_cache = true;
  auto near = Use(*client_, "hot", near_config);
  auto writer_client = Connect();
  auto writer = Use(*writer_client, "hot");

  ASSERT_TRUE(writer->Set("k", "v1").ok());
  EXPECT_EQ(near->Get("k")->value().value, "v1");  // from the server
  uint64_t before = near->near_hits();
  EXPECT_EQ(near->Get("k")->value().value, "v1");  // from the near-cache
  EXPECT_EQ(near->near_hits(), before + 1);

  // Another process's write reaches the near-cache through the watch, and
  // once the new value was seen the old one never comes back.
  ASSERT_TRUE(writer->Set("k", "v2").ok());
  ASSERT_TRUE(WaitUntil([&] { return near->Get("k")->value().value == "v2"; },
                        absl::Seconds(5)));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(near->Get("k")->value().value, "v2");

  // Read-your-writes.
  ASSERT_TRUE(near->Set("k", "v3").ok());
  EXPECT_EQ(near->Get("k")->value().value, "v3");
  ASSERT_TRUE(near->Delete("k").ok());
  EXPECT_FALSE(near->Get("k")->has_value());

  // Another process's delete.
  ASSERT_TRUE(writer->Set("j", "x").ok());
  ASSERT_TRUE(near->Get("j")->has_value());
  ASSERT_TRUE(writer->Delete("j").ok());
  ASSERT_TRUE(WaitUntil([&] { return !near->Get("j")->has_value(); },
                        absl::Seconds(5)));

  // Expiry is checked locally too.
  CacheSetOptions brief;
  brief.ttl = absl::Milliseconds(200);
  ASSERT_TRUE(writer->Set("e", "soon gone", brief).ok());
  absl::Time written = absl::Now();  // the TTL started before this
  while (true) {
    absl::Time asked = absl::Now();
    auto got = near->Get("e");
    ASSERT_TRUE(got.ok());
    if (!got->has_value()) break;
    EXPECT_LT(asked - written, absl::Milliseconds(200));
    ASSERT_LT(absl::Now() - written, absl::Seconds(5));
  }
}

TEST_F(CacheClientTest, BadInputGetsClearErrorsAndTheServerServesOn) {
  auto space = Use(*client_, "ns");
  auto big = space->Set("big", std::string(10 << 20, 'x'));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  // Larger than the server takes in one message: refused by gRPC itself,
  // and only that operation fails (it travels alone, not on the stream).
  auto huge = space->Set("huge", std::string(20 << 20, 'x'));
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(space->Set("", "v").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(space->Get(std::string(2000, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Use("no spaces allowed").status().code(),
            absl::StatusCode::kInvalidArgument);
  CacheNamespaceConfig other;
  other.expire = absl::Seconds(5);
  EXPECT_EQ(client_->Use("ns", other).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(space->Set("fine", "v").ok());
  EXPECT_EQ(space->Keys().value(), std::vector<std::string>{"fine"});
}

}  // namespace
}  // namespace cluster2
