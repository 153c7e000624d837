#include "master/master.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "cache_server/cache_server.h"
#include "common/log.h"
#include "common/status.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "master/internal/app_check.h"
#include "master/internal/cache_health_probe.h"
#include "master/internal/cache_supervisor.h"
#include "master/internal/cluster_metrics.h"
#include "master/internal/config.h"
#include "master/internal/debug_session.h"
#include "master/internal/ecv.h"
#include "master/internal/emitter_bridge.h"
#include "master/internal/event_router.h"
#include "master/internal/event_timeline.h"
#include "master/internal/listener.h"
#include "master/internal/master_events.h"
#include "master/internal/master_options.h"
#include "master/internal/monitor_server.h"
#include "master/internal/output_collector.h"
#include "master/internal/recycle_policies.h"
#include "master/internal/reuseport_group.h"
#include "master/internal/run_dir.h"
#include "master/internal/services.h"
#include "master/internal/session_server.h"
#include "master/internal/signals.h"
#include "master/internal/spawn.h"
#include "master/internal/status_registry.h"
#include "master/internal/supervisor.h"

namespace cluster2 {
namespace {

using google::protobuf::util::MessageDifferencer;

// The soft limit on open descriptors raised to the hard one (as nginx's
// worker_rlimit_nofile and systemd's services do): the master holds a
// session per worker and the monitor port's connections, and the usual soft
// limit of 1,024 would let a connection flood starve it. Children get the
// usual limit back (spawn.cc). Returns the soft limit found (0 if unknown).
rlim_t RaiseDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  const rlim_t original = limit.rlim_cur;
  if (limit.rlim_cur == limit.rlim_max) return original;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    LogWarning(absl::StrCat("cannot raise the open file limit to ",
                            limit.rlim_max, ": ", strerror(errno)));
  }
  return original;
}

// Waits up to `timeout` for child `pid` to exit and reaps it; false if it
// is still running. Event-driven: a pidfd becomes readable at the exit.
bool WaitForExit(pid_t pid, absl::Duration timeout) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd ready{pidfd, POLLIN, 0};
    poll(&ready, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    close(pidfd);
  }
  return waitpid(pid, nullptr, WNOHANG) == pid;
}

// Sessions that may wait for their hello at once: workers say it first
// thing, so only strays and floods are ever turned away.
constexpr size_t kMaxSessionsBeforeHello = 64;

absl::Status Fail(absl::string_view what, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(what, status.message()));
}

// The address shown in the ECV body: the bind address, or for a wildcard
// bind the host's first non-loopback IPv4 address.
std::string ServiceAddress(const std::string& host) {
  if (host != "0.0.0.0" && host != "::") return host;
  std::string found = "127.0.0.1";
  ifaddrs* addresses = nullptr;
  if (getifaddrs(&addresses) != 0) return found;
  for (ifaddrs* it = addresses; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr,
              text, sizeof(text));
    if (std::string(text).rfind("127.", 0) != 0) {
      found = text;
      break;
    }
  }
  freeifaddrs(addresses);
  return found;
}

// One running cluster: the resources it holds, released in reverse order.
class Master {
 public:
  Master(v1::ClusterConfig config,
         std::vector<std::shared_ptr<RecyclePolicy>> policies,
         ConfigSource reload_source)
      : requested_(config),
        config_(std::move(config)),
        extra_policies_(std::move(policies)),
        reload_source_(std::move(reload_source)) {}

