// RedisStore against a real redis-server (Debian's, on a Unix socket of its
// own), with two stores on it standing for the cache servers of two hosts.
#include "cache_server/internal/redis_store.h"

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/cache_errors.h"
#include "gtest/gtest.h"

extern char** environ;

namespace cluster2 {
namespace {

constexpr char kRedis[] = "/usr/bin/redis-server";

// A redis-server on a socket under a short /tmp directory (Bazel's
// TEST_TMPDIR is too long for a socket path).
class RedisServer {
 public:
  RedisServer() {
    char dir[] = "/tmp/c2rs-XXXXXX";
    dir_ = mkdtemp(dir);
    socket_ = dir_ + "/redis.sock";
    Start();
  }
  ~RedisServer() {
    Kill();
    std::string command = "rm -rf " + dir_;
    (void)std::system(command.c_str());
  }

  void Start() {
    std::vector<std::string> args = {kRedis,  "--port", "0", "--unixsocket",
                                     socket_, "--save", "",  "--appendonly",
                                     "no",    "--dir",  dir_};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    unlink(socket_.c_str());
    ASSERT_EQ(
        posix_spawn(&pid_, kRedis, nullptr, nullptr, argv.data(), environ), 0);
    // Ready once its socket answers PING.
    RedisConnection probe(*ParseRedisAddress("unix:" + socket_),
                          absl::Milliseconds(200));
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline && !probe.Command({"PING"}).ok())
      absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(probe.Command({"PING"}).ok()) << "redis-server did not start";
  }

  void Kill() {
    if (pid_ == 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  RedisStore::Options StoreOptions() const {
    RedisStore::Options options;
    options.address = *ParseRedisAddress("unix:" + socket_);
    return options;
  }

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = 0;
};

// Collects a waiter's answers.
class Answers {
 public:
  CacheBackend::Waiter Waiter() {
    return [this](absl::StatusOr<CacheGetResult> result) {
      absl::MutexLock lock(&mu_);
      answers_.push_back(std::move(result));
    };
  }
  // The next answer, waiting at most `timeout`.
  std::optional<absl::StatusOr<CacheGetResult>> Next(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !answers_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&any), timeout))
      return std::nullopt;
    auto answer = std::move(answers_.front());
    answers_.pop_front();
    return answer;
  }

 private:
  absl::Mutex mu_;
  std::deque<absl::StatusOr<CacheGetResult>> answers_ ABSL_GUARDED_BY(mu_);
};

class Recorder final : public CacheWatcher {
 public:
  void OnEvent(const CacheEvent& event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<CacheEvent> AwaitEvents(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return events_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<CacheEvent> events_ ABSL_GUARDED_BY(mu_);
};

class RedisStoreTest : public ::testing::Test {
 protected:
  RedisStoreTest()
      : a_(std::make_unique<RedisStore>(redis_.StoreOptions(), &clock_)),
        b_(std::make_unique<RedisStore>(redis_.StoreOptions(), &clock_)) {}

  void Use(RedisStore& store, const std::string& ns) {
    bool conflict = false;
    ASSERT_TRUE(store.Use(ns, {}, &conflict).ok());
  }

  RedisServer redis_;
  RealClock clock_;
  std::unique_ptr<RedisStore> a_, b_;  // two hosts' cache servers
};

TEST_F(RedisStoreTest, ValuesAreSharedBetweenServersWithRevisionsAndTtl) {
  Use(*a_, "ns");
  EXPECT_EQ(a_->Get("nope", "k").status().code(), absl::StatusCode::kNotFound);
  const std::string binary("v\0\xff", 3);
  auto set = a_->Set("ns", std::string("k\0", 2), binary, absl::ZeroDuration(),
                     false, "");
  ASSERT_TRUE(set.ok()) << set.status();
  auto got = b_->Get("ns", std::string("k\0", 2));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, binary);
  EXPECT_EQ(got->revision, set->revision);
  // leave_if_not_null keeps the value; a later write has a later revision.
  auto kept = b_->Set("ns", std::string("k\0", 2), "other",
                      absl::ZeroDuration(), true, "");
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(kept->written);
  EXPECT_EQ(kept->current, binary);
  auto later = b_->Set("ns", "k2", "x", absl::Milliseconds(300), false, "");
  ASSERT_TRUE(later.ok());
  EXPECT_GT(later->revision, set->revision);
  ASSERT_TRUE(later->expires_at.has_value());
  EXPECT_EQ(*a_->Keys("ns", "", 0, ""),
            (std::vector<std::string>{std::string("k\0", 2), "k2"}));
  // Expiry is Redis's TTL.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline && a_->Get("ns", "k2")->found)
    absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(a_->Get("ns", "k2")->found);
  auto deleted = a_->Delete("ns", std::string("k\0", 2));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->old_value, binary);
  EXPECT_FALSE(b_->Get("ns", std::string("k\0", 2))->found);
  // The first Use's options win, on every server.
  CacheNamespaceOptions expiring;
  expiring.expire = absl::Seconds(9);
  bool conflict = false;
  EXPECT_EQ(b_->Use("ns", expiring, &conflict)->expire, absl::ZeroDuration());
  EXPECT_TRUE(conflict);
}

