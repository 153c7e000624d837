// Whether a directory or socket may be trusted with the cluster's files:
// no other local user can have planted or be able to swap it.
//
// A path is trusted when every directory from `/` down to it is owned by
// root or by this user, and every one that group or others may write to has
// the sticky bit (as /tmp does: there only a file's owner can rename or
// remove it). A symbolic link on the way must itself be owned by root or by
// this user. The master refuses a run directory, the cache server a data
// directory, and cluster2ctl a socket that fails these checks, so another
// user who created /tmp/cluster2-<uid> first gets neither commands nor data.
//
// Thread-safe: pure functions of the file system.
#ifndef CLUSTER2_COMMON_TRUSTED_PATH_H_
#define CLUSTER2_COMMON_TRUSTED_PATH_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace cluster2 {

// OK if directory `dir` (absolute, or relative to the working directory)
// and every directory above it are trusted as described above, and `dir`
// itself is owned by `owner` (normally geteuid()) and writable by nobody
// else. FAILED_PRECONDITION naming the first offending directory and why;
// NOT_FOUND or PERMISSION_DENIED if it cannot be examined.
absl::Status CheckTrustedDirectory(const std::string& dir, uid_t owner);

// OK if `path` is a Unix socket owned by `owner` in a trusted directory
// (CheckTrustedDirectory of its directory). NOT_FOUND if it does not exist,
// PERMISSION_DENIED if it cannot be reached, FAILED_PRECONDITION if it is
// not a socket or belongs to someone else.
absl::Status CheckTrustedSocket(const std::string& path, uid_t owner);

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_TRUSTED_PATH_H_
