// What a group of cache_worker processes (cache_worker.cc) did, for the
// get-or-load tests: each must exit 0; their "loading" and "got N VALUE"
// lines are added up. A worker that does not exit in time, exits non-zero
// or prints a malformed line is a test failure.
#ifndef CLUSTER2_TESTS_TESTING_CACHE_WORKERS_H_
#define CLUSTER2_TESTS_TESTING_CACHE_WORKERS_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/harness.h"

namespace cluster2::testing {

struct CacheWorkersOutcome {
  int loads = 0;                 // loader runs, in all processes
  int got = 0;                   // callers that got a value
  std::set<std::string> values;  // the distinct values they got
};

inline CacheWorkersOutcome AwaitCacheWorkers(
    std::vector<std::unique_ptr<Process>>& workers) {
  CacheWorkersOutcome outcome;
  for (auto& worker : workers) {
    std::optional<int> status = worker->Wait(absl::Seconds(30));
    if (!status.has_value()) {
      ADD_FAILURE() << "a cache_worker did not exit within 30s";
      continue;
    }
    std::string out = worker->Stdout();
    EXPECT_EQ(*status, 0) << out << worker->Stderr();
    outcome.loads += static_cast<int>(Lines(out, "loading").size());
    for (const std::string& line : Lines(out, "got ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      int n = 0;
      if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &n)) {
        ADD_FAILURE() << "malformed line: " << line;
        continue;
      }
      outcome.got += n;
      outcome.values.insert(parts[2]);
    }
  }
  return outcome;
}

}  // namespace cluster2::testing

#endif  // CLUSTER2_TESTS_TESTING_CACHE_WORKERS_H_
