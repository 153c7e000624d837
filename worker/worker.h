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

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "events/events.h"
#include "google/protobuf/struct.pb.h"

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

  // --- Emitter: events between the processes of the cluster, routed by the
  // master (docs/api.md). Handlers run in order on one library thread, which
  // is not the session's: they may call Emit, GetStatus and the like.

  // No targets = this worker and the master.
  using Target = EmitTarget;
  using Event = ClusterEvent;
  using EventHandler = cluster2::EventHandler;
  using EmitResult = cluster2::EmitResult;

  // Adds a listener; returns its id for RemoveListener.
  uint64_t On(const std::string& event, EventHandler handler);
  // A listener removed after its first call.
  uint64_t Once(const std::string& event, EventHandler handler);
  // False if `id` is not a listener (any more).
  bool RemoveListener(uint64_t id);
  // Removes the listeners of `event`, or of every event if it is empty.
  void RemoveAllListeners(const std::string& event = "");
  // Emits and waits until the master routed the event (at most 5 s).
  // INVALID_ARGUMENT for an empty or reserved ("cluster2:...") name,
  // RESOURCE_EXHAUSTED for args over 1 MiB, UNAVAILABLE without a session,
  // DEADLINE_EXCEEDED if the master does not answer.
  absl::StatusOr<EmitResult> Emit(const std::string& event,
                                  std::vector<Target> targets,
                                  std::vector<google::protobuf::Value> args);

  // Emits without waiting for the master's acknowledgement; the same
  // checks and per-sender order as Emit. Errors found here are returned; one
  // the master finds is written to stderr (which the master's log captures).
  absl::Status EmitAsync(const std::string& event, std::vector<Target> targets,
                         std::vector<google::protobuf::Value> args);

  // --- Status: named values this process registers and anyone can read.

  using StatusView = cluster2::StatusView;
  using StatusUpdate = cluster2::StatusUpdate;
  using StatusEntry = cluster2::StatusEntry;

  // Registers `name` in this worker; `update` may be null (read-only).
  // Views and updates run on the handlers' thread.
  void RegisterStatus(const std::string& name, StatusView view,
                      StatusUpdate update = nullptr);
  void UnregisterStatus(const std::string& name);
  // Every process's value of `name` (NOT_FOUND if nobody registered it),
  // gathered by the master within `deadline`.
  absl::StatusOr<std::vector<StatusEntry>> GetStatus(
      const std::string& name, absl::Duration deadline = absl::Seconds(1));
  // Calls every registrant's update; returns their answers.
  absl::StatusOr<std::vector<StatusEntry>> SetStatus(
      const std::string& name, const google::protobuf::Value& value,
      absl::Duration deadline = absl::Seconds(1));
  // Names registered anywhere in the cluster.
  absl::StatusOr<std::vector<std::string>> Statuses();

  class Impl;

 private:
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cluster2

#endif  // CLUSTER2_WORKER_WORKER_H_
