#include "master/internal/monitor_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"
#include "master/internal/monitor_page.h"

namespace cluster2 {

struct MonitorServer::Request {
  MHD_Connection* connection;
  std::string method;
  std::string url;
};

namespace {

std::atomic<bool> g_stopping{false};  // ends server-sent event streams

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

int Respond(MHD_Connection* connection, unsigned status,
            const std::string& body, const char* content_type) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, "Content-Type", content_type);
  MHD_add_response_header(response, "Cache-Control", "no-store");
  int result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

// One server-sent events stream: the state JSON whenever it changes, and a
// comment every 10 s to keep proxies from timing the stream out.
struct EventStream {
  MonitorServer* server;
  std::string pending;
  std::string last;
  absl::Time last_sent;
};

ssize_t StreamEvents(void* cls, uint64_t, char* buffer, size_t max) {
  auto* stream = static_cast<EventStream*>(cls);
  while (stream->pending.empty()) {
    if (g_stopping.load()) return MHD_CONTENT_READER_END_OF_STREAM;
    std::string state = stream->server->StateJson();
    if (state != stream->last) {
      stream->pending = absl::StrCat("data: ", state, "\n\n");
      stream->last = state;
      stream->last_sent = absl::Now();
    } else if (absl::Now() - stream->last_sent > absl::Seconds(10)) {
      stream->pending = ": keep-alive\n\n";
      stream->last_sent = absl::Now();
    } else {
      absl::SleepFor(absl::Milliseconds(500));
    }
  }
  size_t n = std::min(max, stream->pending.size());
  std::memcpy(buffer, stream->pending.data(), n);
  stream->pending.erase(0, n);
  return static_cast<ssize_t>(n);
}

void FreeStream(void* cls) { delete static_cast<EventStream*>(cls); }

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

absl::StatusOr<std::unique_ptr<MonitorServer>> MonitorServer::Start(
    int listen_fd, MonitorOptions options, Ecv* ecv, Supervisor* supervisor,
    StatusRegistry* registry, EventRouter* router) {
  if (listen(listen_fd, 64) != 0)
    return ErrnoStatus(errno, "listen on the monitor port");
  std::unique_ptr<MonitorServer> server(
      new MonitorServer(std::move(options), ecv, supervisor, registry, router));
  g_stopping = false;
  server->daemon_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
          MHD_USE_ITC,
      0, nullptr, nullptr, &Dispatch, server.get(), MHD_OPTION_LISTEN_SOCKET,
      listen_fd, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::InternalError("cannot start the monitor HTTP server");
  }
  return server;
}

struct MonitorServer::CacheProbe {
  std::unique_ptr<v1::Cache::Stub> stub;
};

MonitorServer::MonitorServer(MonitorOptions options, Ecv* ecv,
                             Supervisor* supervisor, StatusRegistry* registry,
                             EventRouter* router)
    : options_(std::move(options)),
      ecv_(ecv),
      supervisor_(supervisor),
      registry_(registry),
      router_(router) {
  if (!options_.cache_address.empty()) {
    // Scrapes come before the cache server is up, and after its restarts:
    // reconnect quickly, not with gRPC's default backoff of seconds.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    cache_probe_ = std::make_unique<CacheProbe>();
    cache_probe_->stub = v1::Cache::NewStub(grpc::CreateCustomChannel(
        options_.cache_address, grpc::InsecureChannelCredentials(), args));
  }
}

