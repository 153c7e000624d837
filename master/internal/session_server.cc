#include "master/internal/session_server.h"

#include <utility>

#include "master/internal/session_calls.h"

namespace cluster2 {
namespace {

// Calls of each method gRPC may hand over without waiting for the loop to
// ask again: a burst of workers attaching at start does not queue behind
// one round trip each.
constexpr int kListenersPerMethod = 8;

}  // namespace

SessionServer::SessionServer(SessionServerOptions options,
                             Supervisor* supervisor, EventRouter* router,
                             StatusRegistry* registry, DebugSession* debug)
    : shared_(std::make_unique<Shared>()) {
  shared_->options = std::move(options);
  shared_->supervisor = supervisor;
  shared_->router = router;
  shared_->registry = registry;
  shared_->debug = debug;
}

SessionServer::~SessionServer() {
  // The server is shut down: every call's operations come back (cancelled)
  // and the calls free themselves. Only once none is out may the queue shut
  // down: a handler that runs later (a failed read finishing its call)
  // would start an operation on a shut-down queue, which gRPC aborts on.
  if (loop_ != nullptr) loop_->WaitIdle();
  loop_.reset();
}

void SessionServer::Register(grpc::ServerBuilder* builder) {
  builder->RegisterService(&shared_->sessions);
  builder->RegisterService(&shared_->emitter);
  builder->RegisterService(&shared_->health);
  cq_ = builder->AddCompletionQueue();
}

void SessionServer::Start() {
  shared_->cq = cq_.get();
  loop_ = std::make_unique<IoLoop>("master-io", std::move(cq_));
  shared_->loop = loop_.get();
  Shared* shared = shared_.get();
  loop_->Post([shared] {
    for (int i = 0; i < kListenersPerMethod; ++i) {
      ListenForSession(shared);
      ListenForEmit(shared);
      ListenForEmitStream(shared);
      ListenForSubscribe(shared);
    }
    ListenForHealth(shared);
    ListenForHealth(shared);
  });
  started_ = true;
}

void SessionServer::SetServing(bool serving) {
  if (shared_->serving.exchange(serving) == serving || !started_) return;
  Shared* shared = shared_.get();
  loop_->Post([shared] { HealthChanged(shared); });
}

}  // namespace cluster2
