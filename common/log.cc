#include "common/log.h"

#include <unistd.h>

#include <string>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cluster2 {
namespace {

absl::Mutex component_mutex(absl::kConstInit);
std::string* component ABSL_GUARDED_BY(component_mutex) = nullptr;

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

}  // namespace

void SetLogComponent(absl::string_view name) {
  absl::MutexLock lock(&component_mutex);
  delete component;
  component = new std::string(name);
}

void Log(LogLevel level, absl::string_view message) {
  std::string who;
  {
    absl::MutexLock lock(&component_mutex);
    who = component != nullptr ? *component : "cluster2";
  }
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                       absl::UTCTimeZone()),
      " ", LevelName(level), " ", who, "[", getpid(), "] ", message, "\n");
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace cluster2
