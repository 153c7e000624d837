#include "master/internal/monitor_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "master/internal/monitor_page.h"

namespace cluster2 {

struct MonitorServer::Request {
  MHD_Connection* connection;
  std::string method;
  std::string url;
};

namespace {

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

// The HTTP status of a DebugSession error (its codes: debug_session.h).
unsigned HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(absl::string_view message) {
  return absl::StrCat("{\"error\":", JsonString(message), "}");
}

// A debug session as JSON: the fields of Cluster.Debug's answer.
std::string DebugInfoJson(const DebugInfo& info) {
  return absl::StrCat(
      "{\"pid\":", info.pid, ",\"supervised_pid\":", info.supervised_pid,
      ",\"gdbserver_pid\":", info.gdbserver_pid,
      ",\"protocol\":", JsonString(info.protocol),
      ",\"address\":", JsonString(info.address),
      ",\"url\":", JsonString(info.url),
      ",\"executable\":", JsonString(info.executable),
      ",\"fresh\":", info.fresh ? "true" : "false",
      ",\"instructions\":", JsonString(info.Instructions()), "}");
}

std::string StackDumpJson(pid_t pid, const StackDump& dump) {
  std::string json =
      absl::StrFormat("{\"pid\":%d,\"gdb_time\":%.3f,\"threads\":[", pid,
                      absl::ToDoubleSeconds(dump.gdb_time));
  bool first_thread = true;
  for (const ThreadStack& thread : dump.threads) {
    absl::StrAppend(&json, first_thread ? "" : ",",
                    "{\"number\":", thread.number, ",\"lwp\":", thread.lwp,
                    ",\"name\":", JsonString(thread.name), ",\"frames\":[");
    bool first_frame = true;
    for (const std::string& frame : thread.frames) {
      absl::StrAppend(&json, first_frame ? "" : ",", JsonString(frame));
      first_frame = false;
    }
    absl::StrAppend(&json, "]}");
    first_thread = false;
  }
  absl::StrAppend(&json, "]}");
  return json;
}

bool FromLoopback(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return false;
  const sockaddr* address = info->client_addr;
  if (address->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  if (address->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) &&
            v6->sin6_addr.s6_addr[12] == 127);
  }
  return false;
}

std::string Peer(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "unknown";
  char text[INET6_ADDRSTRLEN] = "?";
  const sockaddr* address = info->client_addr;
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr,
              text, sizeof(text));
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6,
              &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof(text));
  }
  return text;
}

int Respond(
    MHD_Connection* connection, unsigned status, const std::string& body,
    const char* content_type,
    std::initializer_list<std::pair<const char*, const char*>> headers = {}) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, "Content-Type", content_type);
  MHD_add_response_header(response, "Cache-Control", "no-store");
  for (const auto& [name, value] : headers)
    MHD_add_response_header(response, name, value);
  int result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

// Whether the client of `connection` has closed it: a suspended stream's
// connection is not watched by libmicrohttpd, and an event stream's client
// sends nothing after its request.
bool PeerClosed(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == nullptr) return true;
  char byte;
  ssize_t n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 ||
         (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// The connections the server may hold at once: kMaxConnections, or half
// the open-file limit if that is lower (the master needs the rest).
unsigned ConnectionLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 ||
      limit.rlim_cur == RLIM_INFINITY) {
    return MonitorServer::kMaxConnections;
  }
  rlim_t half = limit.rlim_cur / 2;
  return static_cast<unsigned>(std::max<rlim_t>(
      64, std::min<rlim_t>(MonitorServer::kMaxConnections, half)));
}

MonitorRoutePolicy PolicyFor(const MonitorOptions& options, std::string token) {
  MonitorRoutePolicy policy;
  policy.ecv_root = options.ecv_root;
  policy.mark_up = options.mark_up;
  policy.mark_down = options.mark_down;
  policy.allow_remote_control = options.allow_remote_control;
  policy.token = std::move(token);
  return policy;
}

MHD_Result Dispatch(void* cls, MHD_Connection* connection, const char* url,
                    const char* method, const char*, const char*,
                    size_t* upload_data_size, void** state) {
  if (*state == nullptr) {  // headers only so far
    static int marker;
    *state = &marker;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {  // ignore bodies
    *upload_data_size = 0;
    return MHD_YES;
  }
  MonitorServer::Request request{connection, method, url};
  return static_cast<MonitorServer*>(cls)->Handle(request) == MHD_YES ? MHD_YES
                                                                      : MHD_NO;
}

}  // namespace

