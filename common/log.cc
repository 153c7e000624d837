#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/base/const_init.h"
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

int OpenForAppend(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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
  int fd = OpenForAppend(path);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("log file ", path));
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
