#include "cache_server/internal/cache_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

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

std::string Garbage(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string garbage(size, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  return garbage;
}

class CacheLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = std::string(getenv("TEST_TMPDIR")) + "/logXXXXXX";
    dir_ = mkdtemp(base.data());
    auto dir = DataDirectory::Open(dir_);
    ASSERT_TRUE(dir.ok()) << dir.status();
    directory_ = std::move(*dir);
  }
  std::string Path(const std::string& file) { return dir_ + "/" + file; }

  absl::StatusOr<std::unique_ptr<NamespaceLog>> OpenLog(
      const CacheRecord& options) {
    return NamespaceLog::Open(directory_.get(), "ns", options);
  }

  // The files of the directory whose names start with `prefix`.
  std::vector<std::string> Files(const std::string& prefix) {
    std::vector<std::string> files;
    DIR* listing = opendir(dir_.c_str());
    while (dirent* entry = readdir(listing)) {
      if (absl::StartsWith(entry->d_name, prefix))
        files.push_back(entry->d_name);
    }
    closedir(listing);
    return files;
  }

  // Writes ns.log with the options and `count` sets k0..k<count-1>.
  void WriteLog(int count) {
    auto log = OpenLog(Options(100));
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(
          (*log)->Append(Set("k" + std::to_string(i), "v", 101 + i)).ok());
    }
    ASSERT_TRUE((*log)->Sync().ok());
  }

  Recovery Recover() {
    absl::StatusOr<Recovery> recovery = RecoverAll(*directory_);
    EXPECT_TRUE(recovery.ok()) << recovery.status();
    return recovery.ok() ? *std::move(recovery) : Recovery();
  }

  std::string dir_;
  std::unique_ptr<DataDirectory> directory_;
};

TEST(Crc32cTest, KnownVector) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST_F(CacheLogTest, RecoversEveryRecordInOrder) {
  {
    auto log = OpenLog(Options(100));
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
  // A copy of the damaged file is kept, byte for byte.
  std::vector<std::string> copies = Files("ns.log.corrupt-");
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(ReadAll(Path(copies[0])), data);
}

TEST_F(CacheLogTest, TornHeaderIsDroppedAndTruncated) {
  WriteLog(3);
  std::string intact = ReadAll(Path("ns.log"));
  WriteAll(Path("ns.log"),
           intact + EncodeRecord(Set("k3", "v", 104)).substr(0, 5));
  Recovery recovery = Recover();
  ASSERT_EQ(recovery.problems.size(), 1u);
  EXPECT_TRUE(absl::StrContains(recovery.problems[0], "torn"));
  EXPECT_EQ(recovery.namespaces[0].records.size(), 3u);
  EXPECT_EQ(ReadAll(Path("ns.log")), intact);
  EXPECT_TRUE(Files("ns.log.corrupt-").empty());
}

// Whole records that fail their CRC at the end are damage, not a torn
// write: they take the corrupt path.
TEST_F(CacheLogTest, WholeBadLastRecordIsCorruptNotTorn) {
  WriteLog(3);
  std::string data = ReadAll(Path("ns.log"));
  data[data.size() - 2] ^= 0x01;
  WriteAll(Path("ns.log"), data);
  Recovery recovery = Recover();
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_EQ(recovery.namespaces[0].records.size(), 2u);
  EXPECT_TRUE(recovery.namespaces[0].rewrite);
  ASSERT_EQ(Files("ns.log.corrupt-").size(), 1u);
  EXPECT_EQ(ReadAll(Path(Files("ns.log.corrupt-")[0])), data);
}

// A log garbled from its first byte is not a torn write: it is kept as a
// copy (the probe saw it truncated to 0 bytes), and the snapshot's records
// are all recovered.
TEST_F(CacheLogTest, FullyGarbledLogIsKeptAndNothingElseIsLost) {
  {
    auto log = OpenLog(Options(100));
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(
        (*log)
            ->Compact({Options(102), Set("a", "1", 101), Set("b", "2", 102)})
            .ok());
  }
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::string garbage = Garbage(64 << 10, seed);
    WriteAll(Path("ns.log"), garbage);
    Recovery recovery = Recover();
    ASSERT_EQ(recovery.namespaces.size(), 1u);
    const RecoveredNamespace& ns = recovery.namespaces[0];
    ASSERT_EQ(ns.records.size(), 2u) << "seed " << seed;
    EXPECT_EQ(ns.records[1].value, "2");
    EXPECT_TRUE(ns.rewrite) << "seed " << seed;
    std::vector<std::string> copies = Files("ns.log.corrupt-");
    ASSERT_EQ(copies.size(), 1u) << "seed " << seed;
    EXPECT_EQ(ReadAll(Path(copies[0])), garbage);
    EXPECT_EQ(ReadAll(Path("ns.log")), garbage);  // untouched until rewritten
    unlink(Path(copies[0]).c_str());
  }
}

// 32 MB of garbage after a valid log (which kept the probe's server down
// for 110 s: a CRC at every offset). Every record before it is kept and
// the file is kept as a copy. Its time is in bench/cache_recovery_bench.
TEST_F(CacheLogTest, LongGarbageTailIsCorruptAndKeepsEveryRecord) {
  WriteLog(50);
  std::string intact = ReadAll(Path("ns.log"));
  std::string data = intact + Garbage(32 << 20, 99);
  WriteAll(Path("ns.log"), data);
  Recovery recovery = Recover();
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  const RecoveredNamespace& ns = recovery.namespaces[0];
  ASSERT_EQ(ns.records.size(), 50u);
  EXPECT_EQ(ns.records[49].key, "k49");
  EXPECT_TRUE(ns.rewrite);
  ASSERT_EQ(Files("ns.log.corrupt-").size(), 1u);
  EXPECT_EQ(ReadAll(Path(Files("ns.log.corrupt-")[0])).size(), data.size());
}

