#include "cache_client/internal/near_cache.h"

#include "common/fake_clock.h"
#include "gtest/gtest.h"

namespace cluster2::cache_internal {
namespace {

CacheWatchEvent Event(CacheWatchEvent::Kind kind, const std::string& key,
                      const std::string& value, uint64_t revision) {
  CacheWatchEvent event;
  event.kind = kind;
  event.key = key;
  event.value = value;
  event.revision = revision;
  return event;
}

class NearCacheTest : public ::testing::Test {
 protected:
  NearCacheTest() { near_.SetLive(true); }
  // A read of `key` answered with `value` at `revision`.
  void Read(const std::string& key, const std::string& value, uint64_t revision,
            int64_t expires = 0) {
    uint64_t ticket = near_.Begin();
    CacheValue found{value, revision};
    near_.EndRead(ticket, key, &found, expires);
  }
  int64_t MicrosFromNow(absl::Duration d) {
    return absl::ToUnixMicros(clock_.Now() + d);
  }

  FakeClock clock_;
  NearCache near_{100, clock_};
};

TEST_F(NearCacheTest, KeepsAReadAndFollowsTheWatch) {
  Read("k", "v1", 1);
  ASSERT_TRUE(near_.Lookup("k").has_value());
  EXPECT_EQ(near_.Lookup("k")->value, "v1");
  near_.OnEvent(Event(CacheWatchEvent::Kind::kSet, "k", "v2", 2));
  EXPECT_EQ(near_.Lookup("k")->value, "v2");
  EXPECT_EQ(near_.Lookup("k")->revision, 2u);
  near_.OnEvent(Event(CacheWatchEvent::Kind::kDelete, "k", "", 3));
  EXPECT_FALSE(near_.Lookup("k").has_value());
}

TEST_F(NearCacheTest, AnOldEventDoesNotOverwriteANewerValue) {
  Read("k", "v5", 5);
  near_.OnEvent(Event(CacheWatchEvent::Kind::kSet, "k", "v4", 4));
  EXPECT_EQ(near_.Lookup("k")->value, "v5");
}

TEST_F(NearCacheTest, AReadOlderThanAChangeSeenMeanwhileIsNotKept) {
  uint64_t ticket = near_.Begin();
  // The change arrives on the watch before the (older) read's answer.
  near_.OnEvent(Event(CacheWatchEvent::Kind::kSet, "k", "v2", 2));
  CacheValue stale{"v1", 1};
  near_.EndRead(ticket, "k", &stale, 0);
  EXPECT_FALSE(near_.Lookup("k").has_value());
  // A read after it is kept.
  Read("k", "v2", 2);
  EXPECT_EQ(near_.Lookup("k")->value, "v2");
}

TEST_F(NearCacheTest, ExpiredValuesAreNeverReturned) {
  Read("k", "v", 1, MicrosFromNow(absl::Seconds(10)));
  EXPECT_TRUE(near_.Lookup("k").has_value());
  clock_.Advance(absl::Seconds(9));
  EXPECT_TRUE(near_.Lookup("k").has_value());
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(near_.Lookup("k").has_value());
  // An answer already expired when it arrives is not kept.
  Read("gone", "v", 2, MicrosFromNow(absl::ZeroDuration()));
  EXPECT_FALSE(near_.Lookup("gone").has_value());
}

TEST_F(NearCacheTest, ReadYourWritesUnlessANewerChangeWasSeen) {
  uint64_t ticket = near_.Begin();
  std::string mine = "mine";
  near_.EndWrite(ticket, "k", &mine, 3, 0);
  EXPECT_EQ(near_.Lookup("k")->value, "mine");

  ticket = near_.Begin();
  near_.OnEvent(Event(CacheWatchEvent::Kind::kSet, "k", "theirs", 9));
  std::string older = "older";
  near_.EndWrite(ticket, "k", &older, 8, 0);
  EXPECT_EQ(near_.Lookup("k")->value, "theirs");

  ticket = near_.Begin();
  near_.EndWrite(ticket, "k", nullptr, 10, 0);  // this client's delete
  EXPECT_FALSE(near_.Lookup("k").has_value());
}

TEST_F(NearCacheTest, EmptyAndBypassedWhileTheWatchIsDown) {
  Read("k", "v", 1);
  uint64_t ticket = near_.Begin();
  near_.SetLive(false);
  EXPECT_FALSE(near_.Lookup("k").has_value());
  EXPECT_EQ(near_.size(), 0u);
  CacheValue found{"v", 1};
  near_.EndRead(ticket, "k", &found, 0);
  EXPECT_EQ(near_.size(), 0u);
  // Live again: a read begun before the break is not kept, a new one is.
  near_.SetLive(true);
  EXPECT_FALSE(near_.Lookup("k").has_value());
  Read("k", "v", 1);
  EXPECT_TRUE(near_.Lookup("k").has_value());
}

TEST_F(NearCacheTest, AResyncEmptiesItAndDropsReadsInFlight) {
  Read("a", "1", 1);
  uint64_t ticket = near_.Begin();
  near_.OnEvent(Event(CacheWatchEvent::Kind::kResync, "", "", 0));
  EXPECT_FALSE(near_.Lookup("a").has_value());
  CacheValue found{"2", 2};
  near_.EndRead(ticket, "b", &found, 0);
  EXPECT_FALSE(near_.Lookup("b").has_value());
}

TEST_F(NearCacheTest, StaysWithinItsBound) {
  for (int i = 0; i < 250; ++i) Read("k" + std::to_string(i), "v", i + 1);
  EXPECT_LE(near_.size(), 100u);
}

}  // namespace
}  // namespace cluster2::cache_internal
