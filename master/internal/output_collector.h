// OutputCollector: the workers' stdout and stderr, line by line, into the
// master's log, each line tagged with the worker's slot and pid:
//
//   2026-11-26T08:19:41.123Z OUT worker 2[4242] listening on fd 3
//
// One thread waits on every pipe with epoll. A partial line is kept until
// its newline (or the pipe's end); lines longer than 16 KiB are split.
//
// Thread-safe: Watch may be called from any thread.
#ifndef CLUSTER2_MASTER_INTERNAL_OUTPUT_COLLECTOR_H_
#define CLUSTER2_MASTER_INTERNAL_OUTPUT_COLLECTOR_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cluster2 {

class OutputCollector {
 public:
  static absl::StatusOr<std::unique_ptr<OutputCollector>> Create();
  OutputCollector(const OutputCollector&) = delete;
  OutputCollector& operator=(const OutputCollector&) = delete;
  // Stops the thread, writing what the pipes still hold.
  ~OutputCollector();

  // Takes ownership of `fd` (the read end of a child's output pipe) and logs
  // its lines as `component`[`pid`] until the pipe ends.
  void Watch(int fd, std::string component, pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Stream {
    std::string component;
    pid_t pid = 0;
    std::string partial;
  };

  OutputCollector(int epoll_fd, int wake_fd);
  void Loop();
  // Reads what `fd` has and logs its complete lines. Returns the bytes read:
  // 0 at the pipe's end, -1 if nothing was there (the fd is non-blocking).
  ssize_t Drain(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  void Close(int fd) ABSL_LOCKS_EXCLUDED(mu_);

  const int epoll_fd_;
  const int wake_fd_;
  absl::Mutex mu_;
  std::map<int, Stream> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace cluster2

#endif  // CLUSTER2_MASTER_INTERNAL_OUTPUT_COLLECTOR_H_
