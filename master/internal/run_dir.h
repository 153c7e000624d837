// The run directory of a cluster: where its Unix sockets live.
//
// Mode 0700, owned by the user; every socket path in it must fit sun_path.
// The master holds an exclusive flock on `master.lock` for its whole life, so
// a live master is detected without races, and sockets left by a dead one
// (whose lock the kernel released) are replaced.
//
// Thread-compatible: one owner.
#ifndef CLUSTER2_MASTER_INTERNAL_RUN_DIR_H_
#define CLUSTER2_MASTER_INTERNAL_RUN_DIR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cluster2 {

// Longest path a Unix socket address can hold (sizeof(sun_path) - 1).
inline constexpr size_t kMaxSocketPath = 107;

// The default run directory of cluster `name`: $XDG_RUNTIME_DIR/cluster2/<name>
// when XDG_RUNTIME_DIR is set, else /tmp/cluster2-<uid>/<name>. `getenv` is
// injected for tests.
std::string DefaultRunDir(absl::string_view name,
                          const std::function<const char*(const char*)>& getenv,
                          unsigned uid);

// The default directory of the cache's persistence files of cluster `name`:
// $XDG_STATE_HOME/cluster2/<name> when XDG_STATE_HOME is set (absolute),
// else /var/lib/cluster2/<name> for root, else
// $HOME/.local/state/cluster2/<name>. Not under the run directory: that is
// on tmpfs, and "persistent" data must survive a reboot.
std::string DefaultCacheDataDir(
    absl::string_view name,
    const std::function<const char*(const char*)>& getenv, unsigned uid);

// True if `path`, or the nearest directory above it that exists, is on a
// tmpfs (its contents vanish at reboot).
bool OnTmpfs(const std::string& path);

// INVALID_ARGUMENT if `path` cannot be a Unix socket address.
absl::Status CheckSocketPath(absl::string_view path);

class RunDirectory {
 public:
  // Socket names the master creates; the longest decides the length check.
  static constexpr absl::string_view kMasterSocket = "master.sock";
  static constexpr absl::string_view kCacheSocket = "cache.sock";

  // Creates `path` (and missing parents) with mode 0700 or adopts an existing
  // directory owned by this user (tightening its mode), checks that no other
  // user controls a directory above it (common/trusted_path.h), takes the
  // master lock and removes stale sockets. Errors: INVALID_ARGUMENT (path
  // too long for its sockets), FAILED_PRECONDITION (owned by someone else,
  // under a directory another user controls, not a directory),
  // ALREADY_EXISTS ("a master is already running ... (pid N)").
  static absl::StatusOr<std::unique_ptr<RunDirectory>> Open(std::string path);

  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;
  // Removes the sockets, the pid file and the lock, then the directory if it
  // is empty.
  ~RunDirectory();

  const std::string& path() const { return path_; }
  // "<path>/<name>".
  std::string File(absl::string_view name) const;
  // "unix:<path>/<name>", the gRPC address of a socket in this directory.
  std::string Address(absl::string_view socket_name) const;

 private:
  RunDirectory(std::string path, int lock_fd);

  std::string path_;
  int lock_fd_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_RUN_DIR_H_
