// The worker of bench/emitter_bench: it timestamps what it receives.
//   "fan" [sent_us]         records now - sent_us
//   "fan-report"            -> "fan-stats" [count, p50_us, p99_us] to the
//                           master
//   "rt-ping" [i, async]    -> "rt-pong" [i] back to the sender
//   "rt-start" [peer, n, async]  n round trips with the worker `peer`
//                           through the master (each pong sends the next
//                           ping from the handler), then "rt-stats"
//                           [p50_us, p99_us, async] to the master
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <vector>

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

  // Round trips, driven from the handlers: each pong sends the next ping
  // from the handler thread itself, so the figure is the path through the
  // library and the master, without a hand-off to an app thread.
  struct RoundTrips {
    int peer = 0, n = 0, next = 0;
    bool async = false;
    absl::Time sent;
    std::vector<double> rtt;
  } rt;
  auto ping = [&worker, &rt] {
    google::protobuf::Value flag;
    flag.set_bool_value(rt.async);
    ++rt.next;
    rt.sent = absl::Now();
    if (rt.async) {
      (void)worker.EmitAsync("rt-ping", {Worker::Target::Pid(rt.peer)},
                             {Number(rt.next), flag});
    } else {
      (void)worker.Emit("rt-ping", {Worker::Target::Pid(rt.peer)},
                        {Number(rt.next), flag});
    }
  };
  worker.On("rt-pong", [&](const Worker::Event& event) {
    if (event.args[0].number_value() != rt.next) return;
    rt.rtt.push_back(absl::ToDoubleMicroseconds(absl::Now() - rt.sent));
    if (rt.next < rt.n) {
      ping();
      return;
    }
    (void)worker.Emit(
        "rt-stats", {Worker::Target::Master()},
        {Number(Percentile(rt.rtt, 0.5)), Number(Percentile(rt.rtt, 0.99)),
         Number(rt.async ? 1 : 0)});
  });
  worker.On("rt-start", [&](const Worker::Event& event) {
    rt.peer = static_cast<int>(event.args[0].number_value());
    rt.n = static_cast<int>(event.args[1].number_value());
    rt.async = event.args[2].bool_value();
    rt.next = 0;
    rt.rtt.clear();
    ping();
  });
  worker.SetReady();
  worker.WaitForDrain();
  return 0;
}
