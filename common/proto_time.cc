#include "common/proto_time.h"

#include <cstdint>

namespace cluster2 {
namespace {
constexpr int64_t kNanosPerSecond = 1000000000;
}  // namespace

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  int64_t nanos = absl::ToUnixNanos(time);
  int64_t seconds = nanos / kNanosPerSecond;
  int64_t rest = nanos % kNanosPerSecond;
  if (rest < 0) {  // Timestamp nanos are never negative
    --seconds;
    rest += kNanosPerSecond;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

void ToProto(absl::Duration duration, google::protobuf::Duration* out) {
  int64_t nanos = absl::ToInt64Nanoseconds(duration);
  out->set_seconds(nanos / kNanosPerSecond);  // same sign for both parts
  out->set_nanos(static_cast<int32_t>(nanos % kNanosPerSecond));
}

absl::Time FromProto(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) +
         absl::Nanoseconds(time.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) +
         absl::Nanoseconds(duration.nanos());
}

}  // namespace cluster2
