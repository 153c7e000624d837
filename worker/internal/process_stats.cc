#include "worker/internal/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace cluster2 {

ProcessStats ReadProcessStats() {
  ProcessStats stats;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      stats.rss_bytes = std::stoull(line.substr(6)) * 1024;
    } else if (line.rfind("Threads:", 0) == 0) {
      stats.threads = static_cast<uint32_t>(std::stoul(line.substr(8)));
    }
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    stats.cpu_time = absl::DurationFromTimeval(usage.ru_utime) +
                     absl::DurationFromTimeval(usage.ru_stime);
  }
  if (DIR* fds = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(fds)) {
      if (entry->d_name[0] != '.') ++stats.open_fds;
    }
    closedir(fds);
    if (stats.open_fds > 0) --stats.open_fds;  // the directory itself
  }
  return stats;
}

}  // namespace cluster2
