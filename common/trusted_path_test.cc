#include "common/trusted_path.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

constexpr uid_t kOtherUser = 65534;  // nobody

class TrustedPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/c2trustXXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::string command = "rm -rf " + root_;
    ASSERT_EQ(system(command.c_str()), 0);
  }
  std::string Dir(const std::string& name, mode_t mode) {
    std::string path = root_ + "/" + name;
    EXPECT_EQ(mkdir(path.c_str(), 0700), 0) << path;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string root_;
  const uid_t me_ = geteuid();
};

TEST_F(TrustedPathTest, OwnPrivateDirectoryUnderTmpIsTrusted) {
  std::string dir = Dir("run", 0700);
  EXPECT_TRUE(CheckTrustedDirectory(dir, me_).ok());
  EXPECT_TRUE(CheckTrustedDirectory(Dir("run/inner", 0700), me_).ok());
}

TEST_F(TrustedPathTest, AGroupOrWorldWritableDirectoryIsRefused) {
  std::string open_dir = Dir("open", 0777);
  absl::Status status = CheckTrustedDirectory(open_dir, me_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find(open_dir), std::string::npos);
  // Beneath it, even a private directory can be swapped by anyone.
  std::string inner = Dir("open/run", 0700);
  status = CheckTrustedDirectory(inner, me_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("sticky"), std::string::npos)
      << status.message();
}

TEST_F(TrustedPathTest, AStickyWorldWritableParentLikeTmpIsTrusted) {
  Dir("shared", 01777);
  EXPECT_TRUE(CheckTrustedDirectory(Dir("shared/run", 0700), me_).ok());
}

TEST_F(TrustedPathTest, ADirectoryOfAnotherUserIsRefused) {
  if (me_ != 0) GTEST_SKIP() << "needs root to give a directory away";
  std::string theirs = Dir("theirs", 0755);
  ASSERT_EQ(chown(theirs.c_str(), kOtherUser, kOtherUser), 0);
  std::string mine = Dir("theirs/run", 0700);
  absl::Status status = CheckTrustedDirectory(mine, me_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("belongs to uid 65534"), std::string::npos)
      << status.message();
  status = CheckTrustedDirectory(theirs, me_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TrustedPathTest, ASymbolicLinkOfAnotherUserIsRefused) {
  if (me_ != 0) GTEST_SKIP() << "needs root to give a link away";
  std::string target = Dir("target", 0700);
  std::string link = root_ + "/link";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_TRUE(CheckTrustedDirectory(link, me_).ok());
  ASSERT_EQ(lchown(link.c_str(), kOtherUser, kOtherUser), 0);
  absl::Status status = CheckTrustedDirectory(link, me_);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("symbolic link"), std::string::npos);
}

TEST_F(TrustedPathTest, SocketsMustBeOursAndSockets) {
  std::string dir = Dir("run", 0700);
  EXPECT_EQ(CheckTrustedSocket(dir + "/master.sock", me_).code(),
            absl::StatusCode::kNotFound);
  std::string file = dir + "/plain";
  close(open(file.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_EQ(CheckTrustedSocket(file, me_).code(),
            absl::StatusCode::kFailedPrecondition);

  std::string path = dir + "/master.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  EXPECT_TRUE(CheckTrustedSocket(path, me_).ok());
  if (me_ == 0) {
    ASSERT_EQ(chown(path.c_str(), kOtherUser, kOtherUser), 0);
    absl::Status status = CheckTrustedSocket(path, me_);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(status.message().find("refusing"), std::string::npos);
  }
  close(fd);
}

}  // namespace
}  // namespace cluster2
