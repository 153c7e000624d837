#include "cache_server/internal/cache_store.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class FakeClock final : public Clock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

class CacheStoreTest : public ::testing::Test {
 protected:
  CacheStoreTest() : store_({16, 64}, &clock_) {
    bool conflict;
    EXPECT_TRUE(store_.Use("ns", {}, &conflict).ok());
  }

  // Parks a get-or-load; the result lands in `results` by index.
  uint64_t Park(const std::string& client,
                std::vector<CacheGetResult>* results) {
    uint64_t id = 0;
    auto got = store_.GetOrLease(
        "ns", "k", client, absl::Seconds(30),
        [results](const CacheGetResult& r) { results->push_back(r); }, &id);
    EXPECT_TRUE(got.ok());
    EXPECT_FALSE(got->has_value()) << "expected to be parked";
    return id;
  }

  FakeClock clock_;
  CacheStore store_;
};

TEST_F(CacheStoreTest, UseValidatesAndTheFirstUseWins) {
  bool conflict = false;
  CacheNamespaceOptions persist{true, absl::Minutes(1)};
  EXPECT_EQ(store_.Use("bad name", {}, &conflict).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.Use("", {}, &conflict).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = store_.Use("a", persist, &conflict);
  EXPECT_FALSE(conflict);
  auto second = store_.Use("a", {}, &conflict);
  EXPECT_TRUE(conflict);
  EXPECT_TRUE(*second == persist);
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
  EXPECT_EQ(**store_.Delete("ns", "k"), "v1");
  EXPECT_FALSE(store_.Delete("ns", "k")->has_value());
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
            [&](const CacheGetResult& r) {
              if (r.found && r.value == "once") ++answered;
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
  store_.ReleaseClient("dead");
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

}  // namespace
}  // namespace cluster2
