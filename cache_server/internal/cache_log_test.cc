#include "cache_server/internal/cache_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace cluster2 {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream data;
  data << in.rdbuf();
  return data.str();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

CacheRecord Options(uint64_t revision) {
  CacheRecord options;
  options.kind = CacheRecord::Kind::kOptions;
  options.revision = revision;
  options.expire_micros = 5000000;
  options.fsync = FsyncPolicy::kAlways;
  return options;
}

CacheRecord Set(const std::string& key, const std::string& value,
                uint64_t revision) {
  CacheRecord record;
  record.kind = CacheRecord::Kind::kSet;
  record.key = key;
  record.value = value;
  record.revision = revision;
  record.expires_unix_micros = 1700000000000000 + revision;
  return record;
}

class CacheLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::string(getenv("TEST_TMPDIR")) + "/logXXXXXX";
    dir_ = mkdtemp(base.data());
  }
  std::string Path(const std::string& file) { return dir_ + "/" + file; }

  // Writes ns.log with the options and `count` sets k0..k<count-1>.
  void WriteLog(int count) {
    auto log = NamespaceLog::Open(dir_, "ns", Options(100));
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(
          (*log)->Append(Set("k" + std::to_string(i), "v", 101 + i)).ok());
    }
    ASSERT_TRUE((*log)->Sync().ok());
  }

  Recovery Recover() {
    absl::StatusOr<Recovery> recovery = RecoverAll(dir_);
    EXPECT_TRUE(recovery.ok()) << recovery.status();
    return recovery.ok() ? *std::move(recovery) : Recovery();
  }

  std::string dir_;
};

TEST(Crc32cTest, KnownVector) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST_F(CacheLogTest, RecoversEveryRecordInOrder) {
  {
    auto log = NamespaceLog::Open(dir_, "ns", Options(100));
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(Set("a", "1", 101)).ok());
    ASSERT_TRUE((*log)->Append(Set("b", std::string(100000, 'x'), 102)).ok());
    CacheRecord del;
    del.kind = CacheRecord::Kind::kDelete;
    del.key = "a";
    del.revision = 103;
    ASSERT_TRUE((*log)->Append(del).ok());
  }
  Recovery recovery = Recover();
  EXPECT_TRUE(recovery.problems.empty());
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  const RecoveredNamespace& ns = recovery.namespaces[0];
  EXPECT_EQ(ns.name, "ns");
  EXPECT_EQ(ns.options.expire_micros, 5000000);
  EXPECT_EQ(ns.options.fsync, FsyncPolicy::kAlways);
  EXPECT_EQ(ns.history_floor, 100u);
  ASSERT_EQ(ns.records.size(), 3u);
  EXPECT_EQ(ns.records[0].key, "a");
  EXPECT_EQ(ns.records[0].expires_unix_micros, 1700000000000101);
  EXPECT_EQ(ns.records[1].value.size(), 100000u);
  EXPECT_EQ(ns.records[2].kind, CacheRecord::Kind::kDelete);
  EXPECT_EQ(ns.records[2].revision, 103u);
  EXPECT_FALSE(ns.rewrite);
}

TEST_F(CacheLogTest, TornTailIsDroppedAndTruncated) {
  WriteLog(5);
  std::string intact = ReadAll(Path("ns.log"));
  std::string torn = EncodeRecord(Set("k5", std::string(1000, 'y'), 106));
  WriteAll(Path("ns.log"), intact + torn.substr(0, torn.size() / 2));

  Recovery recovery = Recover();
  ASSERT_EQ(recovery.problems.size(), 1u);
  EXPECT_TRUE(absl::StrContains(recovery.problems[0], "torn"))
      << recovery.problems[0];
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_EQ(recovery.namespaces[0].records.size(), 5u);
  EXPECT_FALSE(recovery.namespaces[0].rewrite);
  EXPECT_EQ(ReadAll(Path("ns.log")), intact);  // truncated in place
  EXPECT_TRUE(Recover().problems.empty());
}

