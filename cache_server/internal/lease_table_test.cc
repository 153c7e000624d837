#include "cache_server/internal/lease_table.h"

#include "cache_server/cache_errors.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTableTest() {
    for (const char* client : {"a", "b", "c"})
      EXPECT_TRUE(table_.OpenHold(client).ok());
  }
  // Parks `client` on key k; its answer lands in answers_.
  uint64_t Park(const std::string& client) {
    uint64_t id = 0;
    std::string token = table_.Acquire(
        key_, client, absl::Seconds(30), now_,
        [this, client](absl::StatusOr<CacheGetResult> r) {
          answers_.emplace_back(client, std::move(r));
        },
        &id);
    EXPECT_TRUE(token.empty()) << "expected to be parked";
    return id;
  }
  void Run(LeaseTable::Completions& done) {
    for (auto& completion : done) completion.waiter(completion.result);
    done.clear();
  }

  LeaseTable table_;
  const LeaseTable::Key key_{"ns", "k"};
  absl::Time now_ = absl::FromUnixSeconds(1000);
  std::vector<std::pair<std::string, absl::StatusOr<CacheGetResult>>> answers_;
  LeaseTable::Completions done_;
};

TEST_F(LeaseTableTest, TheFirstCallerLeasesAndTheValueAnswersTheParked) {
  std::string token =
      table_.Acquire(key_, "a", absl::Seconds(30), now_, nullptr, nullptr);
  ASSERT_FALSE(token.empty());
  EXPECT_TRUE(table_.Holds(key_, token));
  Park("b");
  Park("c");
  EXPECT_EQ(table_.ParkedIn("ns"), 2u);
  EXPECT_EQ(table_.ParkedIn("other"), 0u);
  CacheGetResult value;
  value.found = true;
  value.value = "v";
  table_.Complete(key_, value, &done_);
  EXPECT_FALSE(table_.Holds(key_, token)) << "the lease ended";
  ASSERT_EQ(done_.size(), 2u);
  EXPECT_EQ(done_[0].ns, "ns");
  Run(done_);
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[0].second->value, "v");
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(LeaseTableTest, FailAnswersEveryoneAndPassOnOnlyTheNext) {
  table_.Acquire(key_, "a", absl::Seconds(30), now_, nullptr, nullptr);
  Park("b");
  Park("c");
  table_.PassOn(key_, now_, &done_);
  ASSERT_EQ(done_.size(), 1u);
  Run(done_);
  std::string token = answers_[0].second->lease_token;
  EXPECT_EQ(answers_[0].first, "b");
  EXPECT_TRUE(table_.Holds(key_, token));
  table_.Fail(key_, "db down", &done_);
  Run(done_);
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[1].first, "c");
  EXPECT_EQ(answers_[1].second->load_error, "db down");
}

TEST_F(LeaseTableTest, AnEndedHoldLosesItsCallsAndPassesItsLeasesOn) {
  table_.Acquire(key_, "a", absl::Seconds(30), now_, nullptr, nullptr);
  Park("a");  // another thread of the same process
  Park("b");
  table_.EndHold("a", now_, &done_);
  Run(done_);
  ASSERT_EQ(answers_.size(), 2u);
  EXPECT_EQ(answers_[0].first, "a");
  EXPECT_EQ(GetCacheError(answers_[0].second.status()), CacheError::kHoldLost);
  EXPECT_EQ(answers_[1].first, "b");
  EXPECT_FALSE(answers_[1].second->lease_token.empty()) << "b loads, at once";
  EXPECT_FALSE(table_.HoldLive("a"));
  EXPECT_TRUE(table_.OpenHold("a").ok()) << "it may come back";
}

TEST_F(LeaseTableTest, ALapsedLeasePassesOnAndACancelledCallIsNotAnswered) {
  table_.Acquire(key_, "a", absl::Seconds(30), now_, nullptr, nullptr);
  uint64_t b = Park("b");
  Park("c");
  EXPECT_TRUE(static_cast<bool>(table_.Cancel(b)));
  EXPECT_FALSE(static_cast<bool>(table_.Cancel(b))) << "only once";
  table_.PassOnLapsed(now_ + absl::Seconds(29), &done_);
  EXPECT_TRUE(done_.empty());
  table_.PassOnLapsed(now_ + absl::Seconds(30), &done_);
  Run(done_);
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].first, "c");
}

TEST_F(LeaseTableTest, HoldsAreUniqueAndNamed) {
  EXPECT_EQ(table_.OpenHold("").code(), absl::StatusCode::kInvalidArgument);
  absl::Status twice = table_.OpenHold("a");
  EXPECT_EQ(twice.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(GetCacheError(twice), CacheError::kHoldInUse);
}

}  // namespace
}  // namespace cluster2
