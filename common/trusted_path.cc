#include "common/trusted_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace cluster2 {
namespace {

// "/a/b/c" -> {"/", "/a", "/a/b", "/a/b/c"}.
std::vector<std::string> Prefixes(const std::string& path) {
  std::vector<std::string> prefixes = {"/"};
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (slash > 0 && path[slash - 1] != '/')
      prefixes.push_back(path.substr(0, slash));
  }
  if (path.size() > 1 && path.back() != '/') prefixes.push_back(path);
  return prefixes;
}

std::string Absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

absl::Status Untrusted(const std::string& dir, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(
      dir, " ", why,
      ": another user could plant or swap the cluster's files there (see "
      "\"Security model\" in docs/operations.md)"));
}

}  // namespace

absl::Status CheckTrustedDirectory(const std::string& dir, uid_t owner) {
  const std::string path = Absolute(dir);
  const std::vector<std::string> prefixes = Prefixes(path);
  for (size_t i = 0; i < prefixes.size(); ++i) {
    const std::string& prefix = prefixes[i];
    const bool last = i + 1 == prefixes.size();
    struct stat link;
    if (lstat(prefix.c_str(), &link) != 0)
      return ErrnoStatus(errno, absl::StrCat("examine ", prefix));
    if (S_ISLNK(link.st_mode) && link.st_uid != 0 && link.st_uid != owner) {
      return Untrusted(prefix, absl::StrCat("is a symbolic link owned by uid ",
                                            link.st_uid));
    }
    struct stat info;
    if (stat(prefix.c_str(), &info) != 0)
      return ErrnoStatus(errno, absl::StrCat("examine ", prefix));
    if (!S_ISDIR(info.st_mode)) return Untrusted(prefix, "is not a directory");
    if (last) {
      if (info.st_uid != owner) {
        return Untrusted(prefix, absl::StrCat("belongs to uid ", info.st_uid,
                                              ", not to uid ", owner));
      }
      if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        return Untrusted(prefix,
                         "is writable by group or others (chmod go-w it)");
      }
      break;
    }
    if (info.st_uid != 0 && info.st_uid != owner) {
      return Untrusted(prefix, absl::StrCat("belongs to uid ", info.st_uid));
    }
    if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
        (info.st_mode & S_ISVTX) == 0) {
      return Untrusted(prefix,
                       "is writable by group or others without the sticky "
                       "bit");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTrustedSocket(const std::string& path, uid_t owner) {
  const std::string absolute = Absolute(path);
  struct stat info;
  if (lstat(absolute.c_str(), &info) != 0) return ErrnoStatus(errno, absolute);
  const size_t slash = absolute.rfind('/');
  const std::string dir = slash == 0 ? "/" : absolute.substr(0, slash);
  if (absl::Status trusted = CheckTrustedDirectory(dir, owner); !trusted.ok())
    return trusted;
  if (!S_ISSOCK(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(absolute, " is not a socket"));
  }
  if (info.st_uid != owner) {
    return absl::FailedPreconditionError(
        absl::StrCat(absolute, " belongs to uid ", info.st_uid, ", not to uid ",
                     owner, ": refusing to talk to it"));
  }
  return absl::OkStatus();
}

}  // namespace cluster2
