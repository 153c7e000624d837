// EmitterBridge: events to the target `cluster` across hosts, through a
// Redis server the masters of several hosts share (config emitter.bridge).
//
// Every master appends the `cluster` events its router hands it to one
// Redis stream per cluster name, `c2:events:{NAME}` (XADD, in the order
// routed: one thread, "bridge-out"), and follows that stream (XREAD BLOCK,
// "bridge-in") from where it stood when the master started: each entry,
// its own included, is delivered once to every process of its host
// (EventRouter::DeliverFromBridge), in stream order. So every process of
// every host gets each event once, and one sender's events in its order.
// docs/adr/0006-cache-on-redis.md says why a stream and not pub/sub (a
// master that reconnects resumes where it was instead of losing events).
//
// An append whose answer was lost (a Redis that stalled past the timeout
// may still have run it) is tried again, so the stream may hold an event
// twice: each entry carries its master's id and a number that grows by one
// per event, and a receiver skips what it has delivered from that master.
//
// While Redis cannot be reached, events wait in "bridge-out"'s queue (at
// most kMaxQueued; past that the oldest are dropped and counted, logged
// once per outage) and "bridge-in" retries from its cursor (its entries
// have later ids than what it had read, even from a Redis that restarted
// empty). A Redis that did not answer when the master started is followed
// from its stream's end once it answers.
//
// Thread-safe.
#ifndef CLUSTER2_MASTER_INTERNAL_EMITTER_BRIDGE_H_
#define CLUSTER2_MASTER_INTERNAL_EMITTER_BRIDGE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster2/v1/emitter.pb.h"
#include "common/redis_connection.h"
#include "master/internal/event_router.h"

namespace cluster2 {

class EmitterBridge {
 public:
  static constexpr size_t kMaxQueued = 100000;
  static constexpr size_t kStreamLength = 10000;  // kept in Redis (MAXLEN ~)

  // Follows the stream of `cluster` on `address` from its end now, and
  // installs itself as `router`'s bridge (borrowed: it must outlive this).
  // `host` names this host in the events it sends (Event.from_host). Fails
  // only for an address that cannot be parsed; a Redis that does not answer
  // yet is retried.
  static absl::StatusOr<std::unique_ptr<EmitterBridge>> Start(
      const std::string& address, const std::string& cluster,
      const std::string& host, EventRouter* router);
  // Stops both threads (events still queued are dropped).
  ~EmitterBridge();

  // Queues `event` for the stream; never blocks.
  void Publish(const v1::Event& event) ABSL_LOCKS_EXCLUDED(mu_);

  struct Counters {
    uint64_t sent = 0;      // appended to the stream
    uint64_t received = 0;  // read from it (this host's included)
    uint64_t dropped = 0;   // queued past kMaxQueued while Redis was away
    uint64_t repeated = 0;  // entries skipped as already delivered
  };
  Counters counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  EmitterBridge(RedisAddress address, std::string stream, std::string host,
                EventRouter* router);
  void SendLoop();
  void ReceiveLoop();
  void Wake();

  const std::string stream_;
  const std::string host_;
  EventRouter* const router_;
  RedisConnection out_;
  RedisConnection in_;
  RedisConnection control_;  // unblocks "bridge-in" at stop
  std::atomic<int64_t> in_client_id_{0};

  mutable absl::Mutex mu_;
  // Serialized events with their numbers, oldest first.
  std::deque<std::pair<uint64_t, std::string>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_number_ ABSL_GUARDED_BY(mu_) = 1;
  // Per sending master (from_host): the last number delivered here.
  std::map<std::string, uint64_t> delivered_ ABSL_GUARDED_BY(mu_);
  // The last entry read; empty until placed at the stream's end.
  std::string cursor_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
  bool outage_logged_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;    // "bridge-out"
  std::thread receiver_;  // "bridge-in"
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_EMITTER_BRIDGE_H_