TEST_F(CacheLogTest, CorruptRecordIsSkippedReportedAndSetAside) {
  WriteLog(4);
  std::string data = ReadAll(Path("ns.log"));
  // Damage the second set record's payload (records are equal-sized).
  size_t options_size = EncodeRecord(Options(100)).size();
  size_t record_size = EncodeRecord(Set("k0", "v", 101)).size();
  data[options_size + record_size + 10] ^= 0x55;
  WriteAll(Path("ns.log"), data);

  Recovery recovery = Recover();
  ASSERT_FALSE(recovery.problems.empty());
  EXPECT_TRUE(absl::StrContains(recovery.problems[0], "corrupt"));
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  const RecoveredNamespace& ns = recovery.namespaces[0];
  ASSERT_EQ(ns.records.size(), 3u);
  EXPECT_EQ(ns.records[0].key, "k0");
  EXPECT_EQ(ns.records[1].key, "k2");
  EXPECT_EQ(ns.records[2].key, "k3");
  EXPECT_TRUE(ns.rewrite);
  EXPECT_EQ(ns.history_floor, 104u);  // changes are missing: no resuming
  // The damaged file is kept aside, not deleted.
  struct stat st;
  EXPECT_NE(stat(Path("ns.log").c_str(), &st), 0);
  bool kept = false;
  for (const std::string& line : recovery.problems)
    kept = kept || absl::StrContains(line, ".corrupt-");
  EXPECT_TRUE(kept);
}

TEST_F(CacheLogTest, GarbageFileIsReportedNotFatal) {
  std::string garbage;
  unsigned seed = 7;
  for (int i = 0; i < 5000; ++i)
    garbage.push_back(static_cast<char>(rand_r(&seed)));
  WriteAll(Path("junk.snapshot"), garbage);
  Recovery recovery = Recover();
  EXPECT_FALSE(recovery.problems.empty());
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_TRUE(recovery.namespaces[0].records.empty());
}

TEST_F(CacheLogTest, CompactionWritesSnapshotAndRestartsLog) {
  auto log = NamespaceLog::Open(dir_, "ns", Options(100));
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*log)->Append(Set("k", std::to_string(i), 101 + i)).ok());
  ASSERT_TRUE((*log)->Compact({Options(110), Set("k", "9", 110)}).ok());
  EXPECT_EQ((*log)->log_bytes(), EncodeRecord(Options(110)).size());
  ASSERT_TRUE((*log)->Append(Set("j", "after", 111)).ok());

  Recovery recovery = Recover();
  EXPECT_TRUE(recovery.problems.empty());
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  const RecoveredNamespace& ns = recovery.namespaces[0];
  ASSERT_EQ(ns.records.size(), 2u);
  EXPECT_EQ(ns.snapshot_records, 1u);
  EXPECT_EQ(ns.records[0].value, "9");
  EXPECT_EQ(ns.records[1].key, "j");
  EXPECT_EQ(ns.history_floor, 110u);
}

TEST_F(CacheLogTest, CrashBetweenSnapshotAndLogResetReplaysNothingTwice) {
  WriteLog(3);  // revisions 101..103
  std::string old_log = ReadAll(Path("ns.log"));
  {
    auto log = NamespaceLog::Open(dir_, "ns", Options(100));
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)
                    ->Compact({Options(103), Set("k0", "v", 101),
                               Set("k1", "v", 102), Set("k2", "v", 103)})
                    .ok());
  }
  WriteAll(Path("ns.log"), old_log);  // as if the log was never reset
  Recovery recovery = Recover();
  EXPECT_TRUE(recovery.problems.empty());
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_EQ(recovery.namespaces[0].records.size(), 3u);
}

TEST_F(CacheLogTest, LeftoverTemporaryFilesAreRemoved) {
  WriteAll(Path("ns.snapshot.tmp"), "half a snapshot");
  Recovery recovery = Recover();
  EXPECT_TRUE(recovery.namespaces.empty());
  struct stat st;
  EXPECT_NE(stat(Path("ns.snapshot.tmp").c_str(), &st), 0);
}

}  // namespace
}  // namespace cluster2
