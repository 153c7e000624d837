// Emitter benchmark, each figure beside its anchor from the same run:
// - fan-out from a client to 8 workers: deliveries per second at full
//   speed, then delivery latency p50/p99 at half that rate;
// - round trip worker A -> master -> worker B -> master -> worker A, p50/p99,
//   beside a raw Unix-socket ping-pong between two processes (the floor);
// - context switches of the master (every thread, from
//   /proc/PID/task/*/status) per delivery and per round trip, and of the
//   whole cluster (master + workers).
//
//   bazel build -c opt //bench:emitter_bench //bench:emitter_bench_worker
//     //master:cluster2-master
//   bazel-bin/bench/emitter_bench [--fanout=stream|unary]
//       [--master=PATH --worker=PATH]   (e.g. an older build's binaries)
//
// --fanout=stream (default) sends the fan-out on one Emitter.EmitStream;
// unary sends one Emitter.Emit call per event from 4 client threads (what
// masters without EmitStream offer).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

constexpr int kWorkers = 8;
constexpr int kFanEvents = 40000;
constexpr int kRoundTrips = 2000;

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1,
                         static_cast<size_t>(fraction * values.size()))];
}

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

// Voluntary + involuntary context switches of every thread of `pid`.
long ContextSwitches(pid_t pid) {
  std::string dir = absl::StrCat("/proc/", pid, "/task");
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return 0;
  long total = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream status(absl::StrCat(dir, "/", entry->d_name, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (absl::StartsWith(line, "voluntary_ctxt_switches:") ||
          absl::StartsWith(line, "nonvoluntary_ctxt_switches:")) {
        total += std::atol(line.c_str() + line.find(':') + 1);
      }
    }
  }
  closedir(tasks);
  return total;
}

// Per thread of `pid`: "name" -> context switches (threads of one name
// summed).
std::map<std::string, long> ThreadSwitches(pid_t pid) {
  std::map<std::string, long> by_name;
  std::string dir = absl::StrCat("/proc/", pid, "/task");
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return by_name;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::string task = absl::StrCat(dir, "/", entry->d_name);
    std::ifstream comm(task + "/comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream status(task + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (absl::StartsWith(line, "voluntary_ctxt_switches:") ||
          absl::StartsWith(line, "nonvoluntary_ctxt_switches:")) {
        by_name[name] += std::atol(line.c_str() + line.find(':') + 1);
      }
    }
  }
  closedir(tasks);
  return by_name;
}

std::string SwitchesByThread(const std::map<std::string, long>& before,
                             const std::map<std::string, long>& after,
                             double per) {
  std::string text;
  for (const auto& [name, count] : after) {
    auto it = before.find(name);
    long delta = count - (it == before.end() ? 0 : it->second);
    if (delta / per >= 0.05)
      absl::StrAppend(&text, " ", name, "=",
                      absl::StrFormat("%.2f", delta / per));
  }
  return text;
}

long ContextSwitches(const std::vector<int>& pids) {
  long total = 0;
  for (int pid : pids) total += ContextSwitches(pid);
  return total;
}