MonitorServer::~MonitorServer() {
  g_stopping = true;
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

int MonitorServer::Handle(Request& request) {
  MHD_Connection* connection = request.connection;
  const std::string& url = request.url;
  bool get = request.method == "GET" || request.method == "HEAD";
  bool post = request.method == "POST";

  if (get && url == options_.ecv_root) {
    Ecv::State state = ecv_->Get();
    return Respond(connection, Ecv::HttpStatus(state),
                   Ecv::Body(state, options_.ip, options_.hostname,
                             options_.port, absl::Now()),
                   "text/plain");
  }
  bool mark_up = url == options_.mark_up || (post && url == "/api/markup");
  bool mark_down =
      url == options_.mark_down || (post && url == "/api/markdown");
  bool control =
      mark_up || mark_down || url == "/api/restart" || url == "/api/recycle";
  if (control && !(get || post)) {
    return Respond(connection, 405, "method not allowed\n", "text/plain");
  }
  if (control && !options_.allow_remote_control && !FromLoopback(connection)) {
    return Respond(connection, 403,
                   "changing state is allowed from loopback only "
                   "(ecv.allowRemoteControl)\n",
                   "text/plain");
  }
  std::string who = absl::StrCat("http ", Peer(connection));
  if (mark_up || mark_down) {
    absl::StatusOr<Ecv::State> state =
        mark_up ? ecv_->MarkUp(who) : ecv_->MarkDown(who);
    if (!state.ok())
      return Respond(connection, 409,
                     std::string(state.status().message()) + "\n",
                     "text/plain");
    return Respond(connection, 200,
                   Ecv::Body(*state, options_.ip, options_.hostname,
                             options_.port, absl::Now()),
                   "text/plain");
  }
  if (post && url == "/api/restart") {
    auto pids = supervisor_->Restart(0, 0);
    if (!pids.ok())
      return Respond(connection, 409,
                     std::string(pids.status().message()) + "\n", "text/plain");
    return Respond(connection, 202, "rolling restart begun\n", "text/plain");
  }
  if (post && url == "/api/recycle") {
    const char* pid_text =
        MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "pid");
    int pid = 0;
    if (pid_text == nullptr || !absl::SimpleAtoi(pid_text, &pid)) {
      return Respond(connection, 400, "pid=N is required\n", "text/plain");
    }
    absl::Status status = supervisor_->Recycle(pid, who);
    if (!status.ok()) {
      return Respond(connection,
                     status.code() == absl::StatusCode::kNotFound ? 404 : 409,
                     std::string(status.message()) + "\n", "text/plain");
    }
    return Respond(connection, 202, "recycle begun\n", "text/plain");
  }
  if (get && url == "/metrics") {
    return Respond(connection, 200, Metrics(), "text/plain; version=0.0.4");
  }
  if (get && (url == "/" || url == "/debug")) {
    return Respond(connection, 200, kMonitorPage, "text/html; charset=utf-8");
  }
  if (get && url == "/api/state") {
    return Respond(connection, 200, StateJson(), "application/json");
  }
  if (get && url == "/api/events") {
    auto* stream = new EventStream{this, "", "", absl::Now()};
    MHD_Response* response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16384, &StreamEvents, stream, &FreeStream);
    MHD_add_response_header(response, "Content-Type", "text/event-stream");
    MHD_add_response_header(response, "Cache-Control", "no-store");
    int result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    return result;
  }
  return Respond(connection, 404, "not found\n", "text/plain");
}

std::string MonitorServer::StateJson() {
  Ecv::State ecv = ecv_->Get();
  absl::Time now = absl::Now();
  std::string json = absl::StrCat(
      "{\"cluster\":", JsonString(options_.cluster_name),
      ",\"ecv\":{\"health\":", JsonString(Ecv::HealthName(ecv.health)),
      ",\"mode\":", JsonString(ecv.mode),
      ",\"changed_by\":", JsonString(ecv.changed_by),
      ",\"ready_workers\":", ecv.ready_workers, "},\"workers\":[");
  bool first = true;
  for (const WorkerSnapshot& worker : supervisor_->Workers()) {
    absl::StrAppend(&json, first ? "" : ",", "{\"id\":", worker.id,
                    ",\"pid\":", worker.pid,
                    ",\"state\":", JsonString(WorkerStateName(worker.state)),
                    ",\"restarts\":", worker.restarts);
    if (worker.pid != 0) {
      absl::StrAppendFormat(&json, ",\"uptime\":%.1f",
                            absl::ToDoubleSeconds(now - worker.started_at));
    }
    const HeartbeatFigures beat = worker.heartbeat.value_or(HeartbeatFigures());
    absl::StrAppendFormat(
        &json, ",\"rss\":%d,\"cpu\":%.2f,\"requests\":%d,\"lag\":%.3f",
        beat.rss_bytes, absl::ToDoubleSeconds(beat.cpu_time),
        beat.requests_total, absl::ToDoubleSeconds(beat.lag));
    std::string note = worker.reason.empty() && !worker.last_exit.empty()
                           ? "last exit: " + worker.last_exit
                           : worker.reason;
    absl::StrAppend(&json, ",\"note\":", JsonString(note), "}");
    first = false;
  }
  absl::StrAppend(&json, "],\"statuses\":[");
  first = true;
  for (const std::string& name : registry_->Names()) {
    absl::StrAppend(&json, first ? "" : ",", JsonString(name));
    first = false;
  }
  absl::StrAppend(&json, "]}");
  return json;
}

