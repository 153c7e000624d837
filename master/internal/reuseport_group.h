// ReuseportGroup: the service port as balance=even binds it. One
// SO_REUSEPORT listening socket per worker id (slot), all bound by the
// master and kept open while it runs, and a ReuseportSelector program that
// sends new connections only to the sockets of the workers the supervisor
// names (SlotSockets::Route).
//
// A socket's index in the kernel's group is the order it started listening
// and would shift if a socket closed (the last one moves into the hole), so
// no socket closes before the master does: a slot scaled away keeps its
// socket, unrouted, for a later scale-up, and worker id i always listens on
// group index i.
//
// Thread-compatible: the supervisor calls it under its lock.
#ifndef CLUSTER2_MASTER_INTERNAL_REUSEPORT_GROUP_H_
#define CLUSTER2_MASTER_INTERNAL_REUSEPORT_GROUP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "master/internal/reuseport_selector.h"
#include "master/internal/supervisor.h"

namespace cluster2 {

class ReuseportGroup final : public SlotSockets {
 public:
  // Binds `count` (>= 1) sockets on host:port as ListenTcpGroup does (port
  // 0 picks a free one) and routes connections nowhere in particular (the
  // kernel's hash) until the first Route. `try_round_robin`: see
  // ReuseportSelector::Create. Errors: those of ListenTcpGroup.
  static absl::StatusOr<std::unique_ptr<ReuseportGroup>> Create(
      const std::string& host, uint16_t port, int backlog, unsigned count,
      bool try_round_robin = true);
  ~ReuseportGroup() override;  // closes every socket

  uint16_t port() const { return port_; }
  ReuseportSelector::Method method() const { return selector_->method(); }
  // "round robin", or "source port (why)" for the log.
  std::string Describe() const;

  // Opens the sockets up to `id` if needed (they join the group in order).
  absl::StatusOr<int> SocketOf(unsigned id) override;
  // Attaches the program for `ids`; a failure is logged (the previous
  // routing stays).
  void Route(const std::vector<unsigned>& ids) override;

 private:
  ReuseportGroup(std::string host, uint16_t port, int backlog,
                 std::vector<int> fds,
                 std::unique_ptr<ReuseportSelector> selector)
      : host_(std::move(host)),
        port_(port),
        backlog_(backlog),
        fds_(std::move(fds)),
        selector_(std::move(selector)) {}

  const std::string host_;
  const uint16_t port_;
  const int backlog_;
  std::vector<int> fds_;  // by worker id = index in the kernel's group
  std::unique_ptr<ReuseportSelector> selector_;
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_REUSEPORT_GROUP_H_
