// cluster2::Listen: one main() for master and workers, the C++ form of the
// original cluster2's listen(options).
//
//   int main(int argc, char** argv) {
//     cluster2::ListenOptions options;
//     options.config.set_no_workers(4);
//     options.config.set_port(9090);
//     options.serve = [](cluster2::Worker& worker) { ... return 0; };
//     return cluster2::Listen(argc, argv, std::move(options));
//   }
//
// Started from a shell, the program is the master: it runs the cluster with
// itself (/proc/self/exe, same arguments) as the worker command. Started by
// the master, it is a worker: it attaches and runs `serve`. gRPC never
// crosses a fork: the master fork+execs.
#ifndef CLUSTER2_EMBED_LISTEN_H_
#define CLUSTER2_EMBED_LISTEN_H_

#include <functional>
#include <memory>
#include <vector>

#include "cluster2/v1/config.pb.h"
#include "master/master_context.h"
#include "master/recycle_policy.h"
#include "worker/worker.h"

namespace cluster2 {

struct ListenOptions {
  // The cluster's configuration (the original's options object); `command`
  // is ignored. Unset fields take their defaults (config.proto).
  v1::ClusterConfig config;
  // The worker's program: serve on worker.listen_fd(), call
  // worker.SetReady(), return after the drain. Its result is the worker's
  // exit code. Required.
  std::function<int(Worker& worker)> serve;
  // The app's own recycle policies, evaluated in the master after the
  // configured ones (master/recycle_policy.h).
  std::vector<std::shared_ptr<RecyclePolicy>> recycle_policies;
  // Runs in the master once it serves, with the master's side of the
  // emitter and status (master/master_context.h). Optional.
  std::function<void(MasterContext& master)> on_master;
};

// Whether this process was started by a cluster2 master as a worker.
bool IsWorker();

// Runs the master or the worker role (see above) and returns the exit code
// for main. Errors (bad config, unreachable master) are printed on stderr as
// one line and give a non-zero code.
int Listen(int argc, char** argv, ListenOptions options);

}  // namespace cluster2

#endif  // CLUSTER2_EMBED_LISTEN_H_
