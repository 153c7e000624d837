// A tiny HTTP worker on @cluster2//worker: answers every request with
// "consumer worker <id> pid <pid>" and closes the connection. It accepts on
// the socket the master shares (fd 3) until it is told to drain, then
// finishes the request in hand and exits 0.
#include "worker/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>

namespace {

// Reads the request head (up to its blank line) and answers it.
void Answer(int connection, const std::string& body) {
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.size() < 65536) {
    ssize_t n = read(connection, buffer, sizeof(buffer));
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < response.size()) {
    ssize_t n =
        write(connection, response.data() + sent, response.size() - sent);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

int main() {
  auto worker = cluster2::Worker::Attach();
  if (!worker.ok()) {
    std::cerr << "worker: " << worker.status().message() << "\n";
    return 1;
  }
  const int listener = (*worker)->listen_fd();
  const std::string body = "consumer worker " +
                           std::to_string((*worker)->id()) + " pid " +
                           std::to_string(getpid()) + "\n";
  // Woken by the drain: the accept loop polls this pipe with the socket.
  int wake[2];
  if (pipe(wake) != 0) return 1;
  (*worker)->OnDrain([&](absl::Duration) { (void)!write(wake[1], "x", 1); });
  // Every worker may be woken for a connection and only one wins it: the
  // listener does not block; accepted connections do (Linux does not pass
  // O_NONBLOCK on).
  fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK);
  (*worker)->SetReady();
  while (true) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) break;  // drain: stop accepting
    int connection = accept(listener, nullptr, nullptr);
    if (connection < 0) continue;
    auto started = std::chrono::steady_clock::now();
    Answer(connection, body);
    close(connection);
    (*worker)->RecordRequest(
        absl::FromChrono(std::chrono::steady_clock::now() - started));
  }
  return 0;
}
