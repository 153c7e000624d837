// HelloGate: how long, and how many, sessions may wait before saying who
// they are.
//
// A WorkerSession stream holds a server thread from its first byte; one that
// never sends its hello (a stray client, a flood) would hold it forever.
// The gate admits at most `max_pending` such sessions at a time and ends
// each one whose hello has not come `timeout` after it was admitted, by
// calling the `cancel` it was admitted with.
//
// Thread-safe. One thread of its own ("hello-gate") waits for the earliest
// deadline; `cancel` runs on it under the gate's lock and must not block.
#ifndef CLUSTER2_MASTER_INTERNAL_HELLO_GATE_H_
#define CLUSTER2_MASTER_INTERNAL_HELLO_GATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cluster2 {

class HelloGate {
 public:
  HelloGate(size_t max_pending, absl::Duration timeout);
  ~HelloGate();  // joins the thread; pending sessions are not cancelled

  // Admits a session that has not said hello; returns its ticket, or
  // nullopt if `max_pending` sessions are already waiting.
  std::optional<uint64_t> Admit(std::function<void()> cancel)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The session said hello or ended. Once this returns, its `cancel` is
  // neither running nor called later.
  void Release(uint64_t ticket) ABSL_LOCKS_EXCLUDED(mu_);

  size_t pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    absl::Time deadline;
    std::function<void()> cancel;
  };
  void Loop();

  const size_t max_pending_;
  const absl::Duration timeout_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);  // by ticket
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_HELLO_GATE_H_