// Raw ping-pong of 64 bytes over a Unix socketpair between two processes.
std::vector<double> RawUnixPingPong(int rounds) {
  int fds[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  pid_t child = fork();
  char buffer[64] = {};
  if (child == 0) {
    close(fds[0]);
    while (read(fds[1], buffer, sizeof(buffer)) == sizeof(buffer)) {
      if (write(fds[1], buffer, sizeof(buffer)) != sizeof(buffer)) break;
    }
    _exit(0);
  }
  close(fds[1]);
  std::vector<double> rtt;
  for (int i = 0; i < rounds; ++i) {
    absl::Time start = absl::Now();
    if (write(fds[0], buffer, sizeof(buffer)) != sizeof(buffer)) break;
    if (read(fds[0], buffer, sizeof(buffer)) != sizeof(buffer)) break;
    rtt.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  close(fds[0]);
  waitpid(child, nullptr, 0);
  return rtt;
}

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

using cluster2::v1::EmitRequest;
using cluster2::v1::EmitResponse;
using cluster2::v1::Emitter;
using cluster2::v1::Event;
using cluster2::v1::Target;

EmitRequest FanRequest() {
  EmitRequest request;
  request.mutable_event()->set_name("fan");
  *request.mutable_event()->add_args() =
      Number(absl::ToUnixMicros(absl::Now()));
  request.mutable_event()->add_targets()->set_workers(true);
  return request;
}

// Sends `count` fan events, `per_second` at most (0 = as fast as it goes).
void SendFan(Emitter::Stub* emitter, bool stream, int count,
             double per_second) {
  const absl::Time start = absl::Now();
  // Paced in 1 ms steps: the events due by then.
  auto pace = [&](int sent) {
    if (per_second <= 0) return;
    absl::Time due = start + absl::Seconds(sent / per_second);
    absl::Time now = absl::Now();
    if (due > now + absl::Milliseconds(1)) absl::SleepFor(due - now);
  };
  if (stream) {
    grpc::ClientContext context;
    auto call = emitter->EmitStream(&context);
    std::thread reader([&] {
      EmitResponse response;
      int errors = 0;
      while (call->Read(&response)) errors += response.error_code() != 0;
      if (errors > 0) std::fprintf(stderr, "%d events refused\n", errors);
    });
    for (int i = 0; i < count; ++i) {
      pace(i);
      if (!call->Write(FanRequest())) break;
    }
    call->WritesDone();
    reader.join();
    grpc::Status status = call->Finish();
    if (!status.ok()) {
      std::fprintf(stderr, "EmitStream: %s\n", status.error_message().c_str());
    }
    return;
  }
  std::atomic<int> next{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < count;) {
        pace(i);
        grpc::ClientContext context;
        EmitResponse response;
        emitter->Emit(&context, FanRequest(), &response);
      }
    });
  }
  for (auto& thread : senders) thread.join();
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = SelfDir();  // bazel-bin/bench
  const std::string master =
      Flag(argc, argv, "master", bin + "/../master/cluster2-master");
  const std::string worker =
      Flag(argc, argv, "worker", bin + "/emitter_bench_worker");
  const bool stream = Flag(argc, argv, "fanout", "stream") == "stream";
  char run_dir[] = "/tmp/c2eb-XXXXXX";
  if (mkdtemp(run_dir) == nullptr) return 1;
  pid_t master_pid = fork();
  if (master_pid == 0) {
    int null = open("/dev/null", O_WRONLY);  // its log is not the result
    dup2(null, STDERR_FILENO);
    std::string workers = absl::StrCat("--noWorkers=", kWorkers);
    std::string dir = absl::StrCat("--runDir=", run_dir, "/run");
    execl(master.c_str(), master.c_str(), workers.c_str(), "--port=0",
          "--host=127.0.0.1", "--monPort=0", dir.c_str(), "--", worker.c_str(),
          nullptr);
    _exit(127);
  }
  auto channel =
      grpc::CreateChannel(absl::StrCat("unix:", run_dir, "/run/master.sock"),
                          grpc::InsecureChannelCredentials());
  auto cluster = cluster2::v1::Cluster::NewStub(channel);
  auto emitter = Emitter::NewStub(channel);
  std::vector<int> pids;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (static_cast<int>(pids.size()) < kWorkers && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    grpc::ClientContext context;
    cluster2::v1::ListWorkersResponse response;
    if (!cluster->ListWorkers(&context, {}, &response).ok()) continue;
    pids.clear();
    for (const auto& w : response.workers()) {
      if (w.state() == cluster2::v1::WORKER_STATE_READY)
        pids.push_back(w.pid());
    }
  }
  if (static_cast<int>(pids.size()) < kWorkers) {
    std::fprintf(stderr, "the workers did not get ready\n");
    kill(master_pid, SIGKILL);
    return 1;
  }
  std::vector<int> everyone = pids;
  everyone.push_back(master_pid);

  // Collects the stats events the workers send to the master.
  absl::Mutex mu;
  std::vector<Event> stats;
  grpc::ClientContext subscribe_context;
  std::thread subscriber([&] {
    cluster2::v1::SubscribeRequest request;
    request.add_events("fan-stats");
    request.add_events("rt-stats");
    request.add_events("bench-probe");
    auto reader = emitter->Subscribe(&subscribe_context, request);
    Event event;
    while (reader->Read(&event)) {
      absl::MutexLock lock(&mu);
      stats.push_back(event);
    }
    reader->Finish();
  });
  auto count_named =
      [&](const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return std::count_if(stats.begin(), stats.end(),
                             [&](const Event& e) { return e.name() == name; });
      };
  auto emit = [&](const std::string& name,
                  std::vector<google::protobuf::Value> args, Target target) {
    EmitRequest request;
    request.mutable_event()->set_name(name);
    for (auto& arg : args) *request.mutable_event()->add_args() = arg;
    *request.mutable_event()->add_targets() = target;
    grpc::ClientContext context;
    EmitResponse response;
    emitter->Emit(&context, request, &response);
  };
  Target to_master;
  to_master.set_master(true);
  // The subscription is in place once a probe comes back through it.
  for (bool seen = false; !seen && absl::Now() < deadline;) {
    emit("bench-probe", {}, to_master);
    absl::MutexLock lock(&mu);
    auto probed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return count_named("bench-probe") > 0;
    };
    seen =
        mu.AwaitWithTimeout(absl::Condition(&probed), absl::Milliseconds(100));
  }
  Target all;
  all.set_workers(true);
  auto wait_stats = [&](const std::string& name, long count) {
    absl::MutexLock lock(&mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return count_named(name) >= count;
    };
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(120));
  };
  // One fan-out phase: deliveries, seconds, p50/p99 (median over workers),
  // context switches of the master and of everyone.
  struct Fan {
    double delivered = 0, seconds = 0, p50 = 0, p99 = 0;
    long master_switches = 0, all_switches = 0;
    std::string by_thread, worker_by_thread;
  };
  long fan_reports = 0;
  auto fan_phase = [&](int count, double per_second) {
    Fan fan;
    long master_before = ContextSwitches(master_pid);
    auto threads_before = ThreadSwitches(master_pid);
    auto worker_before = ThreadSwitches(pids[0]);
    long all_before = ContextSwitches(everyone);
    absl::Time start = absl::Now();
    SendFan(emitter.get(), stream, count, per_second);
    emit("fan-report", {}, all);
    fan_reports += kWorkers;
    wait_stats("fan-stats", fan_reports);
    fan.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    fan.master_switches = ContextSwitches(master_pid) - master_before;
    auto threads_after = ThreadSwitches(master_pid);
    auto worker_after = ThreadSwitches(pids[0]);
    fan.all_switches = ContextSwitches(everyone) - all_before;
    std::vector<double> p50s, p99s;
    absl::MutexLock lock(&mu);
    int seen = 0;
    for (const Event& e : stats) {
      if (e.name() != "fan-stats" || ++seen <= fan_reports - kWorkers) continue;
      fan.delivered += e.args(0).number_value();
      p50s.push_back(e.args(1).number_value());
      p99s.push_back(e.args(2).number_value());
    }
    fan.by_thread =
        SwitchesByThread(threads_before, threads_after, fan.delivered);
    fan.worker_by_thread =
        SwitchesByThread(worker_before, worker_after, fan.delivered / kWorkers);
    fan.p50 = Percentile(p50s, 0.5);
    fan.p99 = Percentile(p99s, 0.5);
    return fan;
  };

  std::printf("fan-out via %s, %d workers:\n",
              stream ? "one Emitter.EmitStream" : "Emitter.Emit from 4 threads",
              kWorkers);
  Fan full = fan_phase(kFanEvents, 0);
  const double rate = full.delivered / full.seconds;
  std::printf(
      "  full speed: %d events, %.0f deliveries in %.2f s = %.0f "
      "deliveries/s (%.0f events/s); latency p50 %.0f us, p99 %.0f us; "
      "context switches per delivery: master %.3f, cluster %.3f\n",
      kFanEvents, full.delivered, full.seconds, rate, kFanEvents / full.seconds,
      full.p50, full.p99, full.master_switches / full.delivered,
      full.all_switches / full.delivered);
  std::printf("    switches per delivery by thread: master%s; one worker%s\n",
              full.by_thread.c_str(), full.worker_by_thread.c_str());
  const double half_events = rate / 2 / kWorkers;
  const int half_count = static_cast<int>(std::min(half_events * 3, 60000.0));
  Fan half = fan_phase(half_count, half_events);
  std::printf(
      "  at half that rate (%.0f events/s paced, %d events): %.0f "
      "deliveries/s; latency p50 %.0f us, p99 %.0f us; context switches per "
      "delivery: master %.3f, cluster %.3f\n",
      half_events, half_count, half.delivered / half.seconds, half.p50,
      half.p99, half.master_switches / half.delivered,
      half.all_switches / half.delivered);
  std::printf("    switches per delivery by thread: master%s; one worker%s\n",
              half.by_thread.c_str(), half.worker_by_thread.c_str());

  // Round trips (Emit, then EmitAsync), beside the raw floor.
  Target first;
  first.set_pid(pids[0]);
  google::protobuf::Value no, yes;
  no.set_bool_value(false);
  yes.set_bool_value(true);
  long rt_switches[2];
  std::string rt_threads[2];
  for (int async = 0; async < 2; ++async) {
    long before = ContextSwitches(master_pid);
    auto threads_before = ThreadSwitches(master_pid);
    emit("rt-start", {Number(pids[1]), Number(kRoundTrips), async ? yes : no},
         first);
    wait_stats("rt-stats", async + 1);
    rt_switches[async] = ContextSwitches(master_pid) - before;
    rt_threads[async] = SwitchesByThread(
        threads_before, ThreadSwitches(master_pid), kRoundTrips);
  }
  std::vector<double> raw = RawUnixPingPong(kRoundTrips * 5);
  {
    absl::MutexLock lock(&mu);
    for (const Event& e : stats) {
      if (e.name() != "rt-stats") continue;
      const bool async = e.args(2).number_value() > 0;
      std::printf(
          "round trip worker -> master -> worker -> master -> worker with %s "
          "(%d): p50 %.0f us, p99 %.0f us; raw Unix-socket ping-pong (%d): "
          "p50 %.1f us, p99 %.1f us; ratio p50 %.1fx; master context "
          "switches per round trip %.1f\n",
          async ? "EmitAsync" : "Emit", kRoundTrips, e.args(0).number_value(),
          e.args(1).number_value(), kRoundTrips * 5, Percentile(raw, 0.5),
          Percentile(raw, 0.99),
          e.args(0).number_value() / std::max(Percentile(raw, 0.5), 0.001),
          static_cast<double>(rt_switches[async ? 1 : 0]) / kRoundTrips);
      std::printf("    master threads, switches per round trip:%s\n",
                  rt_threads[async ? 1 : 0].c_str());
    }
  }
  subscribe_context.TryCancel();
  subscriber.join();
  kill(master_pid, SIGTERM);
  waitpid(master_pid, nullptr, 0);
  std::string cleanup = absl::StrCat("rm -rf ", run_dir);
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
