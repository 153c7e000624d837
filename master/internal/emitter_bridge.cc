#include "master/internal/emitter_bridge.h"

#include <pthread.h>

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace cluster2 {

absl::StatusOr<std::unique_ptr<EmitterBridge>> EmitterBridge::Start(
    const std::string& address, const std::string& cluster,
    const std::string& host, EventRouter* router) {
  absl::StatusOr<RedisAddress> parsed = ParseRedisAddress(address);
  if (!parsed.ok()) return parsed.status();
  std::unique_ptr<EmitterBridge> bridge(new EmitterBridge(
      *parsed, absl::StrCat("c2:events:{", cluster, "}"), host, router));
  // From the stream's end now: what was sent before this master started
  // is not for it. (A Redis that does not answer yet: from its start.)
  absl::StatusOr<RedisReply> last = bridge->out_.Command(
      {"XREVRANGE", bridge->stream_, "+", "-", "COUNT", "1"});
  if (last.ok()) {
    absl::MutexLock lock(&bridge->mu_);
    bridge->cursor_ =
        last->elements.empty() || last->elements[0].elements.empty()
            ? "0-0"
            : last->elements[0].elements[0].text;
  } else {
    LogWarning(absl::StrCat("emitter bridge: ", last.status().message(),
                            "; retrying"));
  }
  EmitterBridge* raw = bridge.get();
  router->SetBridge([raw](const v1::Event& event) { raw->Publish(event); });
  bridge->sender_ = std::thread([raw] { raw->SendLoop(); });
  bridge->receiver_ = std::thread([raw] { raw->ReceiveLoop(); });
  LogInfo(absl::StrCat("emitter bridge: events to `cluster` go through ",
                       parsed->ToString(), " (stream ", bridge->stream_, ")"));
  return bridge;
}

EmitterBridge::EmitterBridge(RedisAddress address, std::string stream,
                             std::string host, EventRouter* router)
    : stream_(std::move(stream)),
      host_(std::move(host)),
      router_(router),
      out_(address, absl::Seconds(1)),
      in_(address, absl::Seconds(1)),
      control_(address, absl::Seconds(1)) {}

EmitterBridge::~EmitterBridge() {
  router_->SetBridge(nullptr);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  if (sender_.joinable()) sender_.join();
  if (receiver_.joinable()) receiver_.join();
}

void EmitterBridge::Publish(const v1::Event& event) {
  v1::Event stamped = event;
  stamped.set_from_host(host_);
  std::string bytes;
  stamped.SerializeToString(&bytes);
  absl::MutexLock lock(&mu_);
  queue_.emplace_back(next_number_++, std::move(bytes));
  if (queue_.size() > kMaxQueued) {
    queue_.pop_front();
    ++counters_.dropped;
    if (!outage_logged_) {
      LogError(absl::StrCat("emitter bridge: more than ", kMaxQueued,
                            " events wait for Redis: dropping the oldest"));
      outage_logged_ = true;
    }
  }
}

EmitterBridge::Counters EmitterBridge::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

void EmitterBridge::Wake() {
  const int64_t id = in_client_id_.load();
  if (id != 0) (void)control_.Command({"CLIENT", "UNBLOCK", absl::StrCat(id)});
}

void EmitterBridge::SendLoop() {
  pthread_setname_np(pthread_self(), "bridge-out");
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    std::pair<uint64_t, std::string> next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      next = queue_.front();  // stays queued until it is in the stream
    }
    absl::StatusOr<RedisReply> added = out_.Command(
        {"XADD", stream_, "MAXLEN", "~", absl::StrCat(kStreamLength), "*", "h",
         host_, "n", absl::StrCat(next.first), "e", next.second});
    absl::MutexLock lock(&mu_);
    if (!added.ok()) {
      if (!outage_logged_) {
        LogWarning(absl::StrCat("emitter bridge: ", added.status().message(),
                                "; events wait for it"));
        outage_logged_ = true;
      }
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    backoff = absl::Milliseconds(50);
    if (outage_logged_) {
      LogInfo("emitter bridge: Redis answers again");
      outage_logged_ = false;
    }
    if (!queue_.empty()) queue_.pop_front();
    ++counters_.sent;
  }
}

void EmitterBridge::ReceiveLoop() {
  pthread_setname_np(pthread_self(), "bridge-in");
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    std::string cursor;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      cursor = cursor_;
    }
    if (cursor.empty()) {  // Redis did not answer at the start: its end now
      absl::StatusOr<RedisReply> last =
          in_.Command({"XREVRANGE", stream_, "+", "-", "COUNT", "1"});
      if (last.ok()) {
        cursor = last->elements.empty() || last->elements[0].elements.empty()
                     ? "0-0"
                     : last->elements[0].elements[0].text;
        absl::MutexLock lock(&mu_);
        cursor_ = cursor;
      } else {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
        backoff = std::min(backoff * 2, absl::Seconds(1));
        continue;
      }
    }
    if (in_client_id_.load() == 0) {
      absl::StatusOr<RedisReply> id = in_.Command({"CLIENT", "ID"});
      if (id.ok()) in_client_id_.store(id->integer);
    }
    absl::StatusOr<RedisReply> read = in_.CommandWithTimeout(
        {"XREAD", "COUNT", "1000", "BLOCK", "1000", "STREAMS", stream_, cursor},
        absl::Seconds(3));
    if (!read.ok()) {
      in_client_id_.store(0);
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    backoff = absl::Milliseconds(50);
    for (const RedisReply& stream : read->elements) {
      if (stream.elements.size() != 2) continue;
      for (const RedisReply& entry : stream.elements[1].elements) {
        if (entry.elements.size() != 2) continue;
        const RedisReply& fields = entry.elements[1];
        v1::Event event;
        bool parsed = false;
        std::string host;
        uint64_t number = 0;
        for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
          const std::string& name = fields.elements[i].text;
          const std::string& value = fields.elements[i + 1].text;
          if (name == "e") parsed = event.ParseFromString(value);
          if (name == "h") host = value;
          if (name == "n") (void)absl::SimpleAtoi(value, &number);
        }
        {
          absl::MutexLock lock(&mu_);
          cursor_ = entry.elements[0].text;
          // A repeated append (its first answer was lost): delivered once.
          uint64_t& last = delivered_[host];
          if (parsed && number != 0 && number <= last) {
            ++counters_.repeated;
            continue;
          }
          if (number != 0) last = number;
          if (parsed) ++counters_.received;
        }
        if (!parsed) {
          LogWarning(absl::StrCat("emitter bridge: entry ",
                                  entry.elements[0].text, " of ", stream_,
                                  " is not an event: skipped"));
          continue;
        }
        router_->DeliverFromBridge(event);
      }
    }
  }
}

}  // namespace cluster2