// The /api/events streams. Each sends the state JSON whenever it changes,
// and a comment every 10 s to keep proxies from timing the stream out. A
// stream with nothing to send suspends its connection (libmicrohttpd's
// threads are a small pool: none may wait); "monitor-events" resumes the
// suspended ones every 500 ms, and each then looks for a change.
//
// Thread-safe. Lock order: mu_, then libmicrohttpd's own (the reader
// suspends under mu_); "monitor-events" resumes outside mu_. A connection
// in suspended_ is suspended and only "monitor-events" resumes it, so it
// cannot be closed (and freed) before.
class MonitorServer::EventStreams {
 public:
  explicit EventStreams(MonitorServer* server)
      : server_(server), resumer_([this] { ResumeLoop(); }) {}
  ~EventStreams() { Stop(); }

  // Resumes every suspended stream, ends each at its next read, and joins
  // "monitor-events". Call before stopping libmicrohttpd, which must not
  // find a suspended connection.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (resumer_.joinable()) resumer_.join();
  }

  // A new stream's response for `connection` (the caller queues and
  // releases it), or nullptr if kMaxEventStreams are open.
  MHD_Response* Open(MHD_Connection* connection) {
    if (open_.fetch_add(1) >= kMaxEventStreams) {
      open_.fetch_sub(1);
      return nullptr;
    }
    auto* stream = new Stream{this, connection, "", "", absl::Now()};
    MHD_Response* response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16384, &Read, stream, &Free);
    if (response == nullptr) Free(stream);
    return response;
  }

 private:
  struct Stream {
    EventStreams* streams;
    MHD_Connection* connection;
    std::string pending;  // to send
    std::string last;     // the state last sent
    absl::Time last_sent;
  };

  // libmicrohttpd's content reader: bytes to send, 0 with the connection
  // suspended, or the end.
  static ssize_t Read(void* cls, uint64_t, char* buffer, size_t max) {
    auto* stream = static_cast<Stream*>(cls);
    EventStreams* self = stream->streams;
    if (stream->pending.empty()) {
      if (PeerClosed(stream->connection))
        return MHD_CONTENT_READER_END_WITH_ERROR;
      std::string state = self->server_->StateJson();
      absl::Time now = absl::Now();
      if (state != stream->last) {
        stream->pending = absl::StrCat("data: ", state, "\n\n");
        stream->last = std::move(state);
        stream->last_sent = now;
      } else if (now - stream->last_sent >= absl::Seconds(10)) {
        stream->pending = ": keep-alive\n\n";
        stream->last_sent = now;
      }
    }
    if (stream->pending.empty()) {
      absl::MutexLock lock(&self->mu_);
      if (self->stopping_) return MHD_CONTENT_READER_END_OF_STREAM;
      MHD_suspend_connection(stream->connection);
      self->suspended_.push_back(stream->connection);
      return 0;
    }
    size_t n = std::min(max, stream->pending.size());
    std::memcpy(buffer, stream->pending.data(), n);
    stream->pending.erase(0, n);
    return static_cast<ssize_t>(n);
  }

  static void Free(void* cls) {
    auto* stream = static_cast<Stream*>(cls);
    stream->streams->open_.fetch_sub(1);
    delete stream;
  }

  // "monitor-events": every 500 ms (at once when stopping), resumes the
  // suspended streams.
  void ResumeLoop() {
    pthread_setname_np(pthread_self(), "monitor-events");
    for (bool stopping = false; !stopping;) {
      std::vector<MHD_Connection*> due;
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                             absl::Milliseconds(500));
        due.swap(suspended_);
        stopping = stopping_;
      }
      for (MHD_Connection* connection : due) MHD_resume_connection(connection);
    }
  }

  MonitorServer* const server_;
  std::atomic<int> open_{0};  // streams not yet freed
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<MHD_Connection*> suspended_ ABSL_GUARDED_BY(mu_);
  std::thread resumer_;  // "monitor-events"; last, started last
};

