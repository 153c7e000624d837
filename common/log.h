// Line-oriented logging: "2026-11-26T08:19:41.123Z INFO master[42] text".
//
// Lines go to stderr, or to a log file once OpenLogFile succeeded (reopened
// by ReopenLogFile, for log rotation on SIGUSR1).
//
// Thread-safe: each line is written with one write(2), so lines from
// several threads never interleave.
#ifndef CLUSTER2_COMMON_LOG_H_
#define CLUSTER2_COMMON_LOG_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

enum class LogLevel { kInfo, kWarning, kError };

// Names the process in every line ("master", "worker 3", "cluster2ctl").
void SetLogComponent(absl::string_view component);

void Log(LogLevel level, absl::string_view message);
inline void LogInfo(absl::string_view message) {
  Log(LogLevel::kInfo, message);
}
inline void LogWarning(absl::string_view message) {
  Log(LogLevel::kWarning, message);
}
inline void LogError(absl::string_view message) {
  Log(LogLevel::kError, message);
}

// Writes one line on behalf of another process: "<time> <tag>
// <component>[<pid>] <message>" (a worker's captured output, tag "OUT").
void LogFor(absl::string_view tag, absl::string_view component, pid_t pid,
            absl::string_view message);

// Sends every line to `path` (appended, created 0640) instead of stderr.
absl::Status OpenLogFile(const std::string& path);
// Closes and opens the log file again (after a rotation moved it). OK and
// nothing done without a log file.
absl::Status ReopenLogFile();

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_LOG_H_
