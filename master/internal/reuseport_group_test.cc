#include "master/internal/reuseport_group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"

namespace cluster2 {
namespace {

int Connect(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  return fd;
}

int AcceptAll(int listen_fd) {
  fcntl(listen_fd, F_SETFL, O_NONBLOCK);
  int count = 0;
  for (int fd; (fd = accept(listen_fd, nullptr, nullptr)) >= 0; ++count) {
    close(fd);
  }
  return count;
}

// Both selection methods: worker id i is group index i, also for sockets
// opened after the start (scale-up), and unrouted ids get nothing.
TEST(ReuseportGroupTest, RoutesByWorkerIdIncludingSocketsAddedLater) {
  for (bool round_robin : {true, false}) {
    auto group = ReuseportGroup::Create("127.0.0.1", 0, 128, 2, round_robin);
    ASSERT_TRUE(group.ok()) << group.status();
    std::vector<int> fds;
    for (unsigned id = 0; id < 4; ++id) {
      absl::StatusOr<int> fd = (*group)->SocketOf(id);
      ASSERT_TRUE(fd.ok()) << fd.status();
      fds.push_back(*fd);
    }
    EXPECT_EQ(*(*group)->SocketOf(1), fds[1]) << "opened once";
    for (const std::vector<unsigned>& ids :
         {std::vector<unsigned>{3}, std::vector<unsigned>{0, 2}}) {
      (*group)->Route(ids);
      std::vector<int> clients;
      for (int i = 0; i < 40; ++i) clients.push_back(Connect((*group)->port()));
      std::vector<int> counts;
      for (int fd : fds) counts.push_back(AcceptAll(fd));
      for (int fd : clients) close(fd);
      int routed = 0;
      for (unsigned id = 0; id < 4; ++id) {
        bool wanted = std::find(ids.begin(), ids.end(), id) != ids.end();
        if (wanted) {
          routed += counts[id];
          EXPECT_GT(counts[id], 0) << "id " << id;
        } else {
          EXPECT_EQ(counts[id], 0) << "id " << id;
        }
      }
      EXPECT_EQ(routed, 40);
    }
  }
}

}  // namespace
}  // namespace cluster2
