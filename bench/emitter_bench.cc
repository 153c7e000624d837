// Emitter benchmark, each figure beside its anchor from the same run:
// - fan-out from the master side to 8 workers: events delivered per second
//   and delivery latency p50/p99 (Emitter.Emit from 4 client threads);
// - worker-to-worker round trip through the master, p50/p99, beside a raw
//   Unix-socket ping-pong between two processes (the physical floor).
//
//   bazel build -c opt //bench:emitter_bench //bench:emitter_bench_worker
//   //master:cluster2-master bazel-bin/bench/emitter_bench
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster2/v1/cluster.grpc.pb.h"
#include "cluster2/v1/emitter.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

constexpr int kWorkers = 8;
constexpr int kFanEvents = 20000;
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

}  // namespace

int main() {
  std::string bin = SelfDir();  // bazel-bin/bench
  std::string master = bin + "/../master/cluster2-master";
  std::string worker = bin + "/emitter_bench_worker";
  char run_dir[] = "/tmp/c2eb-XXXXXX";
  if (mkdtemp(run_dir) == nullptr) return 1;
  pid_t master_pid = fork();
  if (master_pid == 0) {
    int null =
        open("/dev/null", O_WRONLY);  // the master's log is not the result
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
  auto emitter = cluster2::v1::Emitter::NewStub(channel);
  std::vector<int> pids;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
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

  // Collects the stats events the workers send to the master.
  absl::Mutex mu;
  std::vector<cluster2::v1::Event> stats;
  grpc::ClientContext subscribe_context;
  std::thread subscriber([&] {
    cluster2::v1::SubscribeRequest request;
    request.add_events("fan-stats");
    request.add_events("rt-stats");
    auto reader = emitter->Subscribe(&subscribe_context, request);
    cluster2::v1::Event event;
    while (reader->Read(&event)) {
      absl::MutexLock lock(&mu);
      stats.push_back(event);
    }
    reader->Finish();
  });
  absl::SleepFor(absl::Milliseconds(300));  // the subscription is in place
  auto emit = [&](const std::string& name,
                  std::vector<google::protobuf::Value> args,
                  cluster2::v1::Target target) {
    cluster2::v1::EmitRequest request;
    request.mutable_event()->set_name(name);
    for (auto& arg : args) *request.mutable_event()->add_args() = arg;
    *request.mutable_event()->add_targets() = target;
    grpc::ClientContext context;
    cluster2::v1::EmitResponse response;
    emitter->Emit(&context, request, &response);
  };
  cluster2::v1::Target all;
  all.set_workers(true);
  auto wait_stats = [&](const std::string& name, size_t count) {
    absl::MutexLock lock(&mu);
    auto done = [&]() {
      return std::count_if(stats.begin(), stats.end(), [&](const auto& e) {
               return e.name() == name;
             }) >= static_cast<long>(count);
    };
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(60));
  };

  // Fan-out.
  absl::Time start = absl::Now();
  std::vector<std::thread> senders;
  std::atomic<int> next{0};
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&] {
      while (next.fetch_add(1) < kFanEvents) {
        emit("fan", {Number(absl::ToUnixMicros(absl::Now()))}, all);
      }
    });
  }
  for (auto& thread : senders) thread.join();
  emit("fan-report", {}, all);
  wait_stats("fan-stats", kWorkers);
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> p50s, p99s;
  double delivered = 0;
  {
    absl::MutexLock lock(&mu);
    for (const auto& e : stats) {
      if (e.name() != "fan-stats") continue;
      delivered += e.args(0).number_value();
      p50s.push_back(e.args(1).number_value());
      p99s.push_back(e.args(2).number_value());
    }
  }
  std::printf(
      "fan-out to %d workers: %d events, %.0f deliveries in %.2f s = %.0f "
      "deliveries/s "
      "(%.0f events/s); latency p50 %.0f us, p99 %.0f us (median over "
      "workers)\n",
      kWorkers, kFanEvents, delivered, seconds, delivered / seconds,
      kFanEvents / seconds, Percentile(p50s, 0.5), Percentile(p99s, 0.5));

  // Worker-to-worker round trips (Emit, then EmitAsync), beside the raw floor.
  cluster2::v1::Target first;
  first.set_pid(pids[0]);
  google::protobuf::Value no, yes;
  no.set_bool_value(false);
  yes.set_bool_value(true);
  emit("rt-start", {Number(pids[1]), Number(kRoundTrips), no}, first);
  wait_stats("rt-stats", 1);
  emit("rt-start", {Number(pids[1]), Number(kRoundTrips), yes}, first);
  wait_stats("rt-stats", 2);
  std::vector<double> raw = RawUnixPingPong(kRoundTrips * 5);
  {
    absl::MutexLock lock(&mu);
    for (const auto& e : stats) {
      if (e.name() != "rt-stats") continue;
      std::printf(
          "worker-to-worker round trip through the master with %s (%d): p50 "
          "%.0f us, "
          "p99 %.0f us; raw Unix-socket ping-pong (%d): p50 %.1f us, p99 %.1f "
          "us; "
          "ratio p50 %.0fx\n",
          e.args(2).number_value() > 0 ? "EmitAsync" : "Emit", kRoundTrips,
          e.args(0).number_value(), e.args(1).number_value(), kRoundTrips * 5,
          Percentile(raw, 0.5), Percentile(raw, 0.99),
          e.args(0).number_value() / std::max(Percentile(raw, 0.5), 0.001));
    }
  }
  subscribe_context.TryCancel();
  subscriber.join();
  kill(master_pid, SIGTERM);
  waitpid(master_pid, nullptr, 0);
  std::string cleanup = absl::StrCat("rm -rf ", run_dir);
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
