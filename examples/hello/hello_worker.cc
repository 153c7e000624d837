// hello_worker: a cluster2 HTTP worker built on GNU libmicrohttpd
// (docs/adr/0002-http-library.md).
//
//   GET /            200 "worker <id> pid <pid>\n"
//   GET /sleep?ms=N  the same after N ms (at most 10000): a request that is
//                    in flight long enough to test draining
//
// It serves on the socket the master passes as fd 3, reports ready, records
// each request for heartbeats, stops and resumes accepting when the master
// pauses and resumes it, and on drain (from the master, or SIGTERM) stops
// accepting, lets in-flight requests finish and exits 0. A pause is
// confirmed once its connections are closed (at most 2 s).
//
// Usage: cluster2-master -- hello_worker [--threads N]
#include <microhttpd.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "worker/worker.h"

namespace {

struct Server {
  cluster2::Worker* worker = nullptr;
  std::string body;
  std::atomic<uint32_t> in_flight{0};
  std::atomic<bool> draining{false};
  // Paused (out of rotation, perhaps about to be debugged): keep-alive
  // clients are told to reconnect, to a worker that accepts.
  std::atomic<bool> paused{false};
};

// Set when the server should drain; waited on by main.
class DrainSignal {
 public:
  void Notify(absl::Duration grace) {
    absl::MutexLock lock(&mu_);
    if (notified_) return;
    notified_ = true;
    grace_ = grace;
  }
  absl::Duration Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&notified_));
    return grace_;
  }

 private:
  absl::Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration grace_ ABSL_GUARDED_BY(mu_);
};

MHD_Result HandleRequest(void* cls, MHD_Connection* connection, const char* url,
                         const char* method, const char*, const char*,
                         size_t* upload_data_size, void** request_state) {
  auto* server = static_cast<Server*>(cls);
  if (*request_state == nullptr) {  // headers received; body may follow
    *request_state = new absl::Time(absl::Now());
    server->in_flight.fetch_add(1);
    return MHD_YES;
  }
  if (*upload_data_size != 0) {  // ignore a request body
    *upload_data_size = 0;
    return MHD_YES;
  }
  unsigned status = MHD_HTTP_OK;
  std::string body = server->body;
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    body = "method not allowed\n";
  } else if (std::strcmp(url, "/sleep") == 0) {
    const char* ms_text =
        MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "ms");
    int ms = 0;
    if (ms_text == nullptr || !absl::SimpleAtoi(ms_text, &ms) || ms < 0 ||
        ms > 10000) {
      status = MHD_HTTP_BAD_REQUEST;
      body = "ms must be 0..10000\n";
    } else {
      absl::SleepFor(absl::Milliseconds(ms));
    }
  } else if (std::strcmp(url, "/") != 0) {
    status = MHD_HTTP_NOT_FOUND;
    body = "not found\n";
  }
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, "Content-Type", "text/plain");
  if (server->draining.load() || server->paused.load())
    MHD_add_response_header(response, "Connection", "close");
  MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

void RequestCompleted(void* cls, MHD_Connection*, void** request_state,
                      MHD_RequestTerminationCode) {
  auto* server = static_cast<Server*>(cls);
  auto* started = static_cast<absl::Time*>(*request_state);
  if (started == nullptr) return;
  server->worker->RecordRequest(absl::Now() - *started);
  server->in_flight.fetch_sub(1);
  delete started;
  *request_state = nullptr;
}

// The HTTP servers of this worker. One accepts on the shared socket at a
// time; pausing quiesces it (it stops accepting and keeps its connections)
// and resuming starts a new one on the same socket, since a quiesced
// libmicrohttpd daemon cannot accept again. Thread-safe.
class Acceptors {
 public:
  Acceptors(Server* server, int listen_fd, unsigned threads)
      : server_(server), listen_fd_(listen_fd), threads_(threads) {}

  // Starts accepting; false if libmicrohttpd cannot start.
  bool Start() {
    absl::MutexLock lock(&mu_);
    if (accepting_ != nullptr) return true;
    accepting_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0,
        nullptr, nullptr, &HandleRequest, server_, MHD_OPTION_LISTEN_SOCKET,
        listen_fd_, MHD_OPTION_THREAD_POOL_SIZE, threads_,
        MHD_OPTION_NOTIFY_COMPLETED, &RequestCompleted, server_,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (accepting_ == nullptr) return false;
    daemons_.push_back(accepting_);
    return true;
  }

