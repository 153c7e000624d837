// Conversions between absl time types and google.protobuf Timestamp/Duration.
//
// Thread-safe: pure functions.
#ifndef CLUSTER2_COMMON_PROTO_TIME_H_
#define CLUSTER2_COMMON_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace cluster2 {

void ToProto(absl::Time time, google::protobuf::Timestamp* out);
void ToProto(absl::Duration duration, google::protobuf::Duration* out);
absl::Time FromProto(const google::protobuf::Timestamp& time);
absl::Duration FromProto(const google::protobuf::Duration& duration);

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_PROTO_TIME_H_
