// HTTP/2 keepalive for cluster2's long-lived streams (cache Watch and Hold,
// the worker session), so that a peer that stops answering (SIGSTOP, a
// deadlock) is noticed within seconds instead of never: a stream with no
// traffic looks the same as one whose peer is frozen.
//
// Clients ping every kKeepaliveTime and drop the connection (the stream
// ends UNAVAILABLE) when a ping is not answered within kKeepaliveTimeout;
// servers must allow pings that often, or they end the connection with
// "too_many_pings".
#ifndef CLUSTER2_COMMON_KEEPALIVE_H_
#define CLUSTER2_COMMON_KEEPALIVE_H_

#include "grpcpp/grpcpp.h"

namespace cluster2 {

inline constexpr int kKeepaliveTimeMs = 5000;
inline constexpr int kKeepaliveTimeoutMs = 5000;

inline void SetClientKeepalive(grpc::ChannelArguments* args) {
  args->SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args->SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args->SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args->SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
}

inline void AllowClientKeepalive(grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      kKeepaliveTimeMs / 2);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_KEEPALIVE_H_
