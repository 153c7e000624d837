// The command line of cluster2-cache:
//
//   cluster2-cache --socket=PATH [--data-dir=DIR] [--max-value-bytes=N]
//                  [--max-memory=N[k|m|g]] [--backend=redis://HOST:PORT]
//
// each option being CacheServerOptions' field of the same name (whose
// comment gives its default). Byte counts take an optional binary suffix:
// 64k, 64m, 1g. (absl flags would want --data_dir; the master and scripts
// pass --data-dir, so this small parser keeps the dashes.)
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_CACHE_SERVER_CACHE_FLAGS_H_
#define CLUSTER2_CACHE_SERVER_CACHE_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache_server/cache_server.h"

namespace cluster2 {

// The usage line printed with a bad argument.
inline constexpr absl::string_view kCacheServerUsage =
    "usage: cluster2-cache --socket=PATH [--data-dir=DIR] "
    "[--max-value-bytes=N] [--max-memory=N[k|m|g]] "
    "[--backend=redis://HOST:PORT|unix:PATH]";

// Parses `args` (argv without the program name). INVALID_ARGUMENT
// "bad argument '<arg>'" for an unknown option, a malformed value or a
// --max-value-bytes of 0.
absl::StatusOr<CacheServerOptions> ParseCacheServerArgs(
    const std::vector<std::string>& args);

// "64m" -> 67108864: digits with an optional k, m or g (either case).
// False if malformed or too large.
bool ParseByteCount(absl::string_view text, uint64_t* bytes);

}  // namespace cluster2

#endif  // CLUSTER2_CACHE_SERVER_CACHE_FLAGS_H_
