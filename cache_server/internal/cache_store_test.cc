#include "cache_server/internal/cache_store.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cache_server/cache_errors.h"
#include "common/fake_clock.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class CacheStoreTest : public ::testing::Test {
 protected:
  CacheStoreTest() : store_({16, 64}, &clock_) {
    bool conflict;
    EXPECT_TRUE(store_.Use("ns", {}, &conflict).ok());
    for (const char* client : {"a", "b", "c", "loader", "late", "dead", "alive",
                               "patient", "holder", "waiter"})
      EXPECT_TRUE(store_.OpenHold(client).ok());
    for (int i = 0; i < 8; ++i)
      EXPECT_TRUE(store_.OpenHold("waiter" + std::to_string(i)).ok());
    for (int i = 0; i < 8; ++i)
      EXPECT_TRUE(store_.OpenHold("p" + std::to_string(i)).ok());
  }

  // Parks a get-or-load; the result lands in `results` by index (an error
  // as a result with `error` set).
  uint64_t Park(const std::string& client, std::vector<CacheGetResult>* results,
                std::vector<absl::Status>* errors = nullptr,
                absl::Duration wait = absl::InfiniteDuration()) {
    uint64_t id = 0;
    auto got = store_.GetOrLease(
        "ns", "k", client, absl::Seconds(30),
        [this, results, errors](absl::StatusOr<CacheGetResult> r) {
          // A wait's end may come on the timer queue's own thread.
          absl::MutexLock lock(&answers_mu_);
          if (r.ok()) {
            results->push_back(*r);
          } else if (errors != nullptr) {
            errors->push_back(r.status());
          }
        },
        &id, wait);
    EXPECT_TRUE(got.ok());
    EXPECT_FALSE(got->has_value()) << "expected to be parked";
    return id;
  }

  // True once `errors` holds `n` answers (within 5 s).
  bool AwaitErrors(const std::vector<absl::Status>* errors, size_t n) {
    absl::MutexLock lock(&answers_mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answers_mu_) {
      return errors->size() >= n;
    };
    return answers_mu_.AwaitWithTimeout(absl::Condition(&enough),
                                        absl::Seconds(5));
  }

  absl::Mutex answers_mu_;  // the waiters' pushes
  FakeClock clock_;
  CacheStore store_;
};