// Sets RLIMIT_FSIZE (SIGXFSZ ignored, so write() stops short and then
// fails with EFBIG) for its lifetime.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_;
  sighandler_t old_handler_;
};

// The probe's lost write: a fresh log's options record was not counted, so
// a failed append cut 22 bytes off the last acknowledged record.
TEST_F(CacheLogTest, FailedAppendKeepsEveryAcknowledgedRecord) {
  auto log = OpenLog(Options(100));
  ASSERT_TRUE(log.ok());
  uint64_t revision = 101;
  std::vector<std::string> acknowledged;
  auto append = [&](const std::string& value) {
    std::string key = "k" + std::to_string(revision);
    absl::Status status = (*log)->Append(Set(key, value, revision));
    if (status.ok()) {
      acknowledged.push_back(key);
      ++revision;
    }
    return status;
  };
  ASSERT_TRUE(append("first").ok());
  ASSERT_TRUE(append("second").ok());
  // The next record fits only part-way: cut at several places, header
  // included.
  for (size_t room : {0, 1, 5, 8, 9, 40}) {
    struct stat st;
    ASSERT_EQ(stat(Path("ns.log").c_str(), &st), 0);
    absl::Status status;
    {
      FileSizeLimit limit(static_cast<rlim_t>(st.st_size) + room);
      status = append(std::string(100, 'x'));
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted)
        << "room " << room << ": " << status;
    ASSERT_TRUE(append("after " + std::to_string(room)).ok());
  }
  ASSERT_TRUE((*log)->Sync().ok());
  EXPECT_EQ((*log)->log_bytes(), ReadAll(Path("ns.log")).size());
  log->reset();

  Recovery recovery = Recover();
  EXPECT_TRUE(recovery.problems.empty()) << recovery.problems[0];
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  const RecoveredNamespace& ns = recovery.namespaces[0];
  EXPECT_FALSE(ns.rewrite);
  std::vector<std::string> recovered;
  for (const CacheRecord& record : ns.records) recovered.push_back(record.key);
  EXPECT_EQ(recovered, acknowledged);
}

// A full disk when the log is created leaves no log behind (an empty one
// would read as a namespace without options).
TEST_F(CacheLogTest, LogThatCannotBeCreatedLeavesNoFile) {
  {
    FileSizeLimit limit(10);
    auto log = OpenLog(Options(100));
    EXPECT_EQ(log.status().code(), absl::StatusCode::kResourceExhausted);
  }
  EXPECT_TRUE(Files("ns.").empty());
}

TEST_F(CacheLogTest, SymbolicLinkIsNeverFollowed) {
  std::string victim = Path("victim");
  WriteAll(victim, "precious");
  ASSERT_EQ(symlink(victim.c_str(), Path("ns.log").c_str()), 0);
  auto log = OpenLog(Options(100));
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition);
  Recovery recovery = Recover();
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_TRUE(recovery.namespaces[0].refused);
  EXPECT_FALSE(recovery.namespaces[0].rewrite);
  ASSERT_FALSE(recovery.problems.empty());
  EXPECT_TRUE(absl::StrContains(recovery.problems[0], "symbolic link"))
      << recovery.problems[0];
  EXPECT_EQ(ReadAll(victim), "precious");
  struct stat st;
  ASSERT_EQ(lstat(Path("ns.log").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));  // left alone
  // A compaction's temporary file cannot be planted either.
  ASSERT_EQ(unlink(Path("ns.log").c_str()), 0);
  auto fresh = OpenLog(Options(100));
  ASSERT_TRUE(fresh.ok());
  ASSERT_EQ(symlink(victim.c_str(), Path("ns.snapshot.tmp").c_str()), 0);
  ASSERT_TRUE((*fresh)->Compact({Options(101), Set("a", "1", 101)}).ok());
  EXPECT_EQ(ReadAll(victim), "precious");
}

TEST_F(CacheLogTest, FileOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  WriteLog(2);
  ASSERT_EQ(chown(Path("ns.log").c_str(), 65534, 65534), 0);
  auto log = OpenLog(Options(100));
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition);
  Recovery recovery = Recover();
  ASSERT_EQ(recovery.namespaces.size(), 1u);
  EXPECT_TRUE(recovery.namespaces[0].refused);
}

TEST(DataDirectoryTest, IsCreatedPrivate) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/parent/created";
  auto dir = DataDirectory::Open(path);
  ASSERT_TRUE(dir.ok()) << dir.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(DataDirectoryTest, WritableByOthersIsRefused) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/open";
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  ASSERT_EQ(chmod(path.c_str(), 0777), 0);
  auto dir = DataDirectory::Open(path);
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(dir.status().message(), "0777"))
      << dir.status();
}

TEST(DataDirectoryTest, OwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/theirs";
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  auto dir = DataDirectory::Open(path);
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(dir.status().message(), "uid 65534"))
      << dir.status();
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
  auto log = OpenLog(Options(100));
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
    auto log = OpenLog(Options(100));
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
