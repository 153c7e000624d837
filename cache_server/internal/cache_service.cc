#include "cache_server/internal/cache_service.h"

#include <utility>

#include "cache_server/cache_errors.h"
#include "cache_server/internal/cache_calls.h"
#include "cache_server/internal/cache_wire.h"
#include "common/proto_time.h"

namespace cluster2 {
namespace {

constexpr absl::Duration kDefaultWait = absl::Seconds(10);
constexpr absl::Duration kDefaultLeaseTtl = absl::Seconds(30);

using cache_calls::Call;
using v1::Cache;

absl::Status PlainGet(CacheBackend* store, const v1::GetRequest& request,
                      v1::GetResponse* response) {
  absl::StatusOr<CacheGetResult> got =
      store->Get(request.namespace_(), request.key());
  if (!got.ok()) return got.status();
  ToProto(*got, response);
  return absl::OkStatus();
}

absl::Status DoSet(CacheBackend* store, const v1::SetRequest& request,
                   v1::SetResponse* response) {
  auto set = store->Set(request.namespace_(), request.key(), request.value(),
                        FromProto(request.ttl()), request.leave_if_not_null(),
                        request.lease_token());
  if (!set.ok()) return set.status();
  response->set_written(set->written);
  response->set_current(set->current);
  response->set_revision(set->revision);
  response->set_expires_unix_micros(ExpiryUnixMicros(set->expires_at));
  return absl::OkStatus();
}

absl::Status DoDelete(CacheBackend* store, const v1::DeleteRequest& request,
                      v1::DeleteResponse* response) {
  auto deleted = store->Delete(request.namespace_(), request.key());
  if (!deleted.ok()) return deleted.status();
  response->set_found(deleted->old_value.has_value());
  if (deleted->old_value.has_value())
    response->set_old_value(*deleted->old_value);
  response->set_revision(deleted->revision);
  return absl::OkStatus();
}

absl::Status DoKeys(CacheBackend* store, const v1::KeysRequest& request,
                    v1::KeysResponse* response) {
  size_t limit =
      request.limit() == 0 ? 1000 : std::min<size_t>(request.limit(), 10000);
  auto keys = store->Keys(request.namespace_(), request.prefix(), limit,
                          request.page_token());
  if (!keys.ok()) return keys.status();
  for (const std::string& key : *keys) response->add_keys(key);
  if (keys->size() == limit) response->set_next_page_token(keys->back());
  return absl::OkStatus();
}

absl::Status DoStats(CacheBackend* store, const v1::StatsRequest& request,
                     v1::StatsResponse* response) {
  std::vector<CacheNamespaceInfo> infos =
      store->Namespaces(request.namespace_());
  if (infos.empty() && !request.namespace_().empty()) {
    return MakeCacheError(absl::StatusCode::kNotFound,
                          CacheError::kNamespaceNotFound,
                          "no namespace '" + request.namespace_() + "'");
  }
  for (const CacheNamespaceInfo& info : infos) {
    v1::NamespaceStats* stats = response->add_namespaces();
    stats->set_namespace_(info.name);
    stats->set_hits(info.counters.hits);
    stats->set_misses(info.counters.misses);
    stats->set_loads(info.counters.loads);
    stats->set_errors(info.counters.errors);
    stats->set_keys(info.keys);
    stats->set_bytes(info.bytes);
    stats->set_waiting(info.waiting);
    ToProto(info.options, stats->mutable_options());
  }
  return absl::OkStatus();
}

// One call of a unary method: posted to gRPC, accepted, handled by the
// method's Handler on the loop thread, answered with Reply (at once, or
// later for a parked get-or-load).
template <typename Request, typename Response>
class UnaryCall final : public Call {
 public:
  using Responder = grpc::ServerAsyncResponseWriter<Response>;
  // Asks gRPC for the next call of the method (AsyncService::RequestX).
  // A function, not a member pointer: gcc 12's UBSan instrumentation of
  // calls through a member pointer of a base class template crashed.
  using RequestMethod = void (*)(Cache::AsyncService* service,
                                 grpc::ServerContext* context, Request* request,
                                 Responder* responder,
                                 grpc::ServerCompletionQueue* cq, void* tag);
  // Handles an accepted call; calls Reply now or later.
  using Handler = std::function<void(UnaryCall* call)>;
  struct Method {
    RequestMethod request;
    Handler handler;
    // Whether the handler may park the call (it then learns of the
    // client's cancellation through on_cancel).
    bool may_park = false;
  };

  // Posts one call of `method` (borrowed, lives as long as the service).
  static void Post(const CacheService::Env& env, const Method* method) {
    new UnaryCall(env, method);
  }

  const Request& request() const { return request_; }
  Response* response() { return &response_; }
  // The client went away (known once the call is done).
  bool cancelled() const { return cancelled_; }
  // The client went away while the call was parked (loop thread).
  std::function<void()> on_cancel;
  // The client went away before its answer left (loop thread).
  std::function<void()> on_lost_answer;