TEST_F(CacheStoreTest, UseValidatesAndTheFirstUseWins) {
  bool conflict = false;
  CacheNamespaceOptions minute{false, absl::Minutes(1)};
  EXPECT_EQ(store_.Use("bad name", {}, &conflict).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.Use("", {}, &conflict).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = store_.Use("a", minute, &conflict);
  EXPECT_FALSE(conflict);
  auto second = store_.Use("a", {}, &conflict);
  EXPECT_TRUE(conflict);
  EXPECT_TRUE(*second == minute);
  // This store has no data directory: nothing can persist.
  EXPECT_EQ(store_.Use("p", {true}, &conflict).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CacheStoreTest, SetGetDeleteAndLimits) {
  EXPECT_FALSE(store_.Get("ns", "k")->found);
  auto set = store_.Set("ns", "k", "v1", absl::ZeroDuration(), false, "");
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->written);
  CacheGetResult got = *store_.Get("ns", "k");
  EXPECT_TRUE(got.found);
  EXPECT_EQ(got.value, "v1");
  EXPECT_EQ(got.revision, set->revision);
  CacheDeleteResult deleted = *store_.Delete("ns", "k");
  EXPECT_EQ(*deleted.old_value, "v1");
  EXPECT_GT(deleted.revision, set->revision);
  EXPECT_FALSE(store_.Delete("ns", "k")->old_value.has_value());
  EXPECT_EQ(store_.Get("nope", "k").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.Get("ns", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.Get("ns", std::string(17, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store_
          .Set("ns", "k", std::string(65, 'v'), absl::ZeroDuration(), false, "")
          .status()
          .code(),
      absl::StatusCode::kResourceExhausted);
}

TEST_F(CacheStoreTest, ExpiredKeysAreInvisibleAtOnceAndSwept) {
  bool conflict;
  ASSERT_TRUE(store_.Use("short", {false, absl::Seconds(10)}, &conflict).ok());
  ASSERT_TRUE(
      store_.Set("short", "a", "1", absl::ZeroDuration(), false, "").ok());
  ASSERT_TRUE(store_.Set("short", "b", "2", absl::Seconds(60), false, "")
                  .ok());  // per key
  ASSERT_TRUE(store_.Set("ns", "c", "3", absl::Seconds(5), false, "").ok());
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(store_.Get("ns", "c")->found) << "expired exactly at its TTL";
  EXPECT_TRUE(store_.Get("short", "a")->found);
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(store_.Get("short", "a")->found);
  EXPECT_TRUE(store_.Get("short", "b")->found);
  EXPECT_EQ(*store_.Keys("short", "", 10, ""), std::vector<std::string>{"b"});
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(store_.Sweep(), 1u);
}

TEST_F(CacheStoreTest, KeysByPrefixInPages) {
  for (std::string key : {"a1", "a2", "a3", "b1"}) {
    ASSERT_TRUE(
        store_.Set("ns", key, "x", absl::ZeroDuration(), false, "").ok());
  }
  EXPECT_EQ(*store_.Keys("ns", "a", 2, ""),
            (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(*store_.Keys("ns", "a", 2, "a2"), std::vector<std::string>{"a3"});
  EXPECT_EQ(*store_.Keys("ns", "", 10, ""),
            (std::vector<std::string>{"a1", "a2", "a3", "b1"}));
}

TEST_F(CacheStoreTest, SixteenConcurrentLeaveIfNotNullSetsOneWins) {
  std::atomic<int> written{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto set = store_.Set("ns", "k", std::to_string(i), absl::ZeroDuration(),
                            true, "");
      if (set.ok() && set->written) ++written;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(written.load(), 1);
  auto loser = store_.Set("ns", "k", "late", absl::ZeroDuration(), true, "");
  EXPECT_FALSE(loser->written);
  EXPECT_EQ(loser->current, store_.Get("ns", "k")->value);
}

TEST_F(CacheStoreTest, GetOrLeaseIsSingleFlightAndParkedCallersGetTheValue) {
  uint64_t id = 0;
  auto first =
      store_.GetOrLease("ns", "k", "loader", absl::Seconds(30), nullptr, &id);
  ASSERT_TRUE(first.ok() && first->has_value());
  std::string token = (*first)->lease_token;
  ASSERT_FALSE(token.empty());
  std::vector<CacheGetResult> results;
  for (int i = 0; i < 50; ++i) Park("waiter" + std::to_string(i % 5), &results);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(store_.Set("ns", "k", "v", absl::ZeroDuration(), false, "wrong")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      store_.Set("ns", "k", "loaded", absl::ZeroDuration(), false, token).ok());
  ASSERT_EQ(results.size(), 50u);
  for (const CacheGetResult& r : results) {
    EXPECT_TRUE(r.found);
    EXPECT_EQ(r.value, "loaded");
  }
  // Now a hit: no lease.
  auto hit =
      store_.GetOrLease("ns", "k", "late", absl::Seconds(30), nullptr, &id);
  EXPECT_TRUE((*hit)->found);
  EXPECT_TRUE((*hit)->lease_token.empty());
}

TEST_F(CacheStoreTest, ConcurrentCallersOnOneMissLoadExactlyOnce) {
  std::atomic<int> leases{0};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int process = 0; process < 8; ++process) {
    threads.emplace_back([&, process] {
      for (int call = 0; call < 50; ++call) {
        uint64_t id = 0;
        auto got = store_.GetOrLease(
            "ns", "k", "p" + std::to_string(process), absl::Seconds(30),
            [&](absl::StatusOr<CacheGetResult> r) {
              if (r.ok() && r->found && r->value == "once") ++answered;
            },
            &id);
        if (got.ok() && got->has_value()) {
          if (!(*got)->lease_token.empty()) {
            ++leases;
            // The loader: runs once, then sets.
            ASSERT_TRUE(store_
                            .Set("ns", "k", "once", absl::ZeroDuration(), false,
                                 (*got)->lease_token)
                            .ok());
          } else if ((*got)->found) {
            ++answered;
          }
          if (!(*got)->lease_token.empty()) ++answered;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(leases.load(), 1);
  EXPECT_EQ(answered.load(), 400);
}

TEST_F(CacheStoreTest, AFailedLoaderFailsItsWaitersOrPassesTheLeaseOnRetry) {
  uint64_t id = 0;
  std::string token =
      (*store_.GetOrLease("ns", "k", "a", absl::Seconds(30), nullptr, &id))
          ->lease_token;
  std::vector<CacheGetResult> results;
  Park("b", &results);
  Park("c", &results);
  ASSERT_TRUE(
      store_.ReleaseLease("ns", "k", token, "db down", /*retry=*/false).ok());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].load_error, "db down");
  EXPECT_FALSE(results[0].found);

  results.clear();
  token = (*store_.GetOrLease("ns", "k", "a", absl::Seconds(30), nullptr, &id))
              ->lease_token;
  Park("b", &results);
  Park("c", &results);
  ASSERT_TRUE(store_.ReleaseLease("ns", "k", token, "", /*retry=*/true).ok());
  ASSERT_EQ(results.size(), 1u) << "only the next waiter gets the lease";
  EXPECT_FALSE(results[0].lease_token.empty());
  EXPECT_EQ(store_.ReleaseLease("ns", "k", token, "", false).code(),
            absl::StatusCode::kFailedPrecondition)
      << "the old token no longer holds the lease";
  ASSERT_TRUE(store_
                  .Set("ns", "k", "v", absl::ZeroDuration(), false,
                       results[0].lease_token)
                  .ok());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].value, "v");
}

TEST_F(CacheStoreTest, ADeadHolderPassesItsLeaseAtOnceAndALapsedOneOnSweep) {
  uint64_t id = 0;
  ASSERT_TRUE(
      store_.GetOrLease("ns", "k", "dead", absl::Seconds(30), nullptr, &id)
          .ok());
  std::vector<CacheGetResult> results;
  Park("alive", &results);
  store_.EndHold("dead");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].lease_token.empty())
      << "the waiter loads instead, at once";

  // The new holder never comes back: its TTL passes it on at the sweep.
  std::vector<CacheGetResult> later;
  Park("patient", &later);
  clock_.Advance(absl::Seconds(31));
  store_.Sweep();
  ASSERT_EQ(later.size(), 1u);
  EXPECT_FALSE(later[0].lease_token.empty());
}

TEST_F(CacheStoreTest, ADeadHolderNeverGetsItsOwnLeaseBack) {
  // Two threads of one process: one holds the lease, one is parked; a
  // third caller is another process. The process dies.
  auto first = store_.GetOrLease(
      "ns", "k", "dead", absl::Seconds(30),
      [](absl::StatusOr<CacheGetResult>) {}, nullptr);
  ASSERT_TRUE(first.ok() && first->has_value());
  std::vector<CacheGetResult> own, other;
  std::vector<absl::Status> own_errors;
  Park("dead", &own, &own_errors);
  Park("alive", &other);
  store_.EndHold("dead");
  EXPECT_TRUE(own.empty()) << "its own parked call is told, not served";
  ASSERT_EQ(own_errors.size(), 1u);
  EXPECT_EQ(own_errors[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(GetCacheError(own_errors[0]), CacheError::kHoldLost);
  ASSERT_EQ(other.size(), 1u);
  EXPECT_FALSE(other[0].lease_token.empty()) << "the other process loads";
}

TEST_F(CacheStoreTest, DeleteRevokesALoadUnderWay) {
  auto first = store_.GetOrLease(
      "ns", "k", "holder", absl::Seconds(30),
      [](absl::StatusOr<CacheGetResult>) {}, nullptr);
  ASSERT_TRUE(first.ok() && first->has_value());
  std::string stale_token = (*first)->lease_token;
  std::vector<CacheGetResult> waiter;
  Park("waiter", &waiter);
  ASSERT_TRUE(store_.Delete("ns", "k").ok());  // an invalidation
  ASSERT_EQ(waiter.size(), 1u);
  EXPECT_FALSE(waiter[0].lease_token.empty()) << "a fresh load";
  // The old loader's value may predate the invalidation: refused.
  EXPECT_EQ(
      store_.Set("ns", "k", "stale", absl::ZeroDuration(), false, stale_token)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_
                  .Set("ns", "k", "fresh", absl::ZeroDuration(), false,
                       waiter[0].lease_token)
                  .ok());
}

TEST_F(CacheStoreTest, CancelWaiterSaysWhetherItWasStillParked) {
  auto first = store_.GetOrLease(
      "ns", "k", "holder", absl::Seconds(30),
      [](absl::StatusOr<CacheGetResult>) {}, nullptr);
  ASSERT_TRUE(first.ok());
  std::vector<CacheGetResult> results;
  uint64_t id = Park("waiter", &results);
  ASSERT_TRUE(store_
                  .Set("ns", "k", "v", absl::ZeroDuration(), false,
                       (*first)->lease_token)
                  .ok());
  EXPECT_FALSE(store_.CancelWaiter(id)) << "it was answered already";
  uint64_t other = 0;
  auto again = store_.GetOrLease(
      "ns", "j", "holder", absl::Seconds(30),
      [](absl::StatusOr<CacheGetResult>) {}, nullptr);
  ASSERT_TRUE(again.ok());
  auto parked = store_.GetOrLease(
      "ns", "j", "waiter", absl::Seconds(30),
      [](absl::StatusOr<CacheGetResult>) {}, &other);
  ASSERT_TRUE(parked.ok() && !parked->has_value());
  EXPECT_TRUE(store_.CancelWaiter(other));
}

TEST_F(CacheStoreTest, ACancelledWaiterIsNotCalled) {
  uint64_t id = 0;
  std::string token =
      (*store_.GetOrLease("ns", "k", "a", absl::Seconds(30), nullptr, &id))
          ->lease_token;
  std::vector<CacheGetResult> results;
  uint64_t parked = Park("b", &results);
  store_.CancelWaiter(parked);
  ASSERT_TRUE(
      store_.Set("ns", "k", "v", absl::ZeroDuration(), false, token).ok());
  EXPECT_TRUE(results.empty());
}

TEST_F(CacheStoreTest, AParkedCallsWaitEndsByItsTimerNotByPolling) {
  auto first = store_.GetOrLease("ns", "k", "holder", absl::Seconds(30),
                                 nullptr, nullptr);
  ASSERT_TRUE(first.ok() && first->has_value());
  std::vector<CacheGetResult> results;
  std::vector<absl::Status> errors;
  Park("waiter", &results, &errors, absl::Seconds(10));
  EXPECT_EQ(store_.timers_for_test().size(), 1u);
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(store_.timers_for_test().RunDue(), 0u);
  EXPECT_TRUE(errors.empty());
  // Given up a tenth (at most 100 ms) before the caller's own deadline.
  clock_.Advance(absl::Milliseconds(900));
  // Due now: run here, or by the queue's own thread if it woke after the
  // clock moved (it reads the same clock).
  store_.timers_for_test().RunDue();
  ASSERT_TRUE(AwaitErrors(&errors, 1));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(GetCacheError(errors[0]), CacheError::kWaitExpired);
  EXPECT_EQ(store_.Namespaces("ns")[0].waiting, 0u);
  // An answered call's timer is cancelled.
  Park("waiter", &results, &errors, absl::Seconds(10));
  ASSERT_TRUE(store_
                  .Set("ns", "k", "v", absl::ZeroDuration(), false,
                       (*first)->lease_token)
                  .ok());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(store_.timers_for_test().size(), 0u);
}

TEST_F(CacheStoreTest, ErrorsCarryTheirCacheError) {
  EXPECT_EQ(GetCacheError(store_.Get("nope", "k").status()),
            CacheError::kNamespaceNotFound);
  EXPECT_EQ(GetCacheError(store_.Keys("nope", "", 1, "").status()),
            CacheError::kNamespaceNotFound);
  auto no_hold = store_.GetOrLease("ns", "k", "stranger", absl::Seconds(1),
                                   nullptr, nullptr);
  EXPECT_EQ(no_hold.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(GetCacheError(no_hold.status()), CacheError::kHoldMissing);
  absl::Status twice = store_.OpenHold("a");
  EXPECT_EQ(twice.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(GetCacheError(twice), CacheError::kHoldInUse);
  auto stale = store_.Set("ns", "k", "v", absl::ZeroDuration(), false, "old");
  EXPECT_EQ(GetCacheError(stale.status()), CacheError::kLeaseNotHeld);
  auto big = store_.Set("ns", "k", std::string(65, 'v'), absl::ZeroDuration(),
                        false, "");
  EXPECT_EQ(GetCacheError(big.status()), CacheError::kValueTooLarge);
  bool conflict;
  EXPECT_EQ(GetCacheError(store_.Use("p", {true}, &conflict).status()),
            CacheError::kPersistenceUnavailable);
  EXPECT_FALSE(GetCacheError(store_.Get("ns", "").status()).has_value())
      << "a malformed key is INVALID_ARGUMENT, no reason needed";
}

TEST_F(CacheStoreTest, CountersFollowReadsAndLoads) {
  store_.Get("ns", "k").IgnoreError();  // a miss
  auto lease =
      store_.GetOrLease("ns", "k", "a", absl::Seconds(30), nullptr, nullptr);
  std::vector<CacheGetResult> results;
  Park("b", &results);
  ASSERT_TRUE(store_
                  .ReleaseLease("ns", "k", (*lease)->lease_token, "",
                                /*retry=*/true)
                  .ok());  // b loads
  ASSERT_TRUE(store_
                  .Set("ns", "k", "v", absl::ZeroDuration(), false,
                       results[0].lease_token)
                  .ok());
  store_.Get("ns", "k").IgnoreError();  // a hit
  CacheCounters counters = store_.Namespaces("ns")[0].counters;
  EXPECT_EQ(counters.misses, 1u);
  EXPECT_EQ(counters.loads, 2u);
  EXPECT_EQ(counters.hits, 1u);
  EXPECT_EQ(counters.errors, 0u);
}

// Collects what a watch delivers.
class Recorder final : public CacheWatcher {
 public:
  void OnEvent(const CacheEvent& event) override { events.push_back(event); }
  std::string Keys() const {
    std::string keys;
    for (const CacheEvent& e : events) {
      keys += e.key;
      keys += "/";
      keys += std::to_string(static_cast<int>(e.kind)) + " ";
    }
    return keys;
  }
  std::vector<CacheEvent> events;
};

TEST_F(CacheStoreTest, WatchFiltersOrdersAndResumes) {
  Recorder all, one;
  ASSERT_FALSE(*store_.Watch("ns", "", 0, &all));
  ASSERT_FALSE(*store_.Watch("ns", "b", 0, &one));
  uint64_t first =
      store_.Set("ns", "a", "1", absl::ZeroDuration(), false, "")->revision;
  store_.Set("ns", "b", "2", absl::ZeroDuration(), false, "").IgnoreError();
  store_.Delete("ns", "a").IgnoreError();
  store_.Set("ns", "c", "3", absl::Seconds(1), false, "").IgnoreError();
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(store_.Sweep(), 1u);
  EXPECT_EQ(all.Keys(), "a/0 b/0 a/1 c/0 c/2 ");
  EXPECT_EQ(one.Keys(), "b/0 ");
  for (size_t i = 1; i < all.events.size(); ++i)
    EXPECT_GT(all.events[i].revision, all.events[i - 1].revision);
  EXPECT_EQ(all.events[0].value, "1");
  store_.Unwatch(&all);
  store_.Unwatch(&one);

  // Resuming after the first change replays the rest, in order.
  Recorder resumed;
  EXPECT_FALSE(*store_.Watch("ns", "", first, &resumed));
  EXPECT_EQ(resumed.Keys(), "b/0 a/1 c/0 c/2 ");
  store_.Unwatch(&resumed);
  // A revision from before this store began, or from the future: resync.
  Recorder old;
  EXPECT_TRUE(*store_.Watch("ns", "", 5, &old));
  EXPECT_TRUE(old.events.empty());
  store_.Unwatch(&old);
  EXPECT_TRUE(*store_.Watch("ns", "", all.events.back().revision + 1000, &old));
  store_.Unwatch(&old);
  EXPECT_EQ(store_.Watch("nope", "", 0, &old).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CacheStoreTest, RevisionsStartPastTheWallClock) {
  uint64_t revision =
      store_.Set("ns", "a", "1", absl::ZeroDuration(), false, "")->revision;
  EXPECT_GT(revision, static_cast<uint64_t>(absl::ToUnixMicros(clock_.Now())));
}

TEST(CacheStoreHistoryTest, ResumingPastTheKeptHistoryResyncs) {
  FakeClock clock;
  CacheStore::Limits limits;
  limits.history = 3;
  CacheStore store(limits, &clock);
  bool conflict;
  ASSERT_TRUE(store.Use("ns", {}, &conflict).ok());
  uint64_t first =
      store.Set("ns", "k", "0", absl::ZeroDuration(), false, "")->revision;
  for (int i = 1; i < 5; ++i)
    store.Set("ns", "k", std::to_string(i), absl::ZeroDuration(), false, "")
        .IgnoreError();
  Recorder late;
  EXPECT_TRUE(*store.Watch("ns", "", first, &late));
  store.Unwatch(&late);
  Recorder recent;
  EXPECT_FALSE(*store.Watch("ns", "", first + 1, &recent));
  EXPECT_EQ(recent.events.size(), 3u);
  store.Unwatch(&recent);
}

TEST(CacheStoreMemoryTest, EvictsLeastRecentlyUsedNonPersistentKeys) {
  FakeClock clock;
  CacheStore::Limits limits;
  uint64_t entry = 1 + 10 + CacheStore::kEntryOverhead;
  limits.max_bytes = 3 * entry;
  std::string data_dir = std::string(getenv("TEST_TMPDIR")) + "/evict";
  CacheStore store(limits, &clock, data_dir);
  std::vector<std::string> problems;
  ASSERT_TRUE(store.Recover(&problems).ok());
  bool conflict;
  ASSERT_TRUE(store.Use("ns", {}, &conflict).ok());
  ASSERT_TRUE(store.Use("keep", {true}, &conflict).ok());
  Recorder watcher;
  ASSERT_FALSE(*store.Watch("ns", "", 0, &watcher));
  std::string ten(10, 'v');
  for (const char* key : {"a", "b", "c"})
    ASSERT_TRUE(
        store.Set("ns", key, ten, absl::ZeroDuration(), false, "").ok());
  EXPECT_TRUE(store.Get("ns", "a")->found);  // a is now the most recent
  ASSERT_TRUE(store.Set("ns", "d", ten, absl::ZeroDuration(), false, "").ok());
  EXPECT_FALSE(store.Get("ns", "b")->found);  // b was the least recent
  EXPECT_TRUE(store.Get("ns", "a")->found);
  EXPECT_EQ(watcher.Keys(), "a/0 b/0 c/0 b/3 d/0 ");  // evicted, then set
  EXPECT_EQ(store.bytes(), 3 * entry);
  ASSERT_TRUE(store.Delete("ns", "d").ok());
  EXPECT_EQ(store.bytes(), 2 * entry);  // a delete gives back every byte
  ASSERT_TRUE(store.Set("ns", "d", ten, absl::ZeroDuration(), false, "").ok());
  // Persistent keys are never evicted: once they fill the budget, writes
  // fail with RESOURCE_EXHAUSTED and nothing is lost.
  for (const char* key : {"x", "y", "z"})
    ASSERT_TRUE(
        store.Set("keep", key, ten, absl::ZeroDuration(), false, "").ok());
  EXPECT_EQ(store.Namespaces("ns")[0].keys, 0u);
  EXPECT_EQ(store.Set("keep", "w", ten, absl::ZeroDuration(), false, "")
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  // A write that cannot fit even after evicting everything evicts nothing.
  ASSERT_TRUE(store.Delete("keep", "z").ok());
  ASSERT_TRUE(store.Set("ns", "s", ten, absl::ZeroDuration(), false, "").ok());
  EXPECT_EQ(store
                .Set("keep", "h", std::string(2 * entry, 'h'),
                     absl::ZeroDuration(), false, "")
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.Get("ns", "s")->found);
  EXPECT_EQ(store.Namespaces("keep")[0].keys, 2u);
  store.Unwatch(&watcher);
}

TEST(CacheStorePersistenceTest, RestartRecoversDataAndResumesWatches) {
  FakeClock clock;
  std::string data_dir = std::string(getenv("TEST_TMPDIR")) + "/persist";
  uint64_t seen = 0;
  {
    CacheStore store({}, &clock, data_dir);
    std::vector<std::string> problems;
    ASSERT_TRUE(store.Recover(&problems).ok());
    bool conflict;
    CacheNamespaceOptions options{true, absl::Hours(1), FsyncPolicy::kAlways};
    ASSERT_TRUE(store.Use("p", options, &conflict).ok());
    seen = store.Set("p", "a", "1", absl::ZeroDuration(), false, "")->revision;
    ASSERT_TRUE(store.Set("p", "b", "2", absl::ZeroDuration(), false, "").ok());
    ASSERT_TRUE(store.Set("p", "gone", "x", absl::Seconds(5), false, "").ok());
    ASSERT_TRUE(store.Delete("p", "a").ok());
  }
  clock.Advance(absl::Seconds(10));  // "gone" expires while it is down
  CacheStore store({}, &clock, data_dir);
  std::vector<std::string> problems;
  ASSERT_TRUE(store.Recover(&problems).ok());
  EXPECT_TRUE(problems.empty());
  std::vector<CacheNamespaceInfo> spaces = store.Namespaces();
  ASSERT_EQ(spaces.size(), 1u);
  EXPECT_TRUE(spaces[0].options.persist);
  EXPECT_EQ(spaces[0].options.expire, absl::Hours(1));
  EXPECT_EQ(spaces[0].options.fsync, FsyncPolicy::kAlways);
  EXPECT_FALSE(store.Get("p", "a")->found);
  EXPECT_EQ(store.Get("p", "b")->value, "2");
  EXPECT_FALSE(store.Get("p", "gone")->found);
  // A watcher that saw the first write resumes across the restart.
  Recorder resumed;
  EXPECT_FALSE(*store.Watch("p", "", seen, &resumed));
  EXPECT_EQ(resumed.Keys(), "b/0 gone/0 a/1 ");
  uint64_t next =
      store.Set("p", "c", "3", absl::ZeroDuration(), false, "")->revision;
  EXPECT_GT(next, resumed.events[2].revision);
  store.Unwatch(&resumed);
  // A revision past what was recovered (a write the crash lost, with
  // everysec) cannot be resumed from: resync.
  Recorder lost;
  EXPECT_TRUE(*store.Watch("p", "", resumed.events[2].revision + 1, &lost));
  store.Unwatch(&lost);
}

}  // namespace
}  // namespace cluster2
