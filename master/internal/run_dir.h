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

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/run_paths.h"

namespace cluster2 {

class RunDirectory {
 public:
  // Socket names the master creates; the longest decides the length check.
  static constexpr absl::string_view kMasterSocket = kMasterSocketName;
  static constexpr absl::string_view kCacheSocket = kCacheSocketName;

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
