// hello_embedded: master and workers in one binary with cluster2::Listen.
//
//   bazel run //examples/embedded:hello_embedded -- [--port=9090]
//
// Run from a shell it is the master and starts 2 copies of itself as
// workers; each copy answers every TCP connection on the shared port with a
// one-line HTTP response naming itself.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "embed/listen.h"

namespace {

// A deliberately tiny blocking HTTP responder: enough to show the wiring.
int Serve(cluster2::Worker& worker) {
  std::atomic<bool> stop{false};
  // Non-blocking, so that losing a connection to another worker after poll()
  // does not block. (The flag is shared by every worker: all run this code.)
  fcntl(worker.listen_fd(), F_SETFL,
        fcntl(worker.listen_fd(), F_GETFL) | O_NONBLOCK);
  std::thread acceptor([&] {
    std::string body =
        absl::StrCat("embedded worker ", worker.id(), " pid ", getpid(), "\n");
    std::string response =
        absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(),
                     "\r\nConnection: close\r\n\r\n", body);
    while (!stop.load()) {
      // Wait at most 100 ms so that a drain is noticed promptly.
      pollfd ready = {worker.listen_fd(), POLLIN, 0};
      if (poll(&ready, 1, 100) <= 0) continue;
      int client = accept4(worker.listen_fd(), nullptr, nullptr, SOCK_NONBLOCK);
      if (client < 0) continue;  // another worker took it
      int blocking = 0;
      ioctl(client, FIONBIO, &blocking);
      char request[4096];
      ssize_t ignored = read(client, request, sizeof(request));
      ignored = write(client, response.data(), response.size());
      (void)ignored;
      close(client);
    }
  });
  worker.SetReady();
  worker.WaitForDrain();
  stop = true;  // the acceptor finishes its current client and exits
  acceptor.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cluster2::ListenOptions options;
  options.config.set_no_workers(2);
  options.config.set_port(9090);
  options.config.set_mon_port(9091);
  for (int i = 1; i < argc; ++i) {
    unsigned port;
    if (std::strncmp(argv[i], "--port=", 7) == 0 &&
        absl::SimpleAtoi(argv[i] + 7, &port)) {
      options.config.set_port(port);
      options.config.set_mon_port(0);
    }
  }
  options.serve = Serve;
  return cluster2::Listen(argc, argv, std::move(options));
}