  void Reply(const absl::Status& status) {
    replied_ = true;
    if (status.ok()) {
      responder_.Finish(response_, grpc::Status::OK, Arm(finish_));
    } else {
      responder_.FinishWithError(WireStatus(&context_, status), Arm(finish_));
    }
  }

  using Call::PostAndRelease;
  using Call::Release;
  using Call::Retain;

 private:
  UnaryCall(const CacheService::Env& env, const Method* method)
      : Call(env),
        method_(method),
        responder_(&context_),
        accept_(loop(), On([this](bool ok) { OnAccepted(ok); })),
        done_(loop(), On([this](bool) { OnDone(); })),
        finish_(loop(), On([](bool) {})) {
    if (method_->may_park) context_.AsyncNotifyWhenDone(&done_);
    method_->request(env_.async, &context_, &request_, &responder_, env_.cq,
                     Arm(accept_));
  }

  void OnAccepted(bool ok) {
    if (!ok) return;  // the server is shutting down
    Post(env_, method_);
    // The done notification starts with the accepted call (and only then).
    if (method_->may_park) Arm(done_);
    method_->handler(this);
  }

  void OnDone() {
    if (!context_.IsCancelled()) return;
    cancelled_ = true;
    if (!replied_ && on_cancel) on_cancel();
    if (replied_ && on_lost_answer) on_lost_answer();
  }

  const Method* const method_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  Responder responder_;
  IoLoop::Tag accept_, done_, finish_;
  bool replied_ = false;
  bool cancelled_ = false;
};

using GetCall = UnaryCall<v1::GetRequest, v1::GetResponse>;

// A get-or-load: answered at once on a hit or a lease; otherwise parked in
// the store until its waiter is called (value, load error, lease,
// HOLD_LOST, WAIT_EXPIRED) or the client goes away, whichever is first:
// CancelWaiter returns true only when the waiter will never be called.
void GetOrLoad(CacheBackend* store, GetCall* call) {
  const v1::GetRequest& request = call->request();
  absl::Duration ttl = request.has_lease_ttl() ? FromProto(request.lease_ttl())
                                               : kDefaultLeaseTtl;
  absl::Duration wait =
      request.has_wait() ? FromProto(request.wait()) : kDefaultWait;
  // A lease granted to this call: passed on if the client never gets it.
  auto granted = std::make_shared<std::string>();
  auto answer = [call, granted](absl::StatusOr<CacheGetResult> result) {
    if (!result.ok()) return call->Reply(result.status());
    *granted = result->lease_token;
    if (call->cancelled()) {  // answered after its client went away
      call->on_lost_answer();
      return call->Reply(absl::CancelledError("the client went away"));
    }
    ToProto(*result, call->response());
    call->Reply(absl::OkStatus());
  };
  call->on_lost_answer = [store, call, granted] {
    if (granted->empty()) return;
    const v1::GetRequest& request = call->request();
    store
        ->ReleaseLease(request.namespace_(), request.key(), *granted, "",
                       /*retry=*/true)
        .IgnoreError();
  };
  call->Retain();  // until the waiter has answered or is cancelled
  uint64_t waiter_id = 0;
  absl::StatusOr<std::optional<CacheGetResult>> got = store->GetOrLease(
      request.namespace_(), request.key(), request.client_id(), ttl,
      [call, answer](absl::StatusOr<CacheGetResult> result) {
        call->PostAndRelease(
            [answer, result = std::move(result)] { answer(result); });
      },
      &waiter_id, wait);
  if (!got.ok() || got->has_value()) {
    if (got.ok()) {
      answer(**got);
    } else {
      call->Reply(got.status());
    }
    call->Release();  // may not delete: the reply is out
    return;
  }
  call->on_cancel = [store, call, waiter_id] {
    if (!store->CancelWaiter(waiter_id)) return;  // its answer is on the way
    call->Reply(absl::CancelledError("the client went away"));
    call->Release();
  };
}

}  // namespace

CacheService::CacheService(CacheBackend* store) : store_(store) {}

CacheService::~CacheService() = default;

void CacheService::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(&async_);
  builder.RegisterService(&health_);
  cq_ = builder.AddCompletionQueue();
}

void CacheService::Start() {
  raw_cq_ = cq_.get();
  loop_ = std::make_unique<IoLoop>("cache-io", std::move(cq_));
  env_ = Env{this, store_, &async_, &health_, raw_cq_, loop_.get()};
  loop_->RunAndWait([this] {
    PostUnaryCalls();
    PostStreamCalls();
    PostHealthCalls();
  });
}

