#include "common/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/base/const_init.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"

namespace cluster2 {
namespace {

absl::Mutex mu(absl::kConstInit);
std::string* component ABSL_GUARDED_BY(mu) = nullptr;
std::string* file_path ABSL_GUARDED_BY(mu) = nullptr;
int file_fd ABSL_GUARDED_BY(mu) = -1;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

void WriteLine(absl::string_view tag, absl::string_view who, pid_t pid,
               absl::string_view message) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " ", tag, " ", who, "[", pid, "] ", message, "\n");
  absl::MutexLock lock(&mu);
  int fd = file_fd >= 0 ? file_fd : STDERR_FILENO;
  ssize_t ignored = write(fd, line.data(), line.size());
  (void)ignored;
}

// Opens `path` for appending, refusing a symbolic link (O_NOFOLLOW) and a
// file someone else owns or that is not a regular file: another user must
// not be able to point the master's log at a file of their choosing or read
// it through a file they planted.
absl::StatusOr<int> OpenForAppend(const std::string& path) {
  int fd = open(path.c_str(),
                O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) {
    return ErrnoStatus(
        errno, errno == ELOOP
                   ? absl::StrCat("log file ", path, " is a symbolic link")
                   : absl::StrCat("log file ", path));
  }
  struct stat info;
  absl::Status problem;
  if (fstat(fd, &info) != 0) {
    problem = ErrnoStatus(errno, absl::StrCat("log file ", path));
  } else if (!S_ISREG(info.st_mode)) {
    problem = absl::FailedPreconditionError(
        absl::StrCat("log file ", path, " is not a regular file"));
  } else if (info.st_uid != geteuid()) {
    problem = absl::FailedPreconditionError(
        absl::StrCat("log file ", path, " belongs to uid ", info.st_uid,
                     ", not to uid ", geteuid()));
  }
  if (!problem.ok()) {
    close(fd);
    return problem;
  }
  return fd;
}

}  // namespace

void SetLogComponent(absl::string_view name) {
  absl::MutexLock lock(&mu);
  delete component;
  component = new std::string(name);
}

void Log(LogLevel level, absl::string_view message) {
  std::string who;
  {
    absl::MutexLock lock(&mu);
    who = component != nullptr ? *component : "cluster2";
  }
  WriteLine(LevelName(level), who, getpid(), message);
}

void LogFor(absl::string_view tag, absl::string_view who, pid_t pid,
            absl::string_view message) {
  WriteLine(tag, who, pid, message);
}

absl::Status OpenLogFile(const std::string& path) {
  absl::StatusOr<int> opened = OpenForAppend(path);
  if (!opened.ok()) return opened.status();
  const int fd = *opened;
  absl::MutexLock lock(&mu);
  if (file_fd >= 0) close(file_fd);
  file_fd = fd;
  delete file_path;
  file_path = new std::string(path);
  return absl::OkStatus();
}

absl::Status ReopenLogFile() {
  std::string path;
  {
    absl::MutexLock lock(&mu);
    if (file_path == nullptr) return absl::OkStatus();
    path = *file_path;
  }
  return OpenLogFile(path);
}

}  // namespace cluster2
