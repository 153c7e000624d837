// cluster2ctl's exit codes, which scripts rely on.
#ifndef CLUSTER2_CLI_EXIT_CODES_H_
#define CLUSTER2_CLI_EXIT_CODES_H_

namespace cluster2 {

// Success (also --help, --version).
inline constexpr int kExitOk = 0;
// The master or cache server answered with an error, a cache key was absent
// (get, del) or present (set --nx), or a socket is not the caller's.
inline constexpr int kExitFailed = 1;
// Usage error: unknown verb or flag, wrong arguments; nothing was sent.
inline constexpr int kExitUsage = 2;
// No master or cache server is running (or it cannot be reached).
inline constexpr int kExitNoMaster = 3;

}  // namespace cluster2

#endif  // CLUSTER2_CLI_EXIT_CODES_H_