void CacheService::Stop() {
  if (loop_ == nullptr) return;
  // grpc::Server::Shutdown has cancelled every call: their operations come
  // back and each call deletes itself; nothing new is accepted. A call may
  // outlive its last operation: a parked get-or-load whose answer another
  // thread (the store's timers, the maintenance sweep) is posting. So wait
  // for the calls themselves, then for the queue to be quiet.
  {
    absl::MutexLock lock(&calls_mu_);
    calls_mu_.Await(absl::Condition(
        +[](int* live) { return *live == 0; }, &live_calls_));
  }
  loop_->WaitIdle();
  loop_.reset();
}

void CacheService::CallStarted() {
  absl::MutexLock lock(&calls_mu_);
  ++live_calls_;
}

void CacheService::CallEnded() {
  absl::MutexLock lock(&calls_mu_);
  --live_calls_;
}

// The RequestMethod of method `name`.
#define REQUEST(name)                                                 \
  [](Cache::AsyncService* service, grpc::ServerContext* context,      \
     auto* request, auto* responder, grpc::ServerCompletionQueue* cq, \
     void* tag) {                                                     \
    service->Request##name(context, request, responder, cq, cq, tag); \
  }

void CacheService::PostUnaryCalls() {
  CacheBackend* store = store_;
  using Use = UnaryCall<v1::UseRequest, v1::UseResponse>;
  using Set = UnaryCall<v1::SetRequest, v1::SetResponse>;
  using Release = UnaryCall<v1::ReleaseLeaseRequest, v1::ReleaseLeaseResponse>;
  using Delete = UnaryCall<v1::DeleteRequest, v1::DeleteResponse>;
  using Keys = UnaryCall<v1::KeysRequest, v1::KeysResponse>;
  using Stats = UnaryCall<v1::StatsRequest, v1::StatsResponse>;
  using Batch = UnaryCall<v1::BatchRequest, v1::BatchResponse>;
  static const Use::Method use{
      REQUEST(Use), [store](Use* call) {
        bool conflict = false;
        auto used = store->Use(call->request().namespace_(),
                               FromProto(call->request().options()), &conflict);
        if (used.ok()) {
          ToProto(*used, call->response()->mutable_options());
          call->response()->set_conflict(conflict);
        }
        call->Reply(used.status());
      }};
  static const GetCall::Method get{
      REQUEST(Get),
      [store](GetCall* call) {
        if (call->request().lease()) return GetOrLoad(store, call);
        call->Reply(PlainGet(store, call->request(), call->response()));
      },
      /*may_park=*/true};
  static const Set::Method set{
      REQUEST(Set), [store](Set* call) {
        call->Reply(DoSet(store, call->request(), call->response()));
      }};
  static const Release::Method release{
      REQUEST(ReleaseLease), [store](Release* call) {
        const v1::ReleaseLeaseRequest& request = call->request();
        call->Reply(store->ReleaseLease(request.namespace_(), request.key(),
                                        request.lease_token(), request.error(),
                                        request.retry()));
      }};
  static const Delete::Method del{
      REQUEST(Delete), [store](Delete* call) {
        call->Reply(DoDelete(store, call->request(), call->response()));
      }};
  static const Keys::Method keys{
      REQUEST(Keys), [store](Keys* call) {
        call->Reply(DoKeys(store, call->request(), call->response()));
      }};
  static const Stats::Method stats{
      REQUEST(Stats), [store](Stats* call) {
        call->Reply(DoStats(store, call->request(), call->response()));
      }};
  static const Batch::Method batch{REQUEST(Batch), [this](Batch* call) {
                                     RunBatch(call->request(),
                                              call->response());
                                     call->Reply(absl::OkStatus());
                                   }};
  // A few calls of each method wait posted, so that concurrent callers are
  // matched without waiting for the loop to post the next one.
  for (int i = 0; i < 4; ++i) {
    Use::Post(env_, &use);
    GetCall::Post(env_, &get);
    Set::Post(env_, &set);
    Release::Post(env_, &release);
    Delete::Post(env_, &del);
    Keys::Post(env_, &keys);
    Stats::Post(env_, &stats);
    Batch::Post(env_, &batch);
  }
}

#undef REQUEST

void CacheService::RunBatch(const v1::BatchRequest& request,
                            v1::BatchResponse* response) {
  response->set_id(request.id());
  for (const v1::BatchRequest::Op& op : request.ops()) {
    v1::BatchResponse::Result* result = response->add_results();
    absl::Status status;
    if (op.has_get()) {
      status = op.get().lease()
                   ? absl::InvalidArgumentError(
                         "get-or-load is not allowed in a batch")
                   : PlainGet(store_, op.get(), result->mutable_get());
    } else if (op.has_set()) {
      status = DoSet(store_, op.set(), result->mutable_set());
    } else if (op.has_delete_()) {
      status = DoDelete(store_, op.delete_(), result->mutable_delete_());
    } else {
      status = absl::InvalidArgumentError("an empty op");
    }
    ToProto(status, result);
  }
}

}  // namespace cluster2
