#include "common/io_loop.h"

#include <pthread.h>

#include <utility>

#include "absl/synchronization/notification.h"
#include "grpc/support/time.h"

namespace cluster2 {

IoLoop::Timer::Timer(IoLoop& loop, std::function<void(bool)> handler)
    : loop_(loop), tag_(loop, [this, handler = std::move(handler)](bool fired) {
        set_ = false;
        handler(fired);
      }) {}

void IoLoop::Timer::Set(absl::Time when) {
  set_ = true;
  alarm_.Set(loop_.cq(), absl::ToChronoTime(when), tag_.Arm());
}

void IoLoop::Timer::Cancel() {
  if (set_) alarm_.Cancel();
}

IoLoop::IoLoop(std::string thread_name,
               std::unique_ptr<grpc::CompletionQueue> cq)
    : thread_name_(std::move(thread_name)),
      cq_(cq != nullptr ? std::move(cq)
                        : std::make_unique<grpc::CompletionQueue>()),
      wake_tag_(*this, [this](bool) {
        {
          absl::MutexLock lock(&mu_);
          waking_ = false;
        }
        RunPosted();
      }) {
  thread_ = std::thread([this] { Run(); });
}

IoLoop::~IoLoop() {
  // Runs what is still posted (it may only release resources now).
  RunAndWait([] {});
  cq_->Shutdown();
  thread_.join();
}

void IoLoop::Post(std::function<void()> work) {
  if (InLoop()) {
    local_.push_back(std::move(work));
    return;
  }
  absl::MutexLock lock(&mu_);
  posted_.push_back(std::move(work));
  if (!waking_) {
    waking_ = true;
    // Not counted in outstanding_: the loop's own, it always comes back.
    // A deadline in the past fires at once; "now" would be rounded up to
    // gRPC's next millisecond tick and wait for the timer thread (~1 ms
    // for every wake-up, measured).
    wake_.Set(cq_.get(), gpr_inf_past(GPR_CLOCK_MONOTONIC), &wake_tag_);
  }
}

void IoLoop::RunAndWait(std::function<void()> work) {
  if (InLoop()) {
    work();
    return;
  }
  absl::Notification done;
  Post([&] {
    work();
    done.Notify();
  });
  done.WaitForNotification();
}

void IoLoop::WaitIdle() {
  {
    absl::MutexLock lock(&mu_);
    idle_ = false;
  }
  Post([] {});  // the loop checks after every event, this one included
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&idle_));
}

void IoLoop::RunPosted() {
  std::vector<std::function<void()>> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(posted_);
  }
  for (auto& work : batch) work();
}

void IoLoop::Run() {
  // Linux keeps 15 bytes of a thread name.
  pthread_setname_np(pthread_self(), thread_name_.substr(0, 15).c_str());
  void* tag;
  bool ok;
  while (cq_->Next(&tag, &ok)) {
    auto* event = static_cast<Tag*>(tag);
    if (event != &wake_tag_) --outstanding_;
    event->handler_(ok);
    // Work posted by the handler (e.g. operations started from callbacks)
    // runs now, in order, before the next event.
    while (!local_.empty()) {
      std::vector<std::function<void()>> batch;
      batch.swap(local_);
      for (auto& work : batch) work();
    }
    if (outstanding_ == 0) {
      absl::MutexLock lock(&mu_);
      idle_ = true;
    }
  }
}

}  // namespace cluster2
