// The worker of bench/emitter_bench: it timestamps what it receives.
//   "fan" [sent_us]         records now - sent_us
//   "fan-report"            -> "fan-stats" [count, p50_us, p99_us] to the
//   master "rt-ping" [i]           -> "rt-pong" [i] back to the sender
//   "rt-start" [peer, n]    n round trips with the worker `peer` through the
//                           master, then "rt-stats" [p50_us, p99_us] to the
//                           master
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "worker/worker.h"

namespace {

using cluster2::Worker;

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1,
                         static_cast<size_t>(fraction * values.size()))];
}

}  // namespace

int main() {
  auto attached = Worker::Attach();
  if (!attached.ok()) {
    std::cerr << attached.status() << "\n";
    return 1;
  }
  Worker& worker = **attached;
  std::vector<double> fan_latency;  // handlers run on one thread
  worker.On("fan", [&](const Worker::Event& event) {
    double now = absl::ToUnixMicros(absl::Now());
    fan_latency.push_back(now - event.args[0].number_value());
  });
  worker.On("fan-report", [&](const Worker::Event&) {
    (void)worker.Emit(
        "fan-stats", {Worker::Target::Master()},
        {Number(fan_latency.size()), Number(Percentile(fan_latency, 0.5)),
         Number(Percentile(fan_latency, 0.99))});
    fan_latency.clear();
  });
  worker.On("rt-ping", [&](const Worker::Event& event) {
    if (event.args[1].bool_value()) {
      (void)worker.EmitAsync("rt-pong", {Worker::Target::Pid(event.from_pid)},
                             {event.args[0]});
    } else {
      (void)worker.Emit("rt-pong", {Worker::Target::Pid(event.from_pid)},
                        {event.args[0]});
    }
  });

  // Round trips: the pongs arrive on the handler thread, so the loop runs
  // on its own thread and waits for them.
  absl::Mutex mu;
  double last_pong = 0;
  worker.On("rt-pong", [&](const Worker::Event& event) {
    absl::MutexLock lock(&mu);
    last_pong = event.args[0].number_value();
  });
  worker.On("rt-start", [&](const Worker::Event& event) {
    int peer = static_cast<int>(event.args[0].number_value());
    int n = static_cast<int>(event.args[1].number_value());
    bool async = event.args[2].bool_value();
    std::thread([&worker, &mu, &last_pong, peer, n, async] {
      std::vector<double> rtt;
      for (int i = 1; i <= n; ++i) {
        absl::Time start = absl::Now();
        google::protobuf::Value flag;
        flag.set_bool_value(async);
        if (async) {
          (void)worker.EmitAsync("rt-ping", {Worker::Target::Pid(peer)},
                                 {Number(i), flag});
        } else {
          (void)worker.Emit("rt-ping", {Worker::Target::Pid(peer)},
                            {Number(i), flag});
        }
        absl::MutexLock lock(&mu);
        auto answered = [&]() { return last_pong == i; };
        mu.AwaitWithTimeout(absl::Condition(&answered), absl::Seconds(5));
        rtt.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
      }
      (void)worker.Emit("rt-stats", {Worker::Target::Master()},
                        {Number(Percentile(rtt, 0.5)),
                         Number(Percentile(rtt, 0.99)), Number(async ? 1 : 0)});
    }).detach();
  });
  worker.SetReady();
  worker.WaitForDrain();
  return 0;
}
