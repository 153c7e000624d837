// The cache client's side of bench/cache_bench.py: runs one workload against
// a cluster2-cache and prints one line of figures.
//
//   cache_bench --socket=PATH --mode=MODE [--ops=N] [--inflight=N]
//               [--value-bytes=N] [--keys=N] [--ns=NAME] [--persist]
//               [--batches=N]
//
// Modes:
//   get, set    `inflight` operations in flight through the asynchronous
//               API; prints ops/s, p50, p99 (us)
//   get-blocking, set-blocking
//               `threads` threads each calling the blocking API in a loop
//               (redis-benchmark -c N's analogue for a threaded program)
//   near        hot reads of one key through the near-cache; ops/s
//   invalidate  another client writes, the near-cache reader waits for the
//               new value; p50, p99 of that delay (us)
//   raw-sync    gRPC's floor: a plain synchronous unary Batch of one GET per
//               call (no client library); ops/s, p50, p99
// Output: "mode=get inflight=1 ops=... ops_per_s=... p50_us=... p99_us=..."
// With --server-pid=PID the get/set lines also carry the context switches
// per operation of this process (cs_client) and of the server (cs_server)
// during the measured run, from /proc/PID/task/*/status.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache_client/cache.h"
#include "cluster2/v1/cache.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

using cluster2::CacheClient;
using cluster2::CacheNamespace;

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  size_t at = static_cast<size_t>(p * (samples.size() - 1));
  std::nth_element(samples.begin(), samples.begin() + at, samples.end());
  return samples[at];
}

// Voluntary and involuntary context switches of every thread of `pid`.
uint64_t ContextSwitches(int pid) {
  uint64_t total = 0;
  std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream status(absl::StrCat(tasks, "/", entry->d_name, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      size_t colon = line.find(':');
      if (colon == std::string::npos ||
          line.find("ctxt_switches:") == std::string::npos)
        continue;
      uint64_t n = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)),
                           &n))
        total += n;
    }
  }
  closedir(dir);
  return total;
}

// Context switches per operation of this process and the server over a run.
class SwitchCounter {
 public:
  explicit SwitchCounter(int server_pid)
      : server_pid_(server_pid),
        client_(ContextSwitches(getpid())),
        server_(server_pid ? ContextSwitches(server_pid) : 0) {}
  std::string PerOp(int ops) const {
    if (server_pid_ == 0) return "";
    double client = ContextSwitches(getpid()) - client_;
    double server = ContextSwitches(server_pid_) - server_;
    char out[96];
    snprintf(out, sizeof out, " cs_client=%.3f cs_server=%.3f", client / ops,
             server / ops);
    return out;
  }

 private:
  const int server_pid_;
  const uint64_t client_, server_;
};

struct Flags {
  std::string socket, mode = "get", ns = "bench";
  int ops = 100000, inflight = 1, value_bytes = 100, keys = 10000;
  int threads = 16, server_pid = 0;
  int batches = 2;  // CacheClientOptions::max_batches_in_flight
  bool persist = false;
};

// `inflight` operations kept in flight: each completion starts the next.
void RunLoad(CacheNamespace& space, const Flags& flags, bool get) {
  std::string value(flags.value_bytes, 'x');
  std::vector<double> latencies(flags.ops);
  std::atomic<int> next{0};
  absl::Mutex mu;
  int done = 0;
  std::function<void()> start_one;
  start_one = [&] {
    int i = next.fetch_add(1);
    if (i >= flags.ops) return;
    std::string key = absl::StrCat("key:", i % flags.keys);
    absl::Time began = absl::Now();
    auto finish = [&, i, began](bool ok) {
      latencies[i] = absl::ToDoubleMicroseconds(absl::Now() - began);
      if (!ok) fprintf(stderr, "operation %d failed\n", i);
      start_one();
      absl::MutexLock lock(&mu);
      ++done;
    };
    if (get) {
      space.GetAsync(key, [finish](auto got) { finish(got.ok()); });
    } else {
      space.SetAsync(key, value, {}, [finish](auto set) { finish(set.ok()); });
    }
  };
  SwitchCounter switches(flags.server_pid);
  absl::Time began = absl::Now();
  for (int i = 0; i < flags.inflight; ++i) start_one();
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&]() { return done >= flags.ops; };
    mu.Await(absl::Condition(&all_done));
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - began);
  printf(
      "mode=%s inflight=%d ops=%d ops_per_s=%.0f p50_us=%.1f p99_us=%.1f%s\n",
      get ? "get" : "set", flags.inflight, flags.ops, flags.ops / seconds,
      Percentile(latencies, 0.5), Percentile(latencies, 0.99),
      switches.PerOp(flags.ops).c_str());
}

