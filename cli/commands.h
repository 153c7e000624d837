// cluster2ctl: the command line of a running cluster. Each verb resolves the
// master, calls one RPC and prints a table (default) or JSON (-o json). The
// `cache` verbs resolve the cache server instead (--cache-socket,
// $CLUSTER2_CACHE or <run dir>/cache.sock). The verbs are declared once, in
// the verb table (cli/internal/verb.h), which also gives `--help` of every
// verb and the shell completion scripts (`cluster2ctl completion bash|zsh`).
//
// Exit codes (cli/exit_codes.h): 0 success; 1 the master or cache server
// answered with an error, or a cache key was absent (get, del) or present
// (set --nx); 2 usage error; 3 no master or cache server is running (or it
// cannot be reached).
//
// Thread-safe: RunCtl keeps no state between calls, so calls on several
// threads are independent (tests run a blocking `cache watch` on a thread).
#ifndef CLUSTER2_CLI_COMMANDS_H_
#define CLUSTER2_CLI_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "cli/tables.h"

namespace cluster2 {

// Runs cluster2ctl with `args` (without argv[0]); writes results, --help and
// --version to `out`, errors (one line, "cluster2ctl: ...") to `err`;
// returns the exit code.
int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err);

}  // namespace cluster2

#endif  // CLUSTER2_CLI_COMMANDS_H_