std::string MonitorServer::Metrics() {
  std::string text;
  auto family = [&](const char* name, const char* type, const char* help) {
    absl::StrAppend(&text, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  };
  std::vector<WorkerSnapshot> workers = supervisor_->Workers();
  std::map<std::string, int> by_state;
  for (const char* state :
       {"starting", "ready", "paused", "draining", "exited", "failed"}) {
    by_state[state] = 0;
  }
  for (const WorkerSnapshot& worker : workers)
    ++by_state[std::string(WorkerStateName(worker.state))];

  family("cluster2_workers", "gauge",
         "Worker processes and empty slots, by state.");
  for (const auto& [state, count] : by_state) {
    absl::StrAppend(&text, "cluster2_workers{state=\"", state, "\"} ", count,
                    "\n");
  }
  family("cluster2_workers_desired", "gauge",
         "The configured number of workers.");
  absl::StrAppend(&text, "cluster2_workers_desired ",
                  supervisor_->desired_workers(), "\n");
  family("cluster2_worker_restarts_total", "counter",
         "Processes started in a slot after its first.");
  for (const WorkerSnapshot& worker : workers) {
    if (worker.pid != 0 && worker.state == WorkerState::kDraining) continue;
    absl::StrAppend(&text, "cluster2_worker_restarts_total{slot=\"", worker.id,
                    "\"} ", worker.restarts, "\n");
  }
  struct Figure {
    const char* name;
    const char* type;
    const char* help;
    std::function<double(const HeartbeatFigures&)> value;
  };
  std::vector<Figure> figures = {
      {"cluster2_worker_resident_memory_bytes", "gauge",
       "Resident memory of the worker.",
       [](const HeartbeatFigures& b) {
         return static_cast<double>(b.rss_bytes);
       }},
      {"cluster2_worker_cpu_seconds_total", "counter",
       "CPU time of the worker process.",
       [](const HeartbeatFigures& b) {
         return absl::ToDoubleSeconds(b.cpu_time);
       }},
      {"cluster2_worker_open_fds", "gauge",
       "Open file descriptors of the worker.",
       [](const HeartbeatFigures& b) {
         return static_cast<double>(b.open_fds);
       }},
      {"cluster2_worker_requests_total", "counter",
       "Requests the worker reported as served.",
       [](const HeartbeatFigures& b) {
         return static_cast<double>(b.requests_total);
       }},
      {"cluster2_worker_heartbeat_lag_seconds", "gauge",
       "How late the worker sent its last heartbeat.",
       [](const HeartbeatFigures& b) { return absl::ToDoubleSeconds(b.lag); }},
      {"cluster2_worker_latency_p99_seconds", "gauge",
       "99th percentile latency the worker reported for its last heartbeat "
       "period.",
       [](const HeartbeatFigures& b) {
         return absl::ToDoubleSeconds(b.latency_p99);
       }},
  };
  for (const Figure& figure : figures) {
    family(figure.name, figure.type, figure.help);
    for (const WorkerSnapshot& worker : workers) {
      if (!worker.heartbeat || worker.pid == 0) continue;
      absl::StrAppendFormat(&text, "%s{slot=\"%d\",pid=\"%d\"} %.17g\n",
                            figure.name, worker.id, worker.pid,
                            figure.value(*worker.heartbeat));
    }
  }
  Ecv::State ecv = ecv_->Get();
  family("cluster2_ecv_up", "gauge",
         "1 when the ECV tells load balancers to send traffic.");
  absl::StrAppend(&text, "cluster2_ecv_up ",
                  ecv.health == Ecv::Health::kUp ? 1 : 0, "\n");
  family("cluster2_ecv_state", "gauge",
         "The ECV state (1 for the current one).");
  for (Ecv::Health health :
       {Ecv::Health::kUp, Ecv::Health::kMarkedDown, Ecv::Health::kDown}) {
    absl::StrAppend(&text, "cluster2_ecv_state{state=\"",
                    health == Ecv::Health::kMarkedDown
                        ? "marked_down"
                        : Ecv::HealthName(health),
                    "\"} ", ecv.health == health ? 1 : 0, "\n");
  }
  EventRouter::Counters events = router_->counters();
  family("cluster2_events_routed_total", "counter",
         "Events routed by the master.");
  absl::StrAppend(&text, "cluster2_events_routed_total ", events.routed, "\n");
  family("cluster2_event_deliveries_total", "counter",
         "Deliveries of events to processes.");
  absl::StrAppend(&text, "cluster2_event_deliveries_total ", events.delivered,
                  "\n");
  family("cluster2_events_refused_total", "counter",
         "Events refused (bad name or size).");
  absl::StrAppend(&text, "cluster2_events_refused_total ", events.refused,
                  "\n");
  family("cluster2_statuses", "gauge",
         "Status names registered in the cluster.");
  absl::StrAppend(&text, "cluster2_statuses ", registry_->Names().size(), "\n");
  if (cache_probe_ != nullptr) AppendCacheMetrics(&text);
  return text;
}

void MonitorServer::AppendCacheMetrics(std::string* text) {
  v1::Cache::Stub* stub = cache_probe_->stub.get();
  grpc::ClientContext context;
  context.set_wait_for_ready(true);  // through a reconnection
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(300));
  v1::StatsResponse stats;
  bool up = stub->Stats(&context, v1::StatsRequest(), &stats).ok();
  absl::StrAppend(text,
                  "# HELP cluster2_cache_up 1 when the cache server answered "
                  "this scrape.\n# TYPE cluster2_cache_up gauge\n"
                  "cluster2_cache_up ",
                  up ? 1 : 0, "\n");
  if (!up) return;
  struct Figure {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (v1::NamespaceStats::*value)() const;
  };
  const Figure figures[] = {
      {"cluster2_cache_hits_total", "counter", "Reads that found a value.",
       &v1::NamespaceStats::hits},
      {"cluster2_cache_misses_total", "counter",
       "Plain reads that found nothing.", &v1::NamespaceStats::misses},
      {"cluster2_cache_loads_total", "counter",
       "Get-or-load leases granted (one loader run each).",
       &v1::NamespaceStats::loads},
      {"cluster2_cache_load_errors_total", "counter",
       "Loads that failed (parked callers told the error).",
       &v1::NamespaceStats::errors},
      {"cluster2_cache_keys", "gauge", "Keys held.", &v1::NamespaceStats::keys},
      {"cluster2_cache_bytes", "gauge",
       "Bytes of keys and values held (plus a fixed overhead per key).",
       &v1::NamespaceStats::bytes},
  };
  for (const Figure& figure : figures) {
    absl::StrAppend(text, "# HELP ", figure.name, " ", figure.help, "\n# TYPE ",
                    figure.name, " ", figure.type, "\n");
    for (const v1::NamespaceStats& space : stats.namespaces()) {
      absl::StrAppend(text, figure.name, "{namespace=\"", space.namespace_(),
                      "\"} ", (space.*figure.value)(), "\n");
    }
  }
}

}  // namespace cluster2