// `threads` threads, each calling the blocking API `ops / threads` times.
void RunBlocking(CacheNamespace& space, const Flags& flags, bool get) {
  std::string value(flags.value_bytes, 'x');
  int per_thread = flags.ops / flags.threads;
  std::vector<double> latencies(static_cast<size_t>(per_thread) *
                                flags.threads);
  std::atomic<int> failures{0};
  SwitchCounter switches(flags.server_pid);
  absl::Time began = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::string key =
            absl::StrCat("key:", (t * per_thread + i) % flags.keys);
        absl::Time start = absl::Now();
        bool ok = get ? space.Get(key).ok() : space.Set(key, value).ok();
        latencies[t * per_thread + i] =
            absl::ToDoubleMicroseconds(absl::Now() - start);
        if (!ok) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - began);
  int ops = per_thread * flags.threads;
  printf(
      "mode=%s-blocking threads=%d ops=%d failed=%d ops_per_s=%.0f "
      "p50_us=%.1f p99_us=%.1f%s\n",
      get ? "get" : "set", flags.threads, ops, failures.load(), ops / seconds,
      Percentile(latencies, 0.5), Percentile(latencies, 0.99),
      switches.PerOp(ops).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    size_t eq = arg.find('=');
    std::string name = arg.substr(2, eq == std::string::npos ? eq : eq - 2);
    std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (name == "socket")
      flags.socket = value;
    else if (name == "mode")
      flags.mode = value;
    else if (name == "ns")
      flags.ns = value;
    else if (name == "persist")
      flags.persist = true;
    else if (name == "ops")
      ok = absl::SimpleAtoi(value, &flags.ops);
    else if (name == "inflight")
      ok = absl::SimpleAtoi(value, &flags.inflight);
    else if (name == "value-bytes")
      ok = absl::SimpleAtoi(value, &flags.value_bytes);
    else if (name == "keys")
      ok = absl::SimpleAtoi(value, &flags.keys);
    else if (name == "batches")
      ok = absl::SimpleAtoi(value, &flags.batches);
    else if (name == "threads")
      ok = absl::SimpleAtoi(value, &flags.threads) && flags.threads > 0;
    else if (name == "server-pid")
      ok = absl::SimpleAtoi(value, &flags.server_pid);
    else
      ok = false;
    if (!ok) {
      fprintf(stderr, "cache_bench: bad flag %s\n", arg.c_str());
      return 2;
    }
  }
  cluster2::CacheClientOptions options;
  options.address = flags.socket;
  options.wait = absl::Seconds(60);
  options.max_batches_in_flight = flags.batches;
  auto client = CacheClient::Connect(options);
  if (!client.ok()) return 1;
  cluster2::CacheNamespaceConfig config;
  config.persist = flags.persist;
  config.near_cache = flags.mode == "near" || flags.mode == "invalidate";
  auto space = (*client)->Use(flags.ns, config);
  if (!space.ok()) {
    fprintf(stderr, "cache_bench: %s\n", space.status().ToString().c_str());
    return 1;
  }
  if (flags.mode == "get" || flags.mode == "set") {
    if (flags.mode == "get") {  // fill the key space first
      Flags fill = flags;
      fill.ops = flags.keys;
      fill.inflight = 16;
      RunLoad(**space, fill, false);
    }
    RunLoad(**space, flags, flags.mode == "get");
    return 0;
  }
  if (flags.mode == "get-blocking" || flags.mode == "set-blocking") {
    bool get = flags.mode == "get-blocking";
    if (get) {
      Flags fill = flags;
      fill.ops = flags.keys;
      fill.inflight = 16;
      RunLoad(**space, fill, false);
    }
    RunBlocking(**space, flags, get);
    return 0;
  }
  if (flags.mode == "near") {
    if (!(*space)->Set("hot", std::string(flags.value_bytes, 'x')).ok())
      return 1;
    (*space)->Get("hot").IgnoreError();  // now near-cached
    absl::Time began = absl::Now();
    size_t bytes = 0;
    for (int i = 0; i < flags.ops; ++i)
      bytes += (*space)->Get("hot")->value().value.size();
    double seconds = absl::ToDoubleSeconds(absl::Now() - began);
    printf("mode=near ops=%d ops_per_s=%.0f near_hits=%llu bytes=%zu\n",
           flags.ops, flags.ops / seconds,
           static_cast<unsigned long long>((*space)->near_hits()), bytes);
    return 0;
  }
  if (flags.mode == "invalidate") {
    auto writer_client = CacheClient::Connect(options);
    auto writer = (*writer_client)->Use(flags.ns, {});
    // From the moment the write is issued (an upper bound: it includes the
    // write's own round trip) and from its acknowledgement (0 when the
    // watch event arrived first).
    std::vector<double> from_issue, from_ack;
    for (int i = 0; i < flags.ops; ++i) {
      std::string value = absl::StrCat("v", i);
      absl::Time issued = absl::Now();
      if (!(*writer)->Set("k", value).ok()) return 1;
      absl::Time acked = absl::Now();
      // Poll the near-cache until the watch brings the new value, yielding
      // the core (two cores: a hard spin would delay the watch thread).
      while ((*space)->Get("k")->value_or(cluster2::CacheValue{}).value !=
             value) {
        std::this_thread::yield();
      }
      absl::Time seen = absl::Now();
      from_issue.push_back(absl::ToDoubleMicroseconds(seen - issued));
      from_ack.push_back(absl::ToDoubleMicroseconds(seen - acked));
    }
    printf(
        "mode=invalidate ops=%d p50_us=%.1f p99_us=%.1f ack_p50_us=%.1f "
        "ack_p99_us=%.1f near_hits=%llu\n",
        flags.ops, Percentile(from_issue, 0.5), Percentile(from_issue, 0.99),
        Percentile(from_ack, 0.5), Percentile(from_ack, 0.99),
        static_cast<unsigned long long>((*space)->near_hits()));
    return 0;
  }
  if (flags.mode == "raw-sync") {  // the floor: sync unary Batch, one op
    auto stub = cluster2::v1::Cache::NewStub(grpc::CreateChannel(
        "unix:" + flags.socket, grpc::InsecureChannelCredentials()));
    cluster2::v1::BatchRequest request;
    auto* get = request.add_ops()->mutable_get();
    get->set_namespace_(flags.ns);
    get->set_key("key:1");
    std::vector<double> latencies;
    absl::Time began = absl::Now();
    for (int i = 0; i < flags.ops; ++i) {
      grpc::ClientContext context;
      cluster2::v1::BatchResponse response;
      absl::Time start = absl::Now();
      if (!stub->Batch(&context, request, &response).ok()) return 1;
      latencies.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
    }
    double seconds = absl::ToDoubleSeconds(absl::Now() - began);
    printf("mode=raw-sync ops=%d ops_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
           flags.ops, flags.ops / seconds, Percentile(latencies, 0.5),
           Percentile(latencies, 0.99));
    return 0;
  }
  fprintf(stderr, "cache_bench: unknown mode %s\n", flags.mode.c_str());
  return 2;
}
