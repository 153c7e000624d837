// Master scale benchmark: what the master costs with many workers.
// For each cluster size (default 16, then 1,024 = the documented maximum):
// - idle: the master's CPU (% of one core), RSS and context switches per
//   second over a quiet window with 1 s heartbeats, beside the same figures
//   of one idle worker (the anchor: the cheapest process of the cluster);
// - control: the time of Cluster.ListWorkers, GET /ecv and GET /metrics
//   (median and max of 10 each).
//
//   bazel build -c opt //bench:master_scale_bench //bench:emitter_bench_worker
//     //master:cluster2-master
//   bazel-bin/bench/master_scale_bench [--sizes=16,1024] [--idle=10]
//       [--master=PATH --worker=PATH]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

std::string SelfDir() {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  std::string self(path, n > 0 ? n : 0);
  return self.substr(0, self.rfind('/'));
}

std::string Flag(int argc, char** argv, const std::string& name,
                 const std::string& fallback) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], prefix)) return argv[i] + prefix.size();
  }
  return fallback;
}

// CPU time (user + system) of `pid` in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
  // After "pid (comm) ": state is field 0; utime 11, stime 12.
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return 0;
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

// A "Key:   N kB" or "Key: N" line of /proc/PID/status, summed over the
// threads for the context switches.
long StatusField(const std::string& path, const std::string& key) {
  std::ifstream status(path);
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, key + ":"))
      return std::atol(line.c_str() + key.size() + 1);
  }
  return 0;
}

long RssKb(pid_t pid) {
  return StatusField(absl::StrCat("/proc/", pid, "/status"), "VmRSS");
}

long ContextSwitches(pid_t pid) {
  std::string dir = absl::StrCat("/proc/", pid, "/task");
  std::vector<std::string> tasks;
  if (FILE* ls = popen(absl::StrCat("ls ", dir).c_str(), "r")) {
    char name[64];
    while (std::fscanf(ls, "%63s", name) == 1) tasks.push_back(name);
    pclose(ls);
  }
  long total = 0;
  for (const std::string& task : tasks) {
    std::string path = absl::StrCat(dir, "/", task, "/status");
    total += StatusField(path, "voluntary_ctxt_switches") +
             StatusField(path, "nonvoluntary_ctxt_switches");
  }
  return total;
}

int Threads(pid_t pid) {
  return StatusField(absl::StrCat("/proc/", pid, "/status"), "Threads");
}

// GET `path` from 127.0.0.1:`port` (HTTP/1.0); returns the body size, or
// -1.
long HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (write(fd, request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return -1;
  }
  long total = 0;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) total += n;
  close(fd);
  return total;
}

struct Timing {
  double median_ms = 0, max_ms = 0;
};

template <typename F>
Timing Time(F f, int rounds = 10) {
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    absl::Time start = absl::Now();
    f();
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.back()};
}

