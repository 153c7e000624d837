// Line-oriented logging to stderr: "2026-11-26T08:19:41.123Z INFO master[42]
// text".
//
// Thread-safe: each line is written with one write(2).
#ifndef CLUSTER2_COMMON_LOG_H_
#define CLUSTER2_COMMON_LOG_H_

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

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_LOG_H_
