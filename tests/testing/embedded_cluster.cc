// An app that embeds the master (cluster2::Listen) for the emitter tests.
// Its master, once 3 workers are ready, emits "ping" with the default
// targets (itself and every worker) and prints, one line each:
//   "delivered <n>"           the emit's result
//   "master got ping"         its own listener
//   "pong <pid>"              each worker's answer
// Every process (the master and each worker) registers the status "level"
// (a settable number).
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "embed/listen.h"

namespace {

google::protobuf::Value Number(double n) {
  google::protobuf::Value value;
  value.set_number_value(n);
  return value;
}

absl::Mutex print_mu;

void Print(const std::string& line) {
  absl::MutexLock lock(&print_mu);
  std::cout << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  cluster2::ListenOptions options;
  options.config.set_no_workers(3);
  options.config.set_port(0);
  options.config.set_mon_port(0);
  options.config.set_host("127.0.0.1");
  options.serve = [](cluster2::Worker& worker) {
    worker.On("ping", [&worker](const cluster2::ClusterEvent&) {
      (void)worker.Emit("pong", {cluster2::EmitTarget::Master()},
                        {Number(getpid())});
    });
    double level = 0;
    worker.RegisterStatus(
        "level", [&level] { return Number(level); },
        [&level](const google::protobuf::Value& value) {
          level = value.number_value();
          return Number(level);
        });
    worker.SetReady();
    worker.WaitForDrain();
    return 0;
  };
  double level = 0;
  options.on_master = [&level](cluster2::MasterContext& master) {
    master.On("ping",
              [](const cluster2::ClusterEvent&) { Print("master got ping"); });
    master.On("pong", [](const cluster2::ClusterEvent& event) {
      Print("pong " +
            std::to_string(static_cast<int>(event.args[0].number_value())));
    });
    master.RegisterStatus(
        "level", [&level] { return Number(level); },
        [&level](const google::protobuf::Value& value) {
          level = value.number_value();
          return Number(level);
        });
    std::thread([&master] {
      // Wait for the 3 workers through the master's own "workers" status.
      for (int i = 0; i < 500; ++i) {
        auto workers = master.GetStatus("workers", absl::Seconds(1));
        int ready = 0;
        if (workers.ok()) {
          for (const auto& worker : (*workers)[0].value.list_value().values()) {
            if (worker.struct_value().fields().at("state").string_value() ==
                "ready")
              ++ready;
          }
        }
        if (ready == 3) break;
        absl::SleepFor(absl::Milliseconds(20));
      }
      auto result = master.Emit("ping", {}, {});
      Print("delivered " + std::to_string(result.ok() ? result->delivered : 0));
    }).detach();
  };
  return cluster2::Listen(argc, argv, std::move(options));
}