int RunSize(const std::string& master, const std::string& worker, int size,
            absl::Duration idle) {
  char run_dir[] = "/tmp/c2ms-XXXXXX";
  if (mkdtemp(run_dir) == nullptr) return 1;
  absl::Time started = absl::Now();
  pid_t master_pid = fork();
  if (master_pid == 0) {
    int null = open("/dev/null", O_WRONLY);  // its log is not the result
    dup2(null, STDERR_FILENO);
    dup2(null, STDOUT_FILENO);
    std::string workers = absl::StrCat("--noWorkers=", size);
    std::string dir = absl::StrCat("--runDir=", run_dir, "/run");
    execl(master.c_str(), master.c_str(), workers.c_str(), "--port=0",
          "--host=127.0.0.1", "--monPort=0", "--heartbeatInterval=1000",
          "--timeout=600000", "--stopTimeout=10000",
          // The master alone: with the cache on, /metrics also asks the
          // cache server for its figures.
          "--cache.enable=false", dir.c_str(), "--", worker.c_str(), nullptr);
    _exit(127);
  }
  auto channel =
      grpc::CreateChannel(absl::StrCat("unix:", run_dir, "/run/master.sock"),
                          grpc::InsecureChannelCredentials());
  auto cluster = cluster2::v1::Cluster::NewStub(channel);
  std::vector<int> pids;
  absl::Time deadline = absl::Now() + absl::Minutes(10);
  while (static_cast<int>(pids.size()) < size && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(500));
    grpc::ClientContext context;
    cluster2::v1::ListWorkersResponse response;
    if (!cluster->ListWorkers(&context, {}, &response).ok()) continue;
    pids.clear();
    for (const auto& w : response.workers()) {
      if (w.state() == cluster2::v1::WORKER_STATE_READY)
        pids.push_back(w.pid());
    }
  }
  const double start_seconds = absl::ToDoubleSeconds(absl::Now() - started);
  int status = 0;
  if (static_cast<int>(pids.size()) < size) {
    std::printf("%d workers: only %zu ready after %.0f s\n", size, pids.size(),
                start_seconds);
    status = 1;
  } else {
    absl::SleepFor(absl::Seconds(3));  // past the start: heartbeats only
    const pid_t anchor = pids[pids.size() / 2];
    double master_cpu = CpuSeconds(master_pid);
    double worker_cpu = CpuSeconds(anchor);
    long master_switches = ContextSwitches(master_pid);
    absl::Time from = absl::Now();
    absl::SleepFor(idle);
    double seconds = absl::ToDoubleSeconds(absl::Now() - from);
    master_cpu = (CpuSeconds(master_pid) - master_cpu) / seconds * 100;
    worker_cpu = (CpuSeconds(anchor) - worker_cpu) / seconds * 100;
    master_switches = ContextSwitches(master_pid) - master_switches;

    grpc::ClientContext config_context;
    cluster2::v1::GetConfigResponse config;
    cluster->GetConfig(&config_context, {}, &config);
    const int mon_port = config.config().mon_port();
    long list_bytes = 0, ecv_bytes = 0, metrics_bytes = 0;
    Timing list = Time([&] {
      grpc::ClientContext context;
      cluster2::v1::ListWorkersResponse response;
      cluster->ListWorkers(&context, {}, &response);
      list_bytes = response.ByteSizeLong();
    });
    Timing ecv = Time([&] { ecv_bytes = HttpGet(mon_port, "/ecv"); });
    Timing metrics =
        Time([&] { metrics_bytes = HttpGet(mon_port, "/metrics"); });
    std::printf(
        "%d workers (all ready %.1f s after start), heartbeats every 1 s, "
        "%.0f s idle:\n"
        "  master: CPU %.2f%% of a core, RSS %.1f MB, %d threads, %.0f "
        "context switches/s\n"
        "  anchor, one idle worker: CPU %.2f%%, RSS %.1f MB, %d threads\n"
        "  ListWorkers %.1f ms median, %.1f ms max (%ld bytes); /ecv %.2f ms, "
        "%.2f ms (%ld bytes); /metrics %.1f ms, %.1f ms (%ld bytes)\n",
        size, start_seconds, seconds, master_cpu, RssKb(master_pid) / 1024.0,
        Threads(master_pid), master_switches / seconds, worker_cpu,
        RssKb(anchor) / 1024.0, Threads(anchor), list.median_ms, list.max_ms,
        list_bytes, ecv.median_ms, ecv.max_ms, ecv_bytes, metrics.median_ms,
        metrics.max_ms, metrics_bytes);
    std::fflush(stdout);
  }
  kill(master_pid, SIGTERM);
  // A stop drains every worker: give it time, then make sure.
  for (int i = 0; i < 1200 && waitpid(master_pid, nullptr, WNOHANG) == 0; ++i)
    absl::SleepFor(absl::Milliseconds(100));
  kill(master_pid, SIGKILL);
  waitpid(master_pid, nullptr, 0);
  std::string cleanup = absl::StrCat("rm -rf ", run_dir);
  return std::system(cleanup.c_str()) == 0 ? status : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = SelfDir();  // bazel-bin/bench
  const std::string master =
      Flag(argc, argv, "master", bin + "/../master/cluster2-master");
  const std::string worker =
      Flag(argc, argv, "worker", bin + "/emitter_bench_worker");
  int idle_seconds = 10;
  (void)absl::SimpleAtoi(Flag(argc, argv, "idle", "10"), &idle_seconds);
  // 1,024 workers hold a session, two output pipes and a pidfd each in the
  // master: well under the usual hard limit, which the master raises to.
  rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  std::printf("descriptor limit: soft %ld, hard %ld\n",
              static_cast<long>(limit.rlim_cur),
              static_cast<long>(limit.rlim_max));
  int status = 0;
  for (absl::string_view size_text :
       absl::StrSplit(Flag(argc, argv, "sizes", "16,1024"), ',')) {
    int size = 0;
    if (!absl::SimpleAtoi(size_text, &size)) return 2;
    status |= RunSize(master, worker, size, absl::Seconds(idle_seconds));
  }
  return status;
}