TEST_F(RedisStoreTest, OneLoaderAcrossServersAndItsValueWakesTheOthers) {
  Use(*a_, "ns");
  ASSERT_TRUE(a_->OpenHold("proc-a").ok());
  ASSERT_TRUE(b_->OpenHold("proc-b").ok());
  EXPECT_EQ(b_->OpenHold("proc-b").code(), absl::StatusCode::kAlreadyExists);
  Answers answers;
  auto first = a_->GetOrLease("ns", "k", "proc-a", absl::Seconds(30),
                              answers.Waiter(), nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  const std::string token = (*first)->lease_token;
  EXPECT_FALSE(token.empty());
  uint64_t id = 0;
  auto parked = b_->GetOrLease("ns", "k", "proc-b", absl::Seconds(30),
                               answers.Waiter(), &id);
  ASSERT_TRUE(parked.ok());
  EXPECT_FALSE(parked->has_value()) << "the second caller waits";
  // Another process's token does not hold the lease.
  EXPECT_EQ(GetCacheError(
                b_->Set("ns", "k", "x", absl::ZeroDuration(), false, "bogus")
                    .status()),
            CacheError::kLeaseNotHeld);
  ASSERT_TRUE(
      a_->Set("ns", "k", "loaded", absl::ZeroDuration(), false, token).ok());
  auto woken = answers.Next(absl::Seconds(5));
  ASSERT_TRUE(woken.has_value()) << "the parked caller on the other server";
  ASSERT_TRUE(woken->ok());
  EXPECT_EQ((*woken)->value, "loaded");
  EXPECT_TRUE((*woken)->lease_token.empty());
  EXPECT_EQ(b_->Namespaces("ns")[0].counters.hits, 1u);
}

TEST_F(RedisStoreTest, ADeadHoldersLeasePassesOnAtOnceAndAFailedLoadIsTold) {
  Use(*a_, "ns");
  ASSERT_TRUE(a_->OpenHold("proc-a").ok());
  ASSERT_TRUE(b_->OpenHold("proc-b").ok());
  Answers unused, answers;
  ASSERT_TRUE(a_->GetOrLease("ns", "k", "proc-a", absl::Seconds(60),
                             unused.Waiter(), nullptr)
                  ->has_value());
  ASSERT_FALSE(b_->GetOrLease("ns", "k", "proc-b", absl::Seconds(60),
                              answers.Waiter(), nullptr)
                   ->has_value());
  const absl::Time ended = absl::Now();
  a_->EndHold("proc-a");  // the loading process died
  auto passed = answers.Next(absl::Seconds(5));
  ASSERT_TRUE(passed.has_value());
  ASSERT_TRUE(passed->ok());
  EXPECT_FALSE((*passed)->lease_token.empty()) << "the lease passed on";
  EXPECT_LT(absl::Now() - ended, absl::Seconds(1)) << "not at its TTL";
  // Its new holder fails: a parked caller on the other server is told.
  ASSERT_TRUE(a_->OpenHold("proc-a2").ok());
  ASSERT_FALSE(a_->GetOrLease("ns", "k", "proc-a2", absl::Seconds(60),
                              answers.Waiter(), nullptr)
                   ->has_value());
  ASSERT_TRUE(
      b_->ReleaseLease("ns", "k", (*passed)->lease_token, "db down", false)
          .ok());
  auto told = answers.Next(absl::Seconds(5));
  ASSERT_TRUE(told.has_value());
  ASSERT_TRUE(told->ok());
  EXPECT_EQ((*told)->load_error, "db down");
}

TEST_F(RedisStoreTest, ALeaseOfAHostThatVanishedPassesOnAtItsTtl) {
  Use(*a_, "ns");
  ASSERT_TRUE(a_->OpenHold("proc-a").ok());
  ASSERT_TRUE(b_->OpenHold("proc-b").ok());
  Answers unused, answers;
  ASSERT_TRUE(a_->GetOrLease("ns", "k", "proc-a", absl::Milliseconds(400),
                             unused.Waiter(), nullptr)
                  ->has_value());
  ASSERT_FALSE(b_->GetOrLease("ns", "k", "proc-b", absl::Seconds(60),
                              answers.Waiter(), nullptr)
                   ->has_value());
  a_.reset();  // the whole host is gone: nobody releases its lease
  auto passed = answers.Next(absl::Seconds(5));
  ASSERT_TRUE(passed.has_value());
  ASSERT_TRUE(passed->ok());
  EXPECT_FALSE((*passed)->lease_token.empty());
}

TEST_F(RedisStoreTest, AWatchSeesTheOtherServersWritesInOrderAndResumes) {
  Use(*a_, "ns");
  Recorder recorder;
  ASSERT_FALSE(*a_->Watch("ns", "", 0, &recorder));
  uint64_t first = 0;
  for (int i = 0; i < 20; ++i) {
    auto set = b_->Set("ns", absl::StrCat("k", i), absl::StrCat("v", i),
                       absl::ZeroDuration(), false, "");
    ASSERT_TRUE(set.ok());
    if (i == 0) first = set->revision;
  }
  ASSERT_TRUE(b_->Delete("ns", "k3").ok());
  std::vector<CacheEvent> events = recorder.AwaitEvents(21, absl::Seconds(5));
  ASSERT_EQ(events.size(), 21u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(events[i].key, absl::StrCat("k", i));
    EXPECT_EQ(events[i].revision, first + i);
  }
  EXPECT_EQ(events[20].kind, CacheEvent::Kind::kDelete);
  a_->Unwatch(&recorder);
  // Resuming from a revision replays what followed it; from one long gone
  // (before the namespace's first change), it says resync.
  Recorder resumed;
  ASSERT_FALSE(*b_->Watch("ns", "k5", first + 2, &resumed));
  std::vector<CacheEvent> replayed = resumed.AwaitEvents(1, absl::Seconds(2));
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].value, "v5");
  b_->Unwatch(&resumed);
  Recorder stale;
  EXPECT_TRUE(*b_->Watch("ns", "", 1, &stale));
  b_->Unwatch(&stale);
}

TEST_F(RedisStoreTest, ARedisThatDiesGivesUnavailableAtOnceAndIsUsedAgain) {
  Use(*a_, "ns");
  redis_.Kill();
  const absl::Time asked = absl::Now();
  absl::Status down = a_->Get("ns", "k").status();
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_NE(down.message().find("redis at unix:"), std::string::npos) << down;
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1));
  redis_.Start();
  // A Redis without persistence lost the namespace: Use it again.
  EXPECT_EQ(a_->Get("ns", "k").status().code(), absl::StatusCode::kNotFound);
  Use(*a_, "ns");
  EXPECT_TRUE(a_->Set("ns", "k", "v", absl::ZeroDuration(), false, "").ok());
  EXPECT_EQ(b_->Get("ns", "k")->value, "v");
}

}  // namespace
}  // namespace cluster2