  ~Master() {
    monitor_.reset();  // its scrapes read the bridge's counters
    bridge_.reset();   // no more deliveries from other hosts
    if (tcp_server_ != nullptr) {
      tcp_server_->Shutdown(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(100));
    }
    if (server_ != nullptr) {
      // Every worker is gone; a control call still running gets 100 ms.
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(100));
    }
    session_server_.reset();  // after the server's shutdown, which it serves
    for (int fd : app_sockets_) close(fd);
    if (mon_socket_ >= 0) close(mon_socket_);
  }

  absl::Status Start() {
    // A command that cannot run fails the start before anything is created.
    // A fresh debug worker runs the first group's.
    const WorkerGroup first = WorkerGroupsFromConfig(config_).front();
    auto executable = ResolveExecutable(first.command[0], first.cwd);
    if (!executable.ok()) return executable.status();
    if (!config_.log_file().empty())
      CLUSTER2_RETURN_IF_ERROR(OpenLogFile(config_.log_file()));
    CLUSTER2_ASSIGN_OR_RETURN(output_, OutputCollector::Create());
    const rlim_t child_descriptor_limit = RaiseDescriptorLimit();
    launcher_ = std::make_unique<PosixProcessLauncher>(output_.get(),
                                                       child_descriptor_limit);
    std::string run_dir =
        config_.run_dir().empty()
            ? DefaultRunDir(config_.name(), std::getenv, geteuid())
            : config_.run_dir();
    CLUSTER2_ASSIGN_OR_RETURN(run_dir_, RunDirectory::Open(run_dir));
    config_.set_run_dir(run_dir_->path());

    CLUSTER2_RETURN_IF_ERROR(BindServicePort());
    {
      // Bound before the workers start, so a busy monitor port fails the
      // start at once; the monitor server listens on it once gRPC serves.
      auto reserved = ReserveTcp(config_.mon_host(), config_.mon_port());
      if (!reserved.ok()) return Fail("monitor ", reserved.status());
      mon_socket_ = reserved->fd;
      config_.set_mon_port(reserved->port);
    }

    MasterEndpoints& endpoints = endpoints_;
    endpoints.master_address = run_dir_->Address(RunDirectory::kMasterSocket);
    if (StartCacheServer())
      endpoints.cache_address = run_dir_->Address(RunDirectory::kCacheSocket);
    cache_address_ = endpoints.cache_address;
    endpoints.listen_fds = app_sockets_;
    endpoints.slot_sockets = slot_group_.get();
    SupervisorOptions options = SupervisorOptionsFromConfig(
        config_, endpoints, CurrentEnvironment(), extra_policies_);
    supervisor_ = std::make_unique<Supervisor>(std::move(options),
                                               launcher_.get(), &clock_);
    metrics_ =
        std::make_unique<ClusterMetrics>(config_.name(), config_.balance());
    timeline_ = std::make_unique<EventTimeline>(metrics_.get());
    supervisor_->SetObserver(timeline_.get());
    debug_ = std::make_unique<DebugSession>(
        DebugOptionsFromConfig(config_, *executable), RealDebugProbes(),
        supervisor_.get(), launcher_.get(), &clock_);

    ecv_ = std::make_unique<Ecv>(
        config_.ecv().mode(), config_.ecv().disable(), &clock_,
        [this] {
          unsigned ready = 0;
          for (const WorkerSnapshot& worker : supervisor_->Workers()) {
            ready += worker.state == WorkerState::kReady ? 1 : 0;
          }
          return ready;
        },
        [this] { return supervisor_->AllReady(); },
        [this](const Ecv::State& state) {
          NoteEcvChange(state);
          if (session_server_ != nullptr) {
            session_server_->SetServing(state.health == Ecv::Health::kUp);
          }
        });
    CLUSTER2_RETURN_IF_ERROR(StartServer());
    CLUSTER2_RETURN_IF_ERROR(StartControlTcp());
    if (!config_.emitter().bridge().empty()) {
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      CLUSTER2_ASSIGN_OR_RETURN(
          bridge_, EmitterBridge::Start(
                       config_.emitter().bridge(), config_.name(),
                       absl::StrCat(host, "/", getpid()), router_.get()));
    }
    CLUSTER2_RETURN_IF_ERROR(StartMonitor());
    LogInfo(absl::StrCat("cluster '", config_.name(), "': port ",
                         config_.port(), ", ", config_.no_workers(),
                         " workers, monitor http://", config_.mon_host(), ":",
                         config_.mon_port(), ", control ",
                         run_dir_->Address(RunDirectory::kMasterSocket)));
    LogInfo(absl::StrCat("balance: ", config_.balance(),
                         slot_group_ != nullptr ? ", " + slot_group_->Describe()
                                                : std::string()));
    return supervisor_->Start();
  }

  // The event loop: signals and timers, until every worker is gone.
  void Run() {
    if (supervisor_ == nullptr) return;
    while (!supervisor_->Stopped()) {
      absl::Time next = supervisor_->Tick();
      if (cache_supervisor_ != nullptr)
        next = std::min(next, cache_supervisor_->Tick());
      ecv_->Refresh();
      if (int signal = WaitForSignal(next); signal != 0) HandleSignal(signal);
    }
    LogInfo("all workers have exited; master stops");
    StopCacheServer();
  }

  MasterContext& context() { return *events_; }

  void RequestStop(bool fast, absl::Duration grace, absl::string_view reason) {
    if (session_server_ != nullptr) session_server_->SetServing(false);
    if (supervisor_ != nullptr) supervisor_->Stop(fast, grace, reason);
  }

 private:
  absl::Status BindServicePort() {
    if (int inherited = InheritedListenSocket(); inherited >= 0) {
      // even needs a socket per slot; the one inherited is shared.
      if (config_.balance() == "even") config_.set_balance("shared");
      if (config_.balance() == "reuseport") {
        return absl::InvalidArgumentError(
            "field 'balance': \"reuseport\" needs the master to bind the port, "
            "but a "
            "socket was inherited (LISTEN_FDS)");
      }
      LogInfo("using the listening socket inherited on fd 3");
      app_sockets_.push_back(inherited);
      return absl::OkStatus();
    }
    if (config_.balance() == "even") {
      CLUSTER2_ASSIGN_OR_RETURN(
          slot_group_,
          ReuseportGroup::Create(config_.host(), config_.port(),
                                 config_.backlog(), config_.no_workers()));
      config_.set_port(slot_group_->port());
      return absl::OkStatus();
    }
    if (config_.balance() == "reuseport") {
      CLUSTER2_ASSIGN_OR_RETURN(
          std::vector<BoundSocket> group,
          ListenTcpGroup(config_.host(), config_.port(), config_.backlog(),
                         config_.no_workers()));
      for (const BoundSocket& socket : group) app_sockets_.push_back(socket.fd);
      config_.set_port(group.front().port);
      return absl::OkStatus();
    }
    CLUSTER2_ASSIGN_OR_RETURN(
        BoundSocket socket,
        ListenTcp(config_.host(), config_.port(), config_.backlog()));
    app_sockets_.push_back(socket.fd);
    config_.set_port(socket.port);
    return absl::OkStatus();
  }

  absl::Status StartServer() {
    // grpc.health.v1 is served on the session server's loop.
    grpc::EnableDefaultHealthCheckService(false);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    router_ = std::make_unique<EventRouter>(getpid());
    registry_ = std::make_unique<StatusRegistry>(getpid());
    // The master's own status: its worker table.
    registry_->RegisterLocal(
        "workers", [this] { return WorkerTable(); }, nullptr);
    events_ = std::make_unique<MasterEvents>(router_.get(), registry_.get());
    SessionServerOptions sessions;
    sessions.max_sessions_before_hello = kMaxSessionsBeforeHello;
    sessions.hello_timeout = absl::Milliseconds(config_.hello_timeout());
    sessions.cluster_name = config_.name();
    sessions.cache_address = cache_address_;
    session_server_ = std::make_unique<SessionServer>(
        sessions, supervisor_.get(), router_.get(), registry_.get(),
        debug_.get());
    ecv_service_ = std::make_unique<EcvService>(ecv_.get());
    status_service_ = std::make_unique<StatusService>(registry_.get());
    ClusterService::Hooks hooks;
    hooks.config = [this] { return ConfigNow(); };
    hooks.request_stop = [this](bool fast, absl::Duration grace) {
      RequestStop(fast, grace, "Cluster.Shutdown");
      kill(getpid(), SIGUSR2);  // wake the loop
    };
    if (reload_source_) {
      hooks.reload = [this](bool restart_all) { return Reload(restart_all); };
    }
    control_hooks_ = hooks;
    cluster_service_ = std::make_unique<ClusterService>(
        supervisor_.get(), debug_.get(), std::move(hooks));
    grpc::ServerBuilder builder;
    std::string address = run_dir_->Address(RunDirectory::kMasterSocket);
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    session_server_->Register(&builder);
    builder.RegisterService(cluster_service_.get());
    builder.RegisterService(status_service_.get());
    builder.RegisterService(ecv_service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve gRPC on ", address));
    }
    session_server_->Start();
    std::string path = run_dir_->File(RunDirectory::kMasterSocket);
    if (chmod(path.c_str(), 0600) != 0)
      return ErrnoStatus(errno, "chmod " + path);
    // NOT_SERVING (SessionServer's default) until the ECV is up (every
    // initial worker ready).
    return absl::OkStatus();
  }

  // control.tcp: the Cluster, Status and Ecv services on TCP, mutual TLS
  // only, on a server of their own (no worker session or emitter there).
  absl::Status StartControlTcp() {
    const v1::ClusterConfig::Control& control = config_.control();
    if (control.tcp().empty()) return absl::OkStatus();
    grpc::SslServerCredentialsOptions tls(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    CLUSTER2_ASSIGN_OR_RETURN(pair.cert_chain,
                              ReadPem("control.cert", control.cert()));
    CLUSTER2_ASSIGN_OR_RETURN(pair.private_key,
                              ReadPem("control.key", control.key()));
    CLUSTER2_ASSIGN_OR_RETURN(tls.pem_root_certs,
                              ReadPem("control.clientCa", control.client_ca()));
    tls.pem_key_cert_pairs.push_back(std::move(pair));
    tcp_ecv_service_ = std::make_unique<EcvService>(ecv_.get());
    tcp_status_service_ = std::make_unique<StatusService>(registry_.get());
    tcp_cluster_service_ = std::make_unique<ClusterService>(
        supervisor_.get(), debug_.get(), control_hooks_);
    grpc::ServerBuilder builder;
    int bound_port = 0;
    builder.AddListeningPort(control.tcp(), grpc::SslServerCredentials(tls),
                             &bound_port);
    builder.RegisterService(tcp_cluster_service_.get());
    builder.RegisterService(tcp_status_service_.get());
    builder.RegisterService(tcp_ecv_service_.get());
    tcp_server_ = builder.BuildAndStart();
    if (tcp_server_ == nullptr || bound_port == 0) {
      return absl::UnavailableError(
          absl::StrCat("control.tcp: cannot serve on ", control.tcp(),
                       " (address in use, or not an address of this host?)"));
    }
    LogInfo(absl::StrCat("control API on ", control.tcp(),
                         " (TLS, client certificates of ", control.client_ca(),
                         ")"));
    return absl::OkStatus();
  }

  // The contents of the PEM file `path` (config field `field`).
  static absl::StatusOr<std::string> ReadPem(const char* field,
                                             const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": cannot read a PEM file at '", path, "'"));
    }
    return text.str();
  }

  absl::Status StartMonitor() {
    char hostname[256] = {};
    gethostname(hostname, sizeof(hostname) - 1);
    MonitorOptions options = MonitorOptionsFromConfig(
        config_, ServiceAddress(config_.host()), hostname);
    options.metrics = metrics_.get();
    options.timeline = timeline_.get();
    if (bridge_ != nullptr) {
      options.bridge = [this] {
        EmitterBridge::Counters counters = bridge_->counters();
        return MetricsSnapshot::Bridge{counters.sent, counters.received,
                                       counters.repeated, counters.dropped};
      };
    }
    options.cache_max_memory_bytes = config_.cache().max_memory();
    options.worker_max_rss_bytes = [this] {
      return ConfigNow().recycle().max_rss_bytes();
    };
    if (cache_supervisor_ != nullptr) {
      options.cache_restarts = [this] { return cache_supervisor_->restarts(); };
    }
    if (cache_probe_ != nullptr) {
      // Scrapes read the probe's latest answer; the probe may be gone
      // (StopCacheServer) while the monitor still serves.
      std::weak_ptr<CacheHealthProbe> probe = cache_probe_;
      options.cache_stats = [probe]() -> std::optional<CacheStatsSample> {
        std::shared_ptr<CacheHealthProbe> alive = probe.lock();
        return alive != nullptr ? alive->Latest() : std::nullopt;
      };
    }
    CLUSTER2_ASSIGN_OR_RETURN(
        monitor_,
        MonitorServer::Start(mon_socket_, std::move(options), ecv_.get(),
                             supervisor_.get(), registry_.get(), router_.get(),
                             debug_.get()));
    mon_socket_ = -1;  // the monitor server owns it now
    if (config_.ecv().mode() == "monitor") {
      AppCheckOptions check = AppCheckOptionsFromConfig(config_);
      app_check_ = std::make_unique<AppCheck>(std::move(check), ecv_.get());
    }
    return absl::OkStatus();
  }

  // The ECV's changes of health, for the page's timeline.
  void NoteEcvChange(const Ecv::State& state) {
    const Ecv::Health before = last_health_.exchange(state.health);
    if (before == state.health) return;
    std::string kind;
    if (state.health == Ecv::Health::kMarkedDown) {
      kind = "marked_down";
    } else if (before == Ecv::Health::kMarkedDown) {
      kind = "marked_up";
    } else {
      kind = state.health == Ecv::Health::kUp ? "ecv_up" : "ecv_down";
    }
    timeline_->AddClusterEvent(clock_.Now(), kind, state.changed_by);
  }

  v1::ClusterConfig ConfigNow() const {
    absl::MutexLock lock(&config_mu_);
    return config_;
  }

  // Reads the configuration again and applies what can change while the
  // master runs (Cluster.Reload, SIGHUP). Logs the outcome.
  absl::StatusOr<v1::ReloadResponse> Reload(bool restart_all) {
    absl::MutexLock reloading(&reload_mu_);
    absl::StatusOr<v1::ClusterConfig> next = reload_source_();
    if (!next.ok()) {
      LogError(absl::StrCat("reload refused, nothing changed: ",
                            next.status().message()));
      return absl::InvalidArgumentError(next.status().message());
    }
    v1::ReloadResponse response;
    for (std::string& field : FieldsNeedingRestart(requested_, *next))
      response.add_needs_restart(std::move(field));
    absl::StatusOr<Supervisor::Reconfigured> done = supervisor_->Reconfigure(
        SupervisorOptionsFromConfig(*next, endpoints_, CurrentEnvironment(),
                                    extra_policies_),
        restart_all);
    if (!done.ok()) {
      LogError(absl::StrCat("reload refused, nothing changed: ",
                            done.status().message()));
      return done.status();
    }
    for (std::string& change : done->changes)
      response.add_changes(std::move(change));
    for (std::string& group : done->replaced_groups)
      response.add_replaced_groups(std::move(group));
    if (!response.needs_restart().empty()) {
      LogWarning(absl::StrCat(
          "reload: changed fields that need a new master were not applied: ",
          absl::StrJoin(response.needs_restart(), ", ")));
    }
    v1::ClusterConfig applied;
    {
      absl::MutexLock lock(&config_mu_);
      const v1::ClusterConfig::Ecv before = config_.ecv();
      config_ = AppliedConfig(config_, *std::move(next));
      applied = config_;
      if (MessageDifferencer::Equals(before, applied.ecv())) return response;
      response.add_changes(absl::StrCat("ecv: mode ", before.mode(), " -> ",
                                        applied.ecv().mode(), ", monitor ",
                                        applied.ecv().monitor()));
    }
    ReloadEcv(applied);
    return response;
  }

  // A reload changed the ECV's mode or monitor check: the check restarts
  // with its new options, and a switch to monitor mode takes the result of
  // one check made now, so the health does not drop in between.
  void ReloadEcv(const v1::ClusterConfig& config)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_) {
    app_check_.reset();
    if (config.ecv().mode() != "monitor") {
      ecv_->SetMode(config.ecv().mode(), "");
      return;
    }
    AppCheckOptions check = AppCheckOptionsFromConfig(config);
    ecv_->SetMode("monitor", CheckApp(check));
    app_check_ = std::make_unique<AppCheck>(std::move(check), ecv_.get());
  }

  // The value of the master's "workers" status: one object per worker.
  google::protobuf::Value WorkerTable() const {
    google::protobuf::Value table;
    google::protobuf::ListValue* list = table.mutable_list_value();
    for (const WorkerSnapshot& snapshot : supervisor_->Workers()) {
      google::protobuf::Struct* worker =
          list->add_values()->mutable_struct_value();
      (*worker->mutable_fields())["id"].set_number_value(snapshot.id);
      (*worker->mutable_fields())["pid"].set_number_value(snapshot.pid);
      (*worker->mutable_fields())["state"].set_string_value(
          std::string(WorkerStateName(snapshot.state)));
      (*worker->mutable_fields())["restarts"].set_number_value(
          snapshot.restarts);
    }
    return table;
  }

  void HandleSignal(int signal) {
    const bool stopping = supervisor_->Stopping();
    switch (ActionFor(signal, stopping)) {
      case SignalAction::kReap:
        ReapChildren();
        break;
      case SignalAction::kGracefulStop:
        RequestStop(/*fast=*/false,
                    absl::Milliseconds(ConfigNow().stop_timeout()),
                    strsignal(signal));
        break;
      case SignalAction::kFastStop:
        RequestStop(/*fast=*/true, absl::ZeroDuration(),
                    absl::StrCat(stopping ? "second " : "", strsignal(signal)));
        break;
      case SignalAction::kRollingRestart:
        // Reload (logged there), then every worker is replaced.
        if (reload_source_) {
          (void)Reload(/*restart_all=*/true);
        } else if (auto pids = supervisor_->Restart(0, 0); !pids.ok()) {
          LogWarning(absl::StrCat("SIGHUP: ", pids.status().message()));
        }
        break;
      case SignalAction::kScaleUp:
      case SignalAction::kScaleDown: {
        const std::string group = supervisor_->group_names().front();
        unsigned workers = supervisor_->desired_workers(group);
        workers = signal == SIGTTIN ? workers + 1 : workers - 1;
        if (auto scaled = supervisor_->Scale(workers, group); !scaled.ok()) {
          LogWarning(
              absl::StrCat(strsignal(signal), ": ", scaled.status().message()));
        }
        break;
      }
      case SignalAction::kReopenLog:
        if (absl::Status status = ReopenLogFile(); !status.ok()) {
          LogError(absl::StrCat("SIGUSR1: ", status.message()));
        } else {
          LogInfo("log file reopened (SIGUSR1)");
        }
        break;
      case SignalAction::kWake:
        break;
      case SignalAction::kIgnore:
        LogWarning(absl::StrCat("signal ", strsignal(signal), " ignored"));
        break;
    }
  }

  void ReapChildren() {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (cache_supervisor_ == nullptr ||
          !cache_supervisor_->ProcessExited(pid, status)) {
        supervisor_->ProcessExited(pid, status);
        debug_->ProcessExited(pid);
      }
    }
  }

  // The standalone cache server (cache.enable, cache.mode "standalone"): a
  // child like the workers, restarted if it dies. Its binary is
  // cluster2-cache beside the master's (or in ../cache_server/, the Bazel
  // layout). False if it is not started.
  bool StartCacheServer() {
    if (!config_.cache().enable()) return false;
    if (config_.cache().mode() == "master") {  // in-process
      CacheServerOptions options;
      options.socket_path = run_dir_->File(RunDirectory::kCacheSocket);
      options.data_dir = CacheDataDir();
      options.max_memory_bytes = config_.cache().max_memory();
      options.backend = config_.cache().backend();
      absl::StatusOr<std::unique_ptr<CacheServer>> server =
          CacheServer::Start(options);
      if (!server.ok()) {
        LogError(absl::StrCat("cache (in the master): ",
                              server.status().message(), ": the cache is off"));
        return false;
      }
      in_process_cache_ = *std::move(server);
      // For /metrics only: this process serves it.
      cache_probe_ = std::make_shared<CacheHealthProbe>(
          run_dir_->Address(RunDirectory::kCacheSocket), absl::Seconds(1),
          [] { return getpid(); }, nullptr);
      return true;
    }
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string dir(self, length > 0 ? static_cast<size_t>(length) : 0);
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& candidate :
         {dir + "/cluster2-cache", dir + "/../cache_server/cluster2-cache"}) {
      if (access(candidate.c_str(), X_OK) == 0) {
        cache_binary_ = candidate;
        break;
      }
    }
    if (cache_binary_.empty()) {
      LogWarning(
          "cluster2-cache not found beside the master: the cache is off "
          "(cache.enable)");
      return false;
    }
    CacheSupervisorOptions options = CacheSupervisorOptionsFromConfig(
        config_, cache_binary_, run_dir_->File(RunDirectory::kCacheSocket),
        CacheDataDir(), CurrentEnvironment());
    cache_supervisor_ = std::make_unique<CacheServerSupervisor>(
        std::move(options), launcher_.get(), &clock_);
    cache_supervisor_->Start();
    cache_probe_ = std::make_shared<CacheHealthProbe>(
        run_dir_->Address(RunDirectory::kCacheSocket), absl::Seconds(1),
        [this] { return cache_supervisor_->pid(); },
        [this](pid_t pid) { cache_supervisor_->HealthAnswered(pid); });
    return true;
  }

  // cache.persistPath, by default under $XDG_STATE_HOME (DefaultCacheDataDir):
  // it must outlive the master and survive a reboot. Warns if it does not.
  std::string CacheDataDir() const {
    std::string dir =
        config_.cache().persist_path().empty()
            ? DefaultCacheDataDir(config_.name(), std::getenv, geteuid())
            : config_.cache().persist_path();
    if (OnTmpfs(dir)) {
      LogWarning(absl::StrCat(
          "cache.persistPath ", dir,
          " is on tmpfs: persistent namespaces will not survive a reboot"));
    }
    return dir;
  }

  // Stops the standalone cache server: SIGTERM, then SIGKILL after 5 s.
  void StopCacheServer() {
    cache_probe_.reset();  // before the server it asks
    in_process_cache_.reset();
    if (cache_supervisor_ == nullptr) return;
    pid_t pid = cache_supervisor_->Stop();
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    if (!WaitForExit(pid, absl::Seconds(5))) {
      LogWarning(absl::StrCat("cache server pid ", pid,
                              " did not stop within 5s of SIGTERM: killed"));
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

  // The configuration as given (before the run directory and ports were
  // resolved): what a reload compares with.
  const v1::ClusterConfig requested_;
  // The effective configuration: written only by Start (before any other
  // thread reads it) and Reload.
  mutable absl::Mutex config_mu_;
  v1::ClusterConfig config_;
  const std::vector<std::shared_ptr<RecyclePolicy>> extra_policies_;
  const ConfigSource reload_source_;
  absl::Mutex reload_mu_;  // one reload at a time
  MasterEndpoints endpoints_;
  std::unique_ptr<RunDirectory> run_dir_;
  std::vector<int> app_sockets_;
  std::unique_ptr<ReuseportGroup> slot_group_;  // balance=even
  std::string cache_binary_;
  std::string cache_address_;                      // "" when the cache is off
  std::unique_ptr<CacheServer> in_process_cache_;  // cache.mode "master"
  std::unique_ptr<CacheServerSupervisor> cache_supervisor_;  // standalone
  // Every second a Stats call: the standalone server's health check, and
  // the cache figures of /metrics (both modes).
  std::shared_ptr<CacheHealthProbe> cache_probe_;
  int mon_socket_ = -1;
  std::unique_ptr<OutputCollector> output_;  // workers' stdout/stderr
  std::unique_ptr<PosixProcessLauncher> launcher_;
  RealClock clock_;
  // The supervisor's observers: they outlive it.
  std::unique_ptr<ClusterMetrics> metrics_;
  std::unique_ptr<EventTimeline> timeline_;
  std::atomic<Ecv::Health> last_health_{Ecv::Health::kDown};
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<DebugSession> debug_;
  std::unique_ptr<Ecv> ecv_;
  std::unique_ptr<EventRouter> router_;
  std::unique_ptr<EmitterBridge> bridge_;  // emitter.bridge; before router_
  std::unique_ptr<StatusRegistry> registry_;
  std::unique_ptr<MasterEvents> events_;           // the embedding app's side
  std::unique_ptr<SessionServer> session_server_;  // sessions, Emitter
  std::unique_ptr<EcvService> ecv_service_;
  std::unique_ptr<StatusService> status_service_;
  std::unique_ptr<ClusterService> cluster_service_;
  std::unique_ptr<grpc::Server> server_;
  // control.tcp: its own server and services (null when off).
  ClusterService::Hooks control_hooks_;
  std::unique_ptr<EcvService> tcp_ecv_service_;
  std::unique_ptr<StatusService> tcp_status_service_;
  std::unique_ptr<ClusterService> tcp_cluster_service_;
  std::unique_ptr<grpc::Server> tcp_server_;
  std::unique_ptr<MonitorServer> monitor_;
  // Replaced by a reload (under reload_mu_); destroyed first.
  std::unique_ptr<AppCheck> app_check_;
};

}  // namespace

int RunMaster(const v1::ClusterConfig& config,
              std::vector<std::shared_ptr<RecyclePolicy>> policies,
              std::function<void(MasterContext&)> on_start,
              ConfigSource reload) {
  SetLogComponent("master");
  sigset_t signals = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Master master(config, std::move(policies), std::move(reload));
  if (absl::Status status = master.Start(); !status.ok()) {
    // One plain line: scripts and service managers show it as the reason.
    std::cerr << "cluster2-master: " << status.message() << std::endl;
    return 1;
  }
  if (on_start) on_start(master.context());
  master.Run();
  return 0;
}

}  // namespace cluster2
