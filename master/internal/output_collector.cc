#include "master/internal/output_collector.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace cluster2 {
namespace {

constexpr size_t kMaxLine = 16 * 1024;

}  // namespace

absl::StatusOr<std::unique_ptr<OutputCollector>> OutputCollector::Create() {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return ErrnoStatus(errno, "epoll_create1");
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    int saved = errno;
    close(epoll_fd);
    return ErrnoStatus(saved, "eventfd");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_fd;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
  return std::unique_ptr<OutputCollector>(
      new OutputCollector(epoll_fd, wake_fd));
}

OutputCollector::OutputCollector(int epoll_fd, int wake_fd)
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd), thread_([this] { Loop(); }) {}

OutputCollector::~OutputCollector() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
  thread_.join();
  std::vector<int> fds;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [fd, stream] : streams_) fds.push_back(fd);
  }
  for (int fd : fds) Close(fd);
  close(wake_fd_);
  close(epoll_fd_);
}

void OutputCollector::Watch(int fd, std::string component, pid_t pid) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  {
    absl::MutexLock lock(&mu_);
    Stream& stream = streams_[fd];
    stream.component = std::move(component);
    stream.pid = pid;
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
}

void OutputCollector::Loop() {
  epoll_event events[32];
  while (true) {
    int ready = epoll_wait(epoll_fd_, events, 32, -1);
    if (ready < 0 && errno != EINTR) return;
    for (int i = 0; i < ready; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        continue;
      }
      if (Drain(fd) == 0) Close(fd);
    }
  }
}

ssize_t OutputCollector::Drain(int fd) {
  char buffer[65536];
  ssize_t n = read(fd, buffer, sizeof(buffer));
  if (n < 0) return errno == EINTR || errno == EAGAIN ? -1 : 0;
  if (n == 0) return 0;
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(fd);
  if (it == streams_.end()) return 0;
  Stream& stream = it->second;
  stream.partial.append(buffer, static_cast<size_t>(n));
  size_t start = 0;
  while (true) {
    size_t newline = stream.partial.find('\n', start);
    size_t end = newline == std::string::npos ? stream.partial.size() : newline;
    if (end - start > kMaxLine ||
        (newline == std::string::npos && end - start == kMaxLine)) {
      // An endless line: split it.
      LogFor("OUT", stream.component, stream.pid,
             absl::string_view(stream.partial).substr(start, kMaxLine));
      start += kMaxLine;
      continue;
    }
    if (newline == std::string::npos) break;
    LogFor("OUT", stream.component, stream.pid,
           absl::string_view(stream.partial).substr(start, newline - start));
    start = newline + 1;
  }
  stream.partial.erase(0, start);
  return n;
}

void OutputCollector::Close(int fd) {
  // What is left in the pipe, then the last partial line.
  while (Drain(fd) > 0) {
  }
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(fd);
  if (it == streams_.end()) return;
  if (!it->second.partial.empty()) {
    LogFor("OUT", it->second.component, it->second.pid, it->second.partial);
  }
  streams_.erase(it);
}

}  // namespace cluster2
