// A worker for the emitter and status tests (the original cluster2's
// cluster-mode test, rebuilt). It serves nothing; it answers events:
//   "ping" [n]          -> "pong" [n, pid] to the master
//   "self-test"         -> "self-echo" to itself, then "self-ok" [pid] to the
//   master "once-event"        -> (a Once listener) "once-fired" [pid] to the
//   master "removable"         -> "removable-seen" [pid] to the master,
//   until... "remove-it"         -> removes the "removable" listener, answers
//   "removed" [pid] "count" [i]         -> checks i is the next number (from 1)
//   "count-done"        -> "count-result" [pid, received, in_order] to the
//   master "flood" [n]         -> n events "flood-item" [pid, i] to the master,
//   in order
//   "bad-emit"          -> "bad-emit-result" [code of EmitAsync("cluster2:x")]
// ("flood" uses EmitAsync) and registers status "level" (a number, 0 at start,
// settable).
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "worker/worker.h"

namespace {

using cluster2::Worker;

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

google::protobuf::Value Bool(bool b) {
  google::protobuf::Value value;
  value.set_bool_value(b);
  return value;
}

}  // namespace

int main() {
  auto attached = Worker::Attach();
  if (!attached.ok()) {
    std::cerr << "emitter_worker: " << attached.status().message() << "\n";
    return 1;
  }
  Worker& worker = **attached;
  const double pid = getpid();
  auto to_master = [&](const std::string& name,
                       std::vector<google::protobuf::Value> args) {
    auto result =
        worker.Emit(name, {Worker::Target::Master()}, std::move(args));
    if (!result.ok())
      std::cerr << "emit " << name << ": " << result.status() << "\n";
  };

  worker.On("ping", [&](const Worker::Event& event) {
    to_master("pong",
              {event.args.empty() ? Number(0) : event.args[0], Number(pid)});
  });
  worker.On("self-test", [&](const Worker::Event&) {
    (void)worker.Emit("self-echo", {Worker::Target::Self()}, {});
  });
  worker.On("self-echo", [&](const Worker::Event& event) {
    if (event.from_pid == getpid()) to_master("self-ok", {Number(pid)});
  });
  worker.Once("once-event", [&](const Worker::Event&) {
    to_master("once-fired", {Number(pid)});
  });
  uint64_t removable = worker.On("removable", [&](const Worker::Event&) {
    to_master("removable-seen", {Number(pid)});
  });
  worker.On("remove-it", [&](const Worker::Event&) {
    worker.RemoveListener(removable);
    to_master("removed", {Number(pid)});
  });
  double expected = 1, received = 0;
  bool in_order = true;
  worker.On("count", [&](const Worker::Event& event) {
    ++received;
    if (event.args.empty() || event.args[0].number_value() != expected)
      in_order = false;
    ++expected;
  });
  worker.On("count-done", [&](const Worker::Event&) {
    to_master("count-result", {Number(pid), Number(received), Bool(in_order)});
  });
  worker.On("flood", [&](const Worker::Event& event) {
    int n =
        event.args.empty() ? 0 : static_cast<int>(event.args[0].number_value());
    for (int i = 1; i <= n; ++i) {
      absl::Status sent = worker.EmitAsync(
          "flood-item", {Worker::Target::Master()}, {Number(pid), Number(i)});
      if (!sent.ok()) std::cerr << "flood: " << sent << "\n";
    }
  });

  worker.On("bad-emit", [&](const Worker::Event&) {
    absl::Status refused = worker.EmitAsync("cluster2:x", {}, {});
    to_master("bad-emit-result", {Number(static_cast<int>(refused.code()))});
  });

  absl::Mutex mu;
  double level = 0;
  worker.RegisterStatus(
      "level",
      [&] {
        absl::MutexLock lock(&mu);
        return Number(level);
      },
      [&](const google::protobuf::Value& value) {
        absl::MutexLock lock(&mu);
        level = value.number_value();
        return Number(level);
      });
  worker.SetReady();
  worker.WaitForDrain();
  return 0;
}