absl::StatusOr<std::unique_ptr<MonitorServer>> MonitorServer::Start(
    int listen_fd, MonitorOptions options, Ecv* ecv, Supervisor* supervisor,
    StatusRegistry* registry, EventRouter* router, DebugSession* debug) {
  absl::StatusOr<std::string> token = NewControlToken();
  if (!token.ok()) return token.status();
  if (listen(listen_fd, 128) != 0)
    return ErrnoStatus(errno, "listen on the monitor port");
  std::unique_ptr<MonitorServer> server(
      new MonitorServer(std::move(options), *std::move(token), ecv, supervisor,
                        registry, router, debug));
  server->daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME, 0,
      nullptr, nullptr, &Dispatch, server.get(), MHD_OPTION_LISTEN_SOCKET,
      listen_fd, MHD_OPTION_THREAD_POOL_SIZE, kThreadPoolSize,
      MHD_OPTION_CONNECTION_LIMIT, ConnectionLimit(),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxConnectionsPerAddress,
      MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutSeconds, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::InternalError("cannot start the monitor HTTP server");
  }
  return server;
}

MonitorServer::MonitorServer(MonitorOptions options, std::string token,
                             Ecv* ecv, Supervisor* supervisor,
                             StatusRegistry* registry, EventRouter* router,
                             DebugSession* debug)
    : options_(std::move(options)),
      policy_(PolicyFor(options_, token)),
      page_with_token_(absl::StrReplaceAll(
          kMonitorPage, {{kMonitorPageTokenPlaceholder, token}})),
      page_without_token_(absl::StrReplaceAll(
          kMonitorPage, {{kMonitorPageTokenPlaceholder, ""}})),
      ecv_(ecv),
      supervisor_(supervisor),
      registry_(registry),
      router_(router),
      debug_(debug),
      sampler_(std::make_unique<MonitorSampler>(MonitorSampler::Sources{
          supervisor, options_.metrics, registry, options_.cache_stats})),
      event_streams_(std::make_unique<EventStreams>(this)) {}

MonitorServer::~MonitorServer() {
  event_streams_->Stop();
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

int MonitorServer::Handle(Request& request) {
  MHD_Connection* connection = request.connection;
  auto header = [connection](const char* name) {
    const char* value =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
    return value == nullptr ? std::nullopt
                            : std::optional<absl::string_view>(value);
  };
  MonitorRequest facts;
  facts.method = request.method;
  facts.path = request.url;
  facts.from_loopback = FromLoopback(connection);
  facts.origin = header("Origin");
  facts.sec_fetch_site = header("Sec-Fetch-Site");
  facts.referer = header("Referer");
  facts.token = header(kControlTokenHeader);
  const MonitorDecision decision = ClassifyRequest(facts, policy_);
  const unsigned refusal = HttpStatus(decision.verdict);
  switch (decision.verdict) {
    case MonitorVerdict::kServe:
      break;
    case MonitorVerdict::kMethodNotAllowed:
      return Respond(connection, refusal, "method not allowed\n", "text/plain",
                     {{"Allow", AllowedMethods(decision.route)}});
    case MonitorVerdict::kRemoteControlRefused:
      return Respond(connection, refusal,
                     "changing state is allowed from loopback only "
                     "(ecv.allowRemoteControl)\n",
                     "text/plain");
    case MonitorVerdict::kBrowserWithoutToken:
      return Respond(connection, refusal,
                     "a browser's request to change state needs the "
                     "monitor page's X-Cluster2-Token\n",
                     "text/plain");
    case MonitorVerdict::kWrongToken:
      return Respond(connection, refusal, "wrong X-Cluster2-Token\n",
                     "text/plain");
  }

  std::string who = absl::StrCat("http ", Peer(connection));
  switch (decision.route) {
    case MonitorRoute::kEcv: {
      Ecv::State state = ecv_->Get();
      return Respond(connection, Ecv::HttpStatus(state),
                     Ecv::Body(state, options_.ip, options_.hostname,
                               options_.port, absl::Now()),
                     "text/plain");
    }
    case MonitorRoute::kMarkUp:
    case MonitorRoute::kMarkDown: {
      absl::StatusOr<Ecv::State> state = decision.route == MonitorRoute::kMarkUp
                                             ? ecv_->MarkUp(who)
                                             : ecv_->MarkDown(who);
      if (!state.ok())
        return Respond(connection, 409,
                       std::string(state.status().message()) + "\n",
                       "text/plain");
      return Respond(connection, 200,
                     Ecv::Body(*state, options_.ip, options_.hostname,
                               options_.port, absl::Now()),
                     "text/plain");
    }
    case MonitorRoute::kRestart: {
      auto pids = supervisor_->Restart(0, 0);
      if (!pids.ok())
        return Respond(connection, 409,
                       std::string(pids.status().message()) + "\n",
                       "text/plain");
      return Respond(connection, 202, "rolling restart begun\n", "text/plain");
    }
    case MonitorRoute::kRecycle: {
      const char* pid_text =
          MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "pid");
      std::optional<int> pid =
          pid_text == nullptr ? std::nullopt : ParsePid(pid_text);
      if (!pid.has_value())
        return Respond(connection, 400, "pid=N is required\n", "text/plain");
      absl::Status status = supervisor_->Recycle(*pid, who);
      if (!status.ok()) {
        return Respond(connection,
                       status.code() == absl::StatusCode::kNotFound ? 404 : 409,
                       std::string(status.message()) + "\n", "text/plain");
      }
      return Respond(connection, 202, "recycle begun\n", "text/plain");
    }
    case MonitorRoute::kDebug:
    case MonitorRoute::kDebugEnd:
    case MonitorRoute::kStacks:
      return ServeDebug(connection, decision.route);
    case MonitorRoute::kMetrics:
      return Respond(connection, 200, Metrics(), "text/plain; version=0.0.4");
    case MonitorRoute::kPage: {
      bool with_token =
          HostMayReceiveToken(header("Host").value_or(""), options_.hostname);
      // No framing: another site could overlay the buttons (clickjacking).
      return Respond(connection, 200,
                     with_token ? page_with_token_ : page_without_token_,
                     "text/html; charset=utf-8",
                     {{"X-Frame-Options", "DENY"},
                      {"Content-Security-Policy", "frame-ancestors 'none'"}});
    }
    case MonitorRoute::kState:
      sampler_->Watched();
      return Respond(connection, 200, StateJson(), "application/json");
    case MonitorRoute::kHistory:
      return Respond(connection, 200, HistoryJson(), "application/json");
    case MonitorRoute::kEvents:
      sampler_->Watched();
      return OpenEventStream(connection);
    case MonitorRoute::kNotFound:
      break;
  }
  return Respond(connection, 404, "not found\n", "text/plain");
}

