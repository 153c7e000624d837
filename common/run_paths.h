// Where a cluster's files are: the run directory with its sockets, and the
// cache's data directory. Used by the master (which creates them), the
// cache server and cluster2ctl (which find them), so that all three agree.
//
// Thread-safe: pure functions (OnTmpfs reads the file system).
#ifndef CLUSTER2_COMMON_RUN_PATHS_H_
#define CLUSTER2_COMMON_RUN_PATHS_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// Longest path a Unix socket address can hold (sizeof(sun_path) - 1).
inline constexpr size_t kMaxSocketPath = 107;

// The sockets in a run directory.
inline constexpr absl::string_view kMasterSocketName = "master.sock";
inline constexpr absl::string_view kCacheSocketName = "cache.sock";

// Reads an environment variable; std::getenv, or a fake in tests.
using GetEnv = std::function<const char*(const char*)>;

// The default run directory of cluster `name`: $XDG_RUNTIME_DIR/cluster2/<name>
// when XDG_RUNTIME_DIR is set (absolute), else /tmp/cluster2-<uid>/<name>.
std::string DefaultRunDir(absl::string_view name, const GetEnv& getenv,
                          unsigned uid);

// The default directory of the cache's persistence files of cluster `name`:
// $XDG_STATE_HOME/cluster2/<name> when XDG_STATE_HOME is set (absolute),
// else /var/lib/cluster2/<name> for root, else
// $HOME/.local/state/cluster2/<name>. Not under the run directory: that is
// on tmpfs, and "persistent" data must survive a reboot.
std::string DefaultCacheDataDir(absl::string_view name, const GetEnv& getenv,
                                unsigned uid);

// "<run_dir>/<socket_name>".
std::string SocketPath(absl::string_view run_dir,
                       absl::string_view socket_name);

// True if `path`, or the nearest directory above it that exists, is on a
// tmpfs (its contents vanish at reboot).
bool OnTmpfs(const std::string& path);

// INVALID_ARGUMENT if `path` cannot be a Unix socket address.
absl::Status CheckSocketPath(absl::string_view path);

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_RUN_PATHS_H_
