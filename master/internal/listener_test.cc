#include "master/internal/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

bool CanConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

TEST(ListenTcpTest, PortZeroGetsAFreePortThatAccepts) {
  auto socket = ListenTcp("127.0.0.1", 0, 16);
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_GT(socket->port, 0);
  EXPECT_TRUE(CanConnect(socket->port));
  close(socket->fd);
}

TEST(ListenTcpTest, BusyPortIsAlreadyExistsNamingThePort) {
  auto first = ListenTcp("127.0.0.1", 0, 16);
  ASSERT_TRUE(first.ok());
  auto second = ListenTcp("127.0.0.1", first->port, 16);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(second.status().message(), "port " + std::to_string(first->port) +
                                           " is already in use (127.0.0.1:" +
                                           std::to_string(first->port) + ")");
  close(first->fd);
}

TEST(ListenTcpTest, BadHostIsInvalidArgument) {
  EXPECT_EQ(ListenTcp("localhost", 0, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListenTcp("300.1.1.1", 0, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ListenTcpTest, Ipv6Loopback) {
  auto socket = ListenTcp("::1", 0, 16);
  if (!socket.ok() && socket.status().code() == absl::StatusCode::kInternal) {
    GTEST_SKIP() << "no IPv6 here: " << socket.status();
  }
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_GT(socket->port, 0);
  close(socket->fd);
}

TEST(ReserveTcpTest, HoldsThePortWithoutAcceptingConnections) {
  auto reserved = ReserveTcp("127.0.0.1", 0);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  EXPECT_FALSE(CanConnect(reserved->port))
      << "a reservation must refuse connections";
  EXPECT_EQ(ListenTcp("127.0.0.1", reserved->port, 16).status().code(),
            absl::StatusCode::kAlreadyExists);
  close(reserved->fd);
}

TEST(InheritedListenSocketTest, OnlyForThisPid) {
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  EXPECT_EQ(InheritedListenSocket(), -1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_PID", std::to_string(getpid() + 1).c_str(), 1);
  EXPECT_EQ(InheritedListenSocket(), -1);
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  EXPECT_EQ(InheritedListenSocket(), 3);
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
}

TEST(ListenTcpGroupTest, SocketsShareOnePortAndRefuseOutsiders) {
  auto group = ListenTcpGroup("127.0.0.1", 0, 16, 3);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_EQ(group->size(), 3u);
  uint16_t port = (*group)[0].port;
  for (const BoundSocket& socket : *group) EXPECT_EQ(socket.port, port);
  EXPECT_TRUE(CanConnect(port));
  // Neither a plain listener nor another reuseport group may join.
  EXPECT_EQ(ListenTcp("127.0.0.1", port, 16).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ListenTcpGroup("127.0.0.1", port, 16, 2).status().code(),
            absl::StatusCode::kAlreadyExists);
  for (const BoundSocket& socket : *group) close(socket.fd);
}

TEST(ListenTcpGroupTest, ABusyPortIsRefused) {
  auto plain = ListenTcp("127.0.0.1", 0, 16);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ListenTcpGroup("127.0.0.1", plain->port, 16, 2).status().code(),
            absl::StatusCode::kAlreadyExists);
  close(plain->fd);
}

}  // namespace
}  // namespace cluster2
