// The sockets the master binds: the service port it shares with its workers,
// and reservations of its other ports.
//
// Thread-safe: plain functions over file descriptors.
#ifndef CLUSTER2_MASTER_INTERNAL_LISTENER_H_
#define CLUSTER2_MASTER_INTERNAL_LISTENER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cluster2 {

// A bound TCP socket and the port it got (useful when asked for port 0).
struct BoundSocket {
  int fd = -1;
  uint16_t port = 0;
};

// Binds and listens on host:port (IPv4 or IPv6 literal) with SO_REUSEADDR and
// close-on-exec. ALREADY_EXISTS "port 9090 is already in use (0.0.0.0:9090)"
// for a busy port; INVALID_ARGUMENT for a bad host.
absl::StatusOr<BoundSocket> ListenTcp(const std::string& host, uint16_t port,
                                      int backlog);

// `count` listening sockets on the same host:port with SO_REUSEPORT, among
// which the kernel spreads connections. Port 0 picks one free port for all.
// A port held by anyone else (even with SO_REUSEPORT) is ALREADY_EXISTS as
// for ListenTcp.
absl::StatusOr<std::vector<BoundSocket>> ListenTcpGroup(const std::string& host,
                                                        uint16_t port,
                                                        int backlog,
                                                        unsigned count);

// One more listening socket in the SO_REUSEPORT group on host:port (made by
// ListenTcpGroup): it becomes the group's last member. Same errors as
// ListenTcp.
absl::StatusOr<BoundSocket> JoinTcpGroup(const std::string& host, uint16_t port,
                                         int backlog);

// Binds without listening, to reserve a port (connections to it are refused
// until someone listens). Same errors as ListenTcp.
absl::StatusOr<BoundSocket> ReserveTcp(const std::string& host, uint16_t port);

// The listening socket this process inherited through socket activation
// (LISTEN_PID = our pid, LISTEN_FDS >= 1, fd 3), or -1 if none.
int InheritedListenSocket();

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_LISTENER_H_