int MonitorServer::ServeDebug(MHD_Connection* connection, MonitorRoute route) {
  auto argument = [connection](const char* name) -> const char* {
    return MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, name);
  };
  const char* pid_text = argument("pid");
  std::optional<int> pid =
      pid_text == nullptr ? std::nullopt : ParsePid(pid_text);
  const char* fresh = argument("fresh");
  const bool is_fresh = fresh != nullptr && absl::string_view(fresh) == "1";
  if (route == MonitorRoute::kStacks && !pid.has_value()) {
    return Respond(connection, 400, ErrorJson("pid=N is required"),
                   "application/json");
  }
  if (route == MonitorRoute::kDebug && pid.has_value() == is_fresh) {
    return Respond(connection, 400, ErrorJson("give one of pid=N and fresh=1"),
                   "application/json");
  }
  // Each waits for seconds on a libmicrohttpd thread: one at a time.
  if (debug_busy_.exchange(true)) {
    return Respond(connection, 409,
                   ErrorJson("another debug or stacks request is running"),
                   "application/json");
  }
  unsigned status = 200;
  std::string body;
  if (route == MonitorRoute::kStacks) {
    absl::StatusOr<StackDump> dump = debug_->Stacks(*pid);
    status = dump.ok() ? 200 : HttpStatusOf(dump.status());
    body = dump.ok() ? StackDumpJson(*pid, *dump)
                     : ErrorJson(dump.status().message());
  } else {
    absl::StatusOr<DebugInfo> info;
    if (route == MonitorRoute::kDebugEnd) {
      info = debug_->End();
    } else if (is_fresh) {
      info = debug_->OpenFresh();
    } else {
      const char* protocol = argument("protocol");
      info = debug_->Open(*pid, protocol == nullptr ? "" : protocol);
    }
    status = info.ok() ? 200 : HttpStatusOf(info.status());
    body =
        info.ok() ? DebugInfoJson(*info) : ErrorJson(info.status().message());
  }
  debug_busy_.store(false);
  return Respond(connection, status, body, "application/json");
}

int MonitorServer::OpenEventStream(MHD_Connection* connection) {
  MHD_Response* response = event_streams_->Open(connection);
  if (response == nullptr) {
    return Respond(
        connection, 503,
        absl::StrCat("at most ", kMaxEventStreams, " event streams at once\n"),
        "text/plain", {{"Retry-After", "10"}});
  }
  MHD_add_response_header(response, "Content-Type", "text/event-stream");
  MHD_add_response_header(response, "Cache-Control", "no-store");
  int result = MHD_queue_response(connection, 200, response);
  MHD_destroy_response(response);
  return result;
}

}  // namespace cluster2