  // Stops accepting; connections already accepted are served.
  void Stop() {
    absl::MutexLock lock(&mu_);
    if (accepting_ == nullptr) return;
    MHD_quiesce_daemon(accepting_);
    accepting_ = nullptr;
  }

  unsigned Connections() {
    absl::MutexLock lock(&mu_);
    unsigned connections = 0;
    for (MHD_Daemon* daemon : daemons_) {
      const MHD_DaemonInfo* info =
          MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
      if (info != nullptr) connections += info->num_connections;
    }
    return connections;
  }

  // Stops every server, closing what connections are left.
  void StopAll() {
    absl::MutexLock lock(&mu_);
    for (MHD_Daemon* daemon : daemons_) MHD_stop_daemon(daemon);
    daemons_.clear();
    accepting_ = nullptr;
  }

 private:
  Server* const server_;
  const int listen_fd_;
  const unsigned threads_;
  absl::Mutex mu_;
  MHD_Daemon* accepting_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<MHD_Daemon*> daemons_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc &&
        absl::SimpleAtoi(argv[i + 1], &threads) && threads >= 1 &&
        threads <= 64) {
      ++i;
    } else {
      std::cerr << "usage: hello_worker [--threads 1..64]\n";
      return 2;
    }
  }
  // SIGTERM/SIGINT drain too; they are taken by a thread, never a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto worker = cluster2::Worker::Attach();
  if (!worker.ok()) {
    std::cerr << "hello_worker: " << worker.status().message() << "\n";
    return 1;
  }
  Server server;
  server.worker = worker->get();
  server.body =
      absl::StrCat("worker ", (*worker)->id(), " pid ", getpid(), "\n");

  DrainSignal drain;
  (*worker)->OnDrain([&drain](absl::Duration grace) { drain.Notify(grace); });
  std::thread signal_thread([&signals, &drain] {
    int signal = 0;
    sigwait(&signals, &signal);
    drain.Notify(absl::Seconds(10));
  });
  signal_thread.detach();

  Acceptors acceptors(&server, (*worker)->listen_fd(), threads);
  if (!acceptors.Start()) {
    std::cerr << "hello_worker: cannot start the HTTP server on fd "
              << (*worker)->listen_fd() << "\n";
    return 1;
  }
  (*worker)->OnPause(
      [&server, &acceptors] {
        server.paused = true;
        acceptors.Stop();
        // Confirm the pause once no connection has been open for 50 ms
        // (keep-alive clients are told to close with their next answer),
        // at most 2 s: a paused worker may be stopped by a debugger next,
        // and a connection it still held would hang. libmicrohttpd offers
        // no event for it, so this looks every 10 ms.
        const absl::Time deadline = absl::Now() + absl::Seconds(2);
        absl::Time last_connection = absl::Now();
        for (absl::Time now = absl::Now();
             now < deadline && now - last_connection < absl::Milliseconds(50);
             now = absl::Now()) {
          if (acceptors.Connections() > 0) last_connection = now;
          absl::SleepFor(absl::Milliseconds(10));
        }
      },
      [&server, &acceptors] {
        server.paused = false;
        acceptors.Start();
      });
  (*worker)->SetReady();
  std::cout << "hello_worker: worker " << (*worker)->id() << " serving with "
            << threads << " threads" << std::endl;

  absl::Duration grace = drain.Wait();
  // Stop accepting; the master keeps the listening socket for the others.
  server.draining = true;
  acceptors.Stop();
  // libmicrohttpd offers no event for "drained", so this looks every 10 ms.
  const absl::Time deadline = absl::Now() + grace - absl::Milliseconds(500);
  absl::Time last_connection = absl::Now();
  absl::Time idle_since = absl::Now();
  for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
    const unsigned connections = acceptors.Connections();
    if (connections > 0) last_connection = now;
    if (server.in_flight.load() > 0) idle_since = now;
    // Done once no connection has been open for 50 ms: a pool thread may
    // still be finishing an accept() it began before the quiesce (MHD does
    // not wait for it), and stopping then would drop that connection
    // unanswered (seen: 1 request in ~14,000 during rolling restarts).
    if (now - last_connection >= absl::Milliseconds(50)) break;
    // Idle keep-alive connections are closed once nothing is in flight.
    if (connections > 0 && now - idle_since > absl::Milliseconds(200)) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  acceptors.StopAll();
  std::cout << "hello_worker: drained, exiting" << std::endl;
  return 0;
}
