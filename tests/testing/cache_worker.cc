// A process that uses the cache like a worker would, for the cache tests:
//
//   cache_worker --socket=PATH --ns=NS --key=KEY [--callers=N]
//                [--load-ms=N] [--barrier]
//
// Runs N concurrent get-or-load calls of KEY; the loader prints
// "loading <pid>", takes load-ms and returns "value-<pid>". With --barrier
// it first prints "ready" and waits for the key "go" of namespace
// "barrier" to be set (a watch, no polling), so that many processes start
// together. At the end it prints "got <successes> <distinct values>" and one
// "error <message>" line per failure.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache_client/cache.h"

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags = {
      {"callers", "1"}, {"load-ms", "0"}, {"barrier", "false"}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0) return 2;
    flags[arg.substr(2, eq == std::string::npos ? eq : eq - 2)] =
        eq == std::string::npos ? "true" : arg.substr(eq + 1);
  }
  int callers = 1, load_ms = 0;
  if (!absl::SimpleAtoi(flags["callers"], &callers) ||
      !absl::SimpleAtoi(flags["load-ms"], &load_ms)) {
    return 2;
  }
  cluster2::CacheClientOptions options;
  options.address = flags["socket"];
  options.wait = absl::Seconds(30);
  auto client = cluster2::CacheClient::Connect(options);
  if (!client.ok()) return 1;
  auto space = (*client)->Use(flags["ns"]);
  if (!space.ok()) {
    std::cout << "error " << space.status() << std::endl;
    return 1;
  }
  absl::Notification go;
  std::shared_ptr<cluster2::CacheNamespace> barrier;
  std::unique_ptr<cluster2::CacheWatch> watch;
  if (flags["barrier"] == "true") {
    barrier = *(*client)->Use("barrier");
    watch = barrier->Watch("go", [&](const cluster2::CacheWatchEvent& event) {
      if (event.kind == cluster2::CacheWatchEvent::Kind::kSet &&
          !go.HasBeenNotified())
        go.Notify();
    });
    if (!watch->WaitUntilLive(absl::Seconds(10))) return 1;
    std::cout << "ready" << std::endl;
    go.WaitForNotification();
  }

  std::mutex mu;
  int ok = 0;
  std::set<std::string> values;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      auto got = (*space)->GetOrLoad(
          flags["key"], [&](const std::string&) -> absl::StatusOr<std::string> {
            printf("loading %d\n", getpid());
            fflush(stdout);
            absl::SleepFor(absl::Milliseconds(load_ms));  // the "work"
            return absl::StrCat("value-", getpid());
          });
      std::lock_guard<std::mutex> lock(mu);
      if (got.ok()) {
        ++ok;
        values.insert(got->value);
      } else {
        errors.push_back(got.status().ToString());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::cout << "got " << ok << " " << absl::StrJoin(values, ",") << std::endl;
  for (const std::string& error : errors)
    std::cout << "error " << error << "\n";
  std::cout.flush();
  watch.reset();
  barrier.reset();
  space->reset();
  return errors.empty() ? 0 : 1;
}
