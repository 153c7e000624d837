#include "master/internal/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "common/trusted_path.h"

namespace cluster2 {
namespace {

constexpr absl::string_view kLockFile = "master.lock";

absl::Status MakeDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST)
    return absl::OkStatus();
  if (errno == ENOENT) {
    size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      CLUSTER2_RETURN_IF_ERROR(MakeDirectory(path.substr(0, slash)));
      if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST)
        return absl::OkStatus();
    }
  }
  return ErrnoStatus(errno, absl::StrCat("create run directory ", path));
}

std::string ReadPid(int fd) {
  char buffer[32] = {};
  ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return "unknown";
  absl::string_view text(buffer, static_cast<size_t>(n));
  return std::string(absl::StripSuffix(text, "\n"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunDirectory>> RunDirectory::Open(
    std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) return absl::InvalidArgumentError("empty run directory");
  CLUSTER2_RETURN_IF_ERROR(
      CheckSocketPath(absl::StrCat(path, "/", kMasterSocket)));
  CLUSTER2_RETURN_IF_ERROR(
      CheckSocketPath(absl::StrCat(path, "/", kCacheSocket)));
  CLUSTER2_RETURN_IF_ERROR(MakeDirectory(path));

  struct stat info;
  if (lstat(path.c_str(), &info) != 0) {
    return ErrnoStatus(errno, absl::StrCat("run directory ", path));
  }
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("run directory ", path, " is not a directory"));
  }
  if (info.st_uid != geteuid()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run directory ", path, " belongs to uid ", info.st_uid,
                     ", not to us"));
  }
  if ((info.st_mode & 0777) != 0700 && chmod(path.c_str(), 0700) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod 0700 ", path));
  }
  // Ours and private, but a directory above it that another user controls
  // (a /tmp/cluster2-<uid> they created first) could swap it for theirs.
  if (absl::Status trusted = CheckTrustedDirectory(path, geteuid());
      !trusted.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run directory: ", trusted.message()));
  }

  std::string lock_path = absl::StrCat(path, "/", kLockFile);
  int fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", lock_path));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    std::string pid = ReadPid(fd);
    close(fd);
    if (saved == EWOULDBLOCK) {
      return absl::AlreadyExistsError(absl::StrCat(
          "a master is already running in ", path, " (pid ", pid, ")"));
    }
    return ErrnoStatus(saved, absl::StrCat("lock ", lock_path));
  }
  // We hold the lock: whatever sockets are here belong to a dead master.
  for (absl::string_view socket : {kMasterSocket, kCacheSocket}) {
    unlink(absl::StrCat(path, "/", socket).c_str());
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int saved = errno;
    close(fd);
    return ErrnoStatus(saved, absl::StrCat("write ", lock_path));
  }
  return std::unique_ptr<RunDirectory>(new RunDirectory(std::move(path), fd));
}

RunDirectory::RunDirectory(std::string path, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd) {}

RunDirectory::~RunDirectory() {
  for (absl::string_view socket : {kMasterSocket, kCacheSocket}) {
    unlink(File(socket).c_str());
  }
  // Unlink before unlocking: a master starting now either sees our lock or
  // creates a fresh file.
  unlink(File(kLockFile).c_str());
  close(lock_fd_);
  rmdir(path_.c_str());
}

std::string RunDirectory::File(absl::string_view name) const {
  return absl::StrCat(path_, "/", name);
}

std::string RunDirectory::Address(absl::string_view socket_name) const {
  return absl::StrCat("unix:", File(socket_name));
}

}  // namespace cluster2
