#include "master/internal/hello_gate.h"

#include <pthread.h>

#include "absl/time/clock.h"

namespace cluster2 {

HelloGate::HelloGate(size_t max_pending, absl::Duration timeout)
    : max_pending_(max_pending),
      timeout_(timeout),
      thread_([this] { Loop(); }) {}

HelloGate::~HelloGate() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::optional<uint64_t> HelloGate::Admit(std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  if (pending_.size() >= max_pending_) return std::nullopt;
  const uint64_t ticket = next_ticket_++;
  pending_[ticket] = Pending{absl::Now() + timeout_, std::move(cancel)};
  return ticket;
}

void HelloGate::Release(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  pending_.erase(ticket);
}

size_t HelloGate::pending() const {
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

void HelloGate::Loop() {
  pthread_setname_np(pthread_self(), "hello-gate");
  absl::MutexLock lock(&mu_);
  // Tickets grow with admission time and every session has the same
  // timeout, so the first pending ticket has the earliest deadline.
  while (!stopping_) {
    absl::Time deadline = pending_.empty() ? absl::InfiniteFuture()
                                           : pending_.begin()->second.deadline;
    const size_t count = pending_.size();
    const uint64_t first = pending_.empty() ? 0 : pending_.begin()->first;
    auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || pending_.size() != count ||
             (!pending_.empty() && pending_.begin()->first != first);
    };
    if (mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) continue;
    const absl::Time now = absl::Now();
    while (!pending_.empty() && pending_.begin()->second.deadline <= now) {
      pending_.begin()->second.cancel();
      pending_.erase(pending_.begin());
    }
  }
}

}  // namespace cluster2
