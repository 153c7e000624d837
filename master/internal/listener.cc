#include "master/internal/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace cluster2 {
namespace {

enum class Reuse { kNone, kAddress, kPort };

absl::StatusOr<BoundSocket> Bind(const std::string& host, uint16_t port,
                                 bool listen_too, int backlog, Reuse reuse) {
  sockaddr_storage address{};
  socklen_t length;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("host '", host, "' is not an IPv4 or IPv6 address"));
  }
  std::string where = address.ss_family == AF_INET6
                          ? absl::StrCat("[", host, "]:", port)
                          : absl::StrCat(host, ":", port);
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  // A listener may take over a port with connections in TIME_WAIT. A mere
  // reservation must not set it: Linux lets a second SO_REUSEADDR socket bind
  // next to a bound socket that does not listen.
  int one = 1;
  if (reuse != Reuse::kNone)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse == Reuse::kPort)
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    int saved = errno;
    close(fd);
    if (saved == EADDRINUSE) {
      return absl::AlreadyExistsError(
          absl::StrCat("port ", port, " is already in use (", where, ")"));
    }
    return ErrnoStatus(saved, absl::StrCat("bind ", where));
  }
  if (listen_too && listen(fd, backlog) != 0) {
    int saved = errno;
    close(fd);
    if (saved == EADDRINUSE) {
      return absl::AlreadyExistsError(
          absl::StrCat("port ", port, " is already in use (", where, ")"));
    }
    return ErrnoStatus(saved, absl::StrCat("listen ", where));
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  uint16_t bound_port =
      bound.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return BoundSocket{fd, bound_port};
}

}  // namespace

absl::StatusOr<BoundSocket> ListenTcp(const std::string& host, uint16_t port,
                                      int backlog) {
  return Bind(host, port, /*listen_too=*/true, backlog, Reuse::kAddress);
}

absl::StatusOr<std::vector<BoundSocket>> ListenTcpGroup(const std::string& host,
                                                        uint16_t port,
                                                        int backlog,
                                                        unsigned count) {
  // Probe with a plain bind first: SO_REUSEPORT would happily join a group
  // another process of this user already listens with.
  auto probe = Bind(host, port, /*listen_too=*/false, 0, Reuse::kAddress);
  if (!probe.ok()) return probe.status();
  std::vector<BoundSocket> group;
  absl::Status status;
  for (unsigned i = 0; i < count && status.ok(); ++i) {
    auto socket =
        Bind(host, probe->port, /*listen_too=*/true, backlog, Reuse::kPort);
    if (i == 0) close(probe->fd);  // after the first member holds the port
    if (socket.ok()) {
      group.push_back(*socket);
    } else {
      status = socket.status();
    }
  }
  if (count == 0) close(probe->fd);
  if (!status.ok()) {
    for (const BoundSocket& socket : group) close(socket.fd);
    return status;
  }
  return group;
}

absl::StatusOr<BoundSocket> JoinTcpGroup(const std::string& host, uint16_t port,
                                         int backlog) {
  return Bind(host, port, /*listen_too=*/true, backlog, Reuse::kPort);
}

absl::StatusOr<BoundSocket> ReserveTcp(const std::string& host, uint16_t port) {
  return Bind(host, port, /*listen_too=*/false, 0, Reuse::kNone);
}

int InheritedListenSocket() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  int listen_pid = 0;
  int listen_fds = 0;
  if (pid == nullptr || fds == nullptr || !absl::SimpleAtoi(pid, &listen_pid) ||
      !absl::SimpleAtoi(fds, &listen_fds) || listen_pid != getpid() ||
      listen_fds < 1) {
    return -1;
  }
  fcntl(3, F_SETFD, FD_CLOEXEC);
  return 3;
}

}  // namespace cluster2
