// The verb table of cluster2ctl: every verb is declared once, as a Verb
// (its words, arguments, help and handler); RunCtl builds the CLI11 command
// tree, --help and the completion scripts from the table, and runs the
// handler of the verb given. A VerbContext carries what a handler works with:
// the global options, the output streams and the connections it opens.
//
// Thread-safety: a VerbContext belongs to one RunCtl call (one thread).
#ifndef CLUSTER2_CLI_INTERNAL_VERB_H_
#define CLUSTER2_CLI_INTERNAL_VERB_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cluster2::ctl {

// The options every verb accepts, before or after it.
struct GlobalOptions {
  // --name: the cluster's name, which gives its run directory. Default
  // "default".
  std::string name = "default";
  // --run-dir: the cluster's run directory; overrides --name (and
  // $CLUSTER2_MASTER, $CLUSTER2_CACHE). Default: from --name.
  std::string run_dir;
  // --master: the master's gRPC address, e.g. unix:/run/x/master.sock.
  // Default: $CLUSTER2_MASTER, then <run dir>/master.sock.
  std::string master;
  // --cache-socket: the cache server's socket. Default: $CLUSTER2_CACHE,
  // then <run dir>/cache.sock.
  std::string cache_socket;
  // -o: "table" (default) or "json".
  std::string output = "table";
  // --timeout: each RPC's deadline (streams have none). Default 5 s.
  absl::Duration timeout = absl::Seconds(5);
  // --hosts: a file naming several masters, one per line ("NAME ADDRESS"),
  // for `workers`, `status NAME` and `rollout` (fleet.h).
  std::string hosts;
  // --tls-ca, --tls-cert, --tls-key (default $CLUSTER2_TLS_CA, _CERT,
  // _KEY): PEM files for a master on TCP (HOST:PORT), whose control port
  // is mutual TLS; --tls-server-name: the name its certificate must have
  // (default: HOST).
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
};

class VerbContext {
 public:
  // Borrows `out` and `err`, which must outlive the context.
  VerbContext(GlobalOptions options, std::ostream& out, std::ostream& err);

  const GlobalOptions& options() const { return options_; }
  bool json() const { return options_.output == "json"; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Prints "cluster2ctl: PROBLEM (see cluster2ctl --help)"; returns
  // kExitUsage.
  int Usage(absl::string_view problem);

  // Resolves the master's address (--master, $CLUSTER2_MASTER without
  // --run-dir, <run dir>/master.sock) and opens a channel to it. Returns
  // kExitOk; kExitNoMaster (printed) if its socket does not exist;
  // kExitFailed (printed, "permission denied ...") if the socket is not the
  // caller's (CheckTrustedSocket).
  int ConnectMaster();
  // The channel ConnectMaster opened.
  std::shared_ptr<grpc::Channel> master() const { return master_; }

  // A channel to the master at `address`: "unix:PATH" (a socket that must
  // be the caller's), or "HOST:PORT" over TLS with the --tls-* files. Null
  // with `*error` set if it cannot be opened.
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address,
                                           std::string* error) const;

  // Like ConnectMaster for the cache server (--cache-socket, $CLUSTER2_CACHE
  // without --run-dir, <run dir>/cache.sock); its channel sends keepalive
  // pings, so a stream ends when the server freezes.
  int ConnectCache();
  // The stub ConnectCache made.
  v1::Cache::Stub& cache() { return *cache_; }

  // Sets the --timeout deadline on one RPC's `context`.
  void SetDeadline(grpc::ClientContext* context) const;

  // Prints a failed master RPC; returns kExitNoMaster for UNAVAILABLE,
  // else kExitFailed.
  int FailMaster(const grpc::Status& status);
  // What to say of a failed call to the master at `address`.
  std::string DescribeFailure(const std::string& address,
                              const grpc::Status& status) const;
  // Like FailMaster, for the cache server.
  int FailCache(const grpc::Status& status);

 private:
  const GlobalOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::string master_address_;
  std::shared_ptr<grpc::Channel> master_;
  std::string cache_where_;  // the cache server's socket path (or address)
  std::unique_ptr<v1::Cache::Stub> cache_;
};

// Runs a verb once its arguments are parsed; returns the exit code.
using VerbHandler = std::function<int(VerbContext&)>;

struct Verb {
  // The words that select it: "workers", "cache set".
  std::string path;
  // Its arguments as its usage line shows them: "NS KEY VALUE [--nx]"; ""
  // for none. Usage errors say "<path> takes <synopsis>".
  std::string synopsis;
  // One line for the verb list.
  std::string help;
  // More lines for the verb's own --help; may be empty.
  std::string details;
  // Declares the verb's positionals and options on `command` and returns
  // the handler that reads them. Empty for a group of verbs ("cache"),
  // which is not a verb itself.
  std::function<VerbHandler(CLI::App& command)> declare;
};

// The verbs of each group, in the order --help lists them; a verb's parent
// ("cache" of "cache set") comes before it.
std::vector<Verb> ClusterVerbs();     // cluster_verbs.cc
std::vector<Verb> EcvVerbs();         // ecv_verbs.cc
std::vector<Verb> EventVerbs();       // event_verbs.cc
std::vector<Verb> CacheVerbs();       // cache_verbs.cc
std::vector<Verb> CompletionVerbs();  // completion.cc
std::vector<Verb> FleetVerbs();       // fleet_verbs.cc

// With --hosts: `workers` and `status NAME` of every host (fleet_verbs.cc).
int FleetWorkers(VerbContext& ctl);
int FleetStatus(const std::string& name, VerbContext& ctl);

}  // namespace cluster2::ctl

#endif  // CLUSTER2_CLI_INTERNAL_VERB_H_
