// End-to-end: the real cluster2-cache's files under hostile conditions: a
// full disk (a 5 MiB tmpfs), SIGKILL and restart, files planted by another
// user, a data directory others can write to.
//
// Needs root (mount, chown) outside Bazel's sandbox: the target is tagged
// no-sandbox. Without mount rights the disk is a file size limit set on
// the server instead (RLIMIT_FSIZE, SIGXFSZ ignored).
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2 {
namespace {

using ::cluster2::testing::BinaryPath;
using ::cluster2::testing::CommandResult;
using ::cluster2::testing::Process;
using ::cluster2::testing::RunCommand;
using ::cluster2::testing::TempDir;
using ::cluster2::testing::WaitUntil;

constexpr rlim_t kDiskBytes = 5 << 20;

// True if a Unix socket at `path` accepts a connection.
bool Accepts(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  bool accepted =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return accepted;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream data;
  data << in.rdbuf();
  return data.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

class CachePersistenceTest : public ::testing::Test {
 protected:
  void SetUp() override { socket_ = tmp_.path() + "/cache.sock"; }

  void TearDown() override {
    server_.reset();  // SIGKILL and reap before the disk goes
    if (mounted_) EXPECT_EQ(umount2(disk_.c_str(), MNT_DETACH), 0);
  }

  // A 5 MiB disk at <tmp>/disk: a tmpfs, or (without mount rights) a file
  // size limit the next server started inherits.
  void MakeSmallDisk() {
    disk_ = tmp_.path() + "/disk";
    ASSERT_EQ(mkdir(disk_.c_str(), 0700), 0);
    std::string size = absl::StrCat("size=", kDiskBytes);
    mounted_ = mount("tmpfs", disk_.c_str(), "tmpfs", 0, size.c_str()) == 0;
    if (!mounted_ && unshare(CLONE_NEWNS) == 0 &&
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) {
      mounted_ = mount("tmpfs", disk_.c_str(), "tmpfs", 0, size.c_str()) == 0;
    }
    if (!mounted_) {
      std::cerr << "cannot mount a tmpfs (" << strerror(errno)
                << "): the disk is RLIMIT_FSIZE on the server instead\n";
      size_limit_ = true;
    }
  }

  // Starts cluster2-cache on `data_dir` and waits until it serves.
  void StartServer(const std::string& data_dir) {
    std::vector<std::string> argv = {BinaryPath("cache_server/cluster2-cache"),
                                     "--socket=" + socket_,
                                     "--data-dir=" + data_dir};
    if (size_limit_) {
      // Inherited through fork and exec: the limit, and SIGXFSZ ignored
      // (so write() fails with EFBIG instead of killing the server).
      rlimit saved;
      getrlimit(RLIMIT_FSIZE, &saved);
      rlimit limit = saved;
      limit.rlim_cur = kDiskBytes;
      sighandler_t old = signal(SIGXFSZ, SIG_IGN);
      setrlimit(RLIMIT_FSIZE, &limit);
      server_ = std::make_unique<Process>(argv);
      setrlimit(RLIMIT_FSIZE, &saved);
      signal(SIGXFSZ, old);
    } else {
      server_ = std::make_unique<Process>(argv);
    }
    ASSERT_TRUE(WaitUntil([&] { return Accepts(socket_); }, absl::Seconds(10)))
        << server_->Stderr();
    stub_ = v1::Cache::NewStub(grpc::CreateChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  // Starts cluster2-cache on `data_dir`, which it must refuse: returns its
  // exit code and its error output.
  std::pair<int, std::string> StartRefused(const std::string& data_dir) {
    Process server({BinaryPath("cache_server/cluster2-cache"),
                    "--socket=" + socket_, "--data-dir=" + data_dir});
    std::optional<int> status = server.Wait(absl::Seconds(10));
    if (!status.has_value()) return {-1, server.Stderr()};
    return {WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, server.Stderr()};
  }

  grpc::Status Use(const std::string& ns) {
    v1::UseRequest request;
    request.set_namespace_(ns);
    request.mutable_options()->set_persist(true);
    request.mutable_options()->set_fsync(v1::NamespaceOptions::FSYNC_ALWAYS);
    v1::UseResponse response;
    grpc::ClientContext context;
    return stub_->Use(&context, request, &response);
  }

  grpc::Status Set(const std::string& ns, const std::string& key,
                   const std::string& value) {
    v1::SetRequest request;
    request.set_namespace_(ns);
    request.set_key(key);
    request.set_value(value);
    v1::SetResponse response;
    grpc::ClientContext context;
    return stub_->Set(&context, request, &response);
  }

  TempDir tmp_;
  std::string socket_;
  std::string disk_;
  bool mounted_ = false;
  bool size_limit_ = false;
  std::unique_ptr<Process> server_;
  std::unique_ptr<v1::Cache::Stub> stub_;
};

// The probe's lost write: on a full disk the last acknowledged fsync=always
// write was cut by a failed append and dropped at the next start. Every
// acknowledged write must survive SIGKILL; a write that does not fit is
// RESOURCE_EXHAUSTED (the CLI prints it, exit 1), logged once per run of
// failures.
TEST_F(CachePersistenceTest, FullDiskKeepsEveryAcknowledgedWrite) {
  MakeSmallDisk();
  std::string data_dir = disk_ + "/data";
  StartServer(data_dir);
  ASSERT_TRUE(Use("full").ok());

  std::vector<std::pair<std::string, std::string>> acknowledged;
  int failures = 0, failure_runs = 0;
  bool failing = false;
  auto write = [&](size_t size) {
    std::string key = absl::StrCat("k", acknowledged.size(), "-", failures);
    std::string value(size, static_cast<char>('a' + acknowledged.size() % 26));
    grpc::Status status = Set("full", key, value);
    if (status.ok()) {
      acknowledged.emplace_back(key, value);
      failing = false;
      return true;
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    failure_runs += failing ? 0 : 1;
    failing = true;
    ++failures;
    return false;
  };
  // Fill it with large values, then squeeze smaller ones into what is left
  // (each failure cuts a partial record off the log).
  for (int i = 0; i < 200 && write(64 << 10); ++i) {
  }
  ASSERT_EQ(failures, 1) << "the disk never filled up";
  for (size_t size : {100000, 30000, 9000, 3000, 1000, 300, 100, 30, 1}) {
    for (int i = 0; i < 20; ++i) write(size);
  }
  ASSERT_GT(acknowledged.size(), 10u);

  // The command line shows the server's error, not "no cache server".
  CommandResult ctl = RunCommand(
      {BinaryPath("cli/cluster2ctl"), "--cache-socket=" + socket_, "cache",
       "set", "full", "one-more", std::string(100000, 'z')});
  EXPECT_EQ(ctl.exit_code, 1) << ctl.err;
  EXPECT_TRUE(absl::StrContains(
      ctl.err, size_limit_ ? "File too large" : "No space left"))
      << ctl.err;
  EXPECT_FALSE(absl::StrContains(ctl.err, "no cache server")) << ctl.err;
  if (!failing) ++failure_runs;  // the CLI's write started a new run

  // One error line per run of failures, naming the namespace and errno.
  int error_lines = 0;
  for (absl::string_view line : absl::StrSplit(server_->Stderr(), '\n')) {
    if (absl::StrContains(line, " ERROR ") &&
        absl::StrContains(line, "namespace 'full'")) {
      ++error_lines;
      EXPECT_TRUE(absl::StrContains(
          line, size_limit_ ? "File too large" : "No space left"))
          << line;
    }
  }
  EXPECT_GE(error_lines, 1);
  EXPECT_LE(error_lines, failure_runs);
  EXPECT_LT(error_lines, failures);  // not one per failed write

  server_->Signal(SIGKILL);
  ASSERT_TRUE(server_->Wait(absl::Seconds(10)).has_value());
  StartServer(data_dir);
  for (const auto& [key, value] : acknowledged) {
    v1::GetRequest request;
    request.set_namespace_("full");
    request.set_key(key);
    v1::GetResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Get(&context, request, &response).ok());
    EXPECT_TRUE(response.found()) << key << " was acknowledged and lost";
    EXPECT_EQ(response.value(), value) << key;
  }
}

// A symbolic link planted as a namespace's log is never written through:
// the namespace is read-only, the server keeps serving the others.
TEST_F(CachePersistenceTest, PlantedSymbolicLinkIsNeverFollowed) {
  std::string data_dir = tmp_.path() + "/data";
  std::string victim = tmp_.path() + "/victim";
  ASSERT_EQ(mkdir(data_dir.c_str(), 0700), 0);
  WriteFile(victim, "precious");
  ASSERT_EQ(symlink(victim.c_str(), (data_dir + "/planted.log").c_str()), 0);
  StartServer(data_dir);

  ASSERT_TRUE(Use("planted").ok());  // it exists, recovered read-only
  grpc::Status set = Set("planted", "k", "overwrite?");
  EXPECT_EQ(set.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << set.error_message();
  // One planted after the start, for a namespace not yet used.
  ASSERT_EQ(symlink(victim.c_str(), (data_dir + "/later.log").c_str()), 0);
  grpc::Status later = Use("later");
  EXPECT_EQ(later.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << later.error_message();

  EXPECT_EQ(ReadFile(victim), "precious");
  struct stat st;
  ASSERT_EQ(lstat((data_dir + "/planted.log").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_TRUE(absl::StrContains(server_->Stderr(), "symbolic link"))
      << server_->Stderr();
  ASSERT_TRUE(Use("fine").ok());  // the server serves the rest
  EXPECT_TRUE(Set("fine", "k", "v").ok());
}

TEST_F(CachePersistenceTest, DataDirectoryWritableByOthersIsRefused) {
  std::string data_dir = tmp_.path() + "/data";
  ASSERT_EQ(mkdir(data_dir.c_str(), 0700), 0);
  ASSERT_EQ(chmod(data_dir.c_str(), 0777), 0);
  auto [code, err] = StartRefused(data_dir);
  EXPECT_EQ(code, 1) << err;
  EXPECT_EQ(err, absl::StrCat("cluster2-cache: the data directory ", data_dir,
                              " is writable by others (mode 0777): refused "
                              "(chmod 700 it)\n"));
}

TEST_F(CachePersistenceTest, DataDirectoryOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::string data_dir = tmp_.path() + "/data";
  ASSERT_EQ(mkdir(data_dir.c_str(), 0700), 0);
  ASSERT_EQ(chown(data_dir.c_str(), 65534, 65534), 0);
  auto [code, err] = StartRefused(data_dir);
  EXPECT_EQ(code, 1) << err;
  EXPECT_EQ(err, absl::StrCat("cluster2-cache: the data directory ", data_dir,
                              " is owned by uid 65534, not by this process's "
                              "uid 0: refused\n"));
}

}  // namespace
}  // namespace cluster2
