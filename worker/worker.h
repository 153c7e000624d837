// The cluster2 worker library (C++): what a worker process needs from its
// master.
//
// A worker is started by cluster2-master with the shared listening socket on
// fd 3 and CLUSTER2_* variables in its environment. Worker::Attach() reads
// them and opens the session with the master; the app then accepts on
// listen_fd(), calls SetReady() once it serves, reports requests with
// RecordRequest() (they show in heartbeats), and stops accepting when told
// to drain:
//
//   auto worker = cluster2::Worker::Attach();
//   if (!worker.ok()) { /* not started by cluster2-master */ }
//   Serve((*worker)->listen_fd());
//   (*worker)->SetReady();
//   absl::Duration grace = (*worker)->WaitForDrain();
//   StopAccepting(); FinishInFlight(grace);
//   // returning from main closes the session; exit 0
//
// Heartbeats are sent by the library on its own thread at the interval the
// master asks for. If the session to the master is lost, the worker is told
// to drain, as if the master had asked.
//
// Thread-safe: every method may be called from any thread.
#ifndef CLUSTER2_WORKER_WORKER_H_
#define CLUSTER2_WORKER_WORKER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cluster2 {

struct WorkerOptions {
  // Reported to the master in the session's hello. Default "cluster2-cpp/1".
  std::string client = "cluster2-cpp/1";
  // How long Attach waits for the master's welcome. Default 10 s.
  absl::Duration attach_timeout = absl::Seconds(10);
};

class Worker {
 public:
  // Attaches to the master named in the environment. FAILED_PRECONDITION if
  // this process was not started by cluster2-master (no CLUSTER2_MASTER or
  // LISTEN_FDS for this pid); UNAVAILABLE if the master cannot be reached or
  // refuses the session (its message says why).
  static absl::StatusOr<std::unique_ptr<Worker>> Attach(
      WorkerOptions options = {});

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // Closes the session (the master then expects the process to exit).
  ~Worker();

  // The shared listening socket (3), owned by this process.
  int listen_fd() const;
  // The slot number, 0..N-1 (CLUSTER2_WORKER_ID).
  unsigned id() const;
  const std::string& cluster_name() const;

  // Tells the master this worker serves. Idempotent.
  void SetReady();

  // Registers `callback` to run (once, on the library's thread) when the
  // master asks this worker to drain or the session is lost. It must not
  // block: start the drain and return. If the drain was already requested,
  // it runs at once on the calling thread.
  void OnDrain(std::function<void(absl::Duration grace)> callback);
  // Blocks until drain is requested; returns the grace period the master
  // gives before it kills the process.
  absl::Duration WaitForDrain();
  bool draining() const;

  // Registers what to do when the master asks this worker to stop accepting
  // new connections while the others serve (`pause`), and to accept again
  // (`resume`). Both run on the library's thread, must not block for long,
  // and are confirmed to the master when they return. A worker that
  // registers none cannot be paused: the master's Pause then times out.
  void OnPause(std::function<void()> pause, std::function<void()> resume);

  // Reports one completed request and its latency; totals and p50/p99 per
  // heartbeat reach the master. Cheap: a mutex and a vector push.
  void RecordRequest(absl::Duration latency);
  // Reports how many requests are in flight now.
  void SetRequestsInFlight(uint32_t count);

  class Impl;

 private:
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cluster2

#endif  // CLUSTER2_WORKER_WORKER_H_
