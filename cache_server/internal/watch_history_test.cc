#include "cache_server/internal/watch_history.h"

#include "cache_server/cache_errors.h"
#include "cache_server/internal/watch_queue.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class Recorder final : public CacheWatcher {
 public:
  void OnEvent(const CacheEvent& event) override {
    revisions.push_back(event.revision);
  }
  std::vector<uint64_t> revisions;
};

CacheEvent Change(const std::string& key, uint64_t revision) {
  CacheEvent event;
  event.key = key;
  event.value = "v";
  event.revision = revision;
  return event;
}

TEST(WatchHistoryTest, FiltersByKeyAndResumesFromAKeptRevision) {
  WatchHistory history({10, 1 << 20}, /*floor=*/100);
  Recorder all, one;
  EXPECT_FALSE(history.Subscribe("", 0, 100, &all));
  EXPECT_FALSE(history.Subscribe("b", 0, 100, &one));
  history.Record(Change("a", 101));
  history.Record(Change("b", 102));
  history.Record(Change("a", 103));
  EXPECT_EQ(all.revisions, (std::vector<uint64_t>{101, 102, 103}));
  EXPECT_EQ(one.revisions, (std::vector<uint64_t>{102}));
  history.Unsubscribe(&all);
  history.Record(Change("a", 104));
  EXPECT_EQ(all.revisions.size(), 3u) << "no change after Unsubscribe";
  Recorder resumed;
  EXPECT_FALSE(history.Subscribe("a", 101, 104, &resumed));
  EXPECT_EQ(resumed.revisions, (std::vector<uint64_t>{103, 104}));
}

TEST(WatchHistoryTest, ResyncBelowTheFloorInTheFutureOrInALostRange) {
  WatchHistory history({2, 1 << 20}, /*floor=*/100);
  for (uint64_t r = 101; r <= 104; ++r) history.Record(Change("k", r));
  Recorder w;
  EXPECT_TRUE(history.Subscribe("", 101, 104, &w)) << "101..102 dropped";
  EXPECT_FALSE(history.Subscribe("", 102, 104, &w));
  EXPECT_TRUE(history.Subscribe("", 105, 104, &w)) << "from the future";
  history.MarkLost(104, 110);
  EXPECT_TRUE(history.Subscribe("", 105, 110, &w)) << "lost with a crash";
}

TEST(WatchHistoryTest, KeepsAtMostMaxBytesButAlwaysTheLastChange) {
  WatchHistory history({100, 1}, /*floor=*/0);
  for (uint64_t r = 1; r <= 3; ++r) history.Record(Change("k", r));
  Recorder w;
  EXPECT_TRUE(history.Subscribe("", 1, 3, &w)) << "2 was dropped";
  EXPECT_FALSE(history.Subscribe("", 2, 3, &w));
  EXPECT_EQ(w.revisions, std::vector<uint64_t>{3});
}

TEST(WatchQueueTest, ASlowConsumerOverflowsAndIsToldWhereToResume) {
  WatchQueue queue(/*last_revision=*/7, /*max_events=*/2);
  EXPECT_TRUE(queue.Push(Change("k", 8)));
  EXPECT_TRUE(queue.Push(Change("k", 9)));
  EXPECT_FALSE(queue.Push(Change("k", 10)));
  EXPECT_TRUE(queue.overflowed());
  EXPECT_EQ(queue.Pop()->revision, 8u);
  queue.Delivered(8);
  EXPECT_FALSE(queue.Push(Change("k", 11))) << "nothing more once overflowed";
  absl::Status status = queue.SlowConsumerError();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GetCacheError(status), CacheError::kSlowConsumer);
  EXPECT_NE(status.message().find("resume from revision 8"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace cluster2
