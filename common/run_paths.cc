#include "common/run_paths.h"

#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace cluster2 {

std::string DefaultRunDir(absl::string_view name, const GetEnv& getenv,
                          unsigned uid) {
  const char* runtime = getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') {
    return absl::StrCat(runtime, "/cluster2/", name);
  }
  return absl::StrCat("/tmp/cluster2-", uid, "/", name);
}

std::string DefaultCacheDataDir(absl::string_view name, const GetEnv& getenv,
                                unsigned uid) {
  const char* state = getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') {
    return absl::StrCat(state, "/cluster2/", name);
  }
  if (uid == 0) return absl::StrCat("/var/lib/cluster2/", name);
  const char* home = getenv("HOME");
  return absl::StrCat(home != nullptr && home[0] == '/' ? home : "/tmp",
                      "/.local/state/cluster2/", name);
}

std::string SocketPath(absl::string_view run_dir,
                       absl::string_view socket_name) {
  return absl::StrCat(run_dir, "/", socket_name);
}

bool OnTmpfs(const std::string& path) {
  std::string probe = path;
  struct statfs info;
  while (statfs(probe.c_str(), &info) != 0) {
    size_t slash = probe.find_last_of('/');
    if (errno != ENOENT || slash == std::string::npos || probe == "/")
      return false;
    probe = slash == 0 ? "/" : probe.substr(0, slash);
  }
  return info.f_type == TMPFS_MAGIC;
}

absl::Status CheckSocketPath(absl::string_view path) {
  if (path.size() > kMaxSocketPath) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", path, " is ", path.size(),
                     " bytes; a Unix socket path holds at most ",
                     kMaxSocketPath, " (choose a shorter run directory)"));
  }
  return absl::OkStatus();
}

}  // namespace cluster2
