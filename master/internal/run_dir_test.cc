#include "master/internal/run_dir.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/c2rd-XXXXXX";
    base_ = mkdtemp(pattern);
  }
  void TearDown() override { std::system(("rm -rf " + base_).c_str()); }

  static mode_t Mode(const std::string& path) {
    struct stat info;
    if (stat(path.c_str(), &info) != 0) return 0;
    return info.st_mode & 0777;
  }

  std::string base_;
};

TEST_F(RunDirTest, CreatesMissingParentsWithMode0700) {
  std::string path = base_ + "/a/b/run";
  auto dir = RunDirectory::Open(path);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ((*dir)->path(), path);
  EXPECT_EQ(Mode(path), 0700u);
  EXPECT_EQ(Mode(base_ + "/a"), 0700u);
  EXPECT_EQ((*dir)->Address(RunDirectory::kMasterSocket),
            "unix:" + path + "/master.sock");
}

TEST_F(RunDirTest, TightensTheModeOfAnExistingDirectory) {
  std::string path = base_ + "/run";
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
  auto dir = RunDirectory::Open(path);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(Mode(path), 0700u);
}

TEST_F(RunDirTest, RejectsAPathTooLongForItsSockets) {
  std::string path = base_ + "/" + std::string(100, 'x');
  auto dir = RunDirectory::Open(path);
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dir.status().message().find("at most 107"), absl::string_view::npos)
      << dir.status();
  EXPECT_NE(access(path.c_str(), F_OK), 0)
      << "created a directory it cannot use";
}

TEST_F(RunDirTest, RejectsAFile) {
  std::string path = base_ + "/file";
  close(creat(path.c_str(), 0600));
  EXPECT_EQ(RunDirectory::Open(path).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RunDirTest, ALiveMasterIsReportedWithItsPid) {
  std::string path = base_ + "/run";
  auto first = RunDirectory::Open(path);
  ASSERT_TRUE(first.ok());
  auto second = RunDirectory::Open(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(second.status().message(), "a master is already running in " +
                                           path + " (pid " +
                                           std::to_string(getpid()) + ")");
}

TEST_F(RunDirTest, StaleSocketsAreRemovedAndEverythingIsCleanedUp) {
  std::string path = base_ + "/run";
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  // A socket left by a master that died: bound, nobody holds the lock.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string socket_path = path + "/master.sock";
  socket_path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  close(fd);
  {
    auto dir = RunDirectory::Open(path);
    ASSERT_TRUE(dir.ok()) << dir.status();
    EXPECT_NE(access(socket_path.c_str(), F_OK), 0) << "stale socket kept";
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "run directory left behind";
  // And a new master can take the directory again.
  EXPECT_TRUE(RunDirectory::Open(path).ok());
}

// Another user who created the parent first (as /tmp/cluster2-<uid>) could
// put their own master.sock where cluster2ctl looks: such a parent is
// refused, whoever owns the run directory itself.
TEST_F(RunDirTest, AParentWritableByOthersIsRefused) {
  std::string parent = base_ + "/cluster2-1000";
  ASSERT_EQ(mkdir(parent.c_str(), 0777), 0);
  ASSERT_EQ(chmod(parent.c_str(), 0777), 0);
  auto dir = RunDirectory::Open(parent + "/default");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(dir.status().message().find(parent), std::string::npos)
      << dir.status();
}

TEST_F(RunDirTest, AParentOwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  std::string parent = base_ + "/cluster2-1000";
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0);
  std::string run = parent + "/default";
  ASSERT_EQ(mkdir(run.c_str(), 0700), 0);  // even with our own run dir in it
  ASSERT_EQ(chown(parent.c_str(), 65534, 65534), 0);
  auto dir = RunDirectory::Open(run);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(dir.status().message().find("belongs to uid 65534"),
            std::string::npos)
      << dir.status();
}

TEST_F(RunDirTest, APlantedLockSymlinkIsNotFollowed) {
  std::string run = base_ + "/run";
  ASSERT_EQ(mkdir(run.c_str(), 0700), 0);
  std::string victim = base_ + "/victim";
  ASSERT_EQ(std::system(("echo precious > " + victim).c_str()), 0);
  ASSERT_EQ(symlink(victim.c_str(), (run + "/master.lock").c_str()), 0);
  auto dir = RunDirectory::Open(run);
  EXPECT_FALSE(dir.ok());
  struct stat info;
  ASSERT_EQ(stat(victim.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 9);  // "precious\n", not truncated to a pid
}

}  // namespace
}  // namespace cluster2
