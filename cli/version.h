// The version cluster2ctl prints for `cluster2ctl --version`: the one place
// it is written down.
#ifndef CLUSTER2_CLI_VERSION_H_
#define CLUSTER2_CLI_VERSION_H_

namespace cluster2 {

inline constexpr char kCluster2ctlVersion[] = "cluster2ctl 0.5.0";

}  // namespace cluster2

#endif  // CLUSTER2_CLI_VERSION_H_
