// The version of cluster2: the one place it is written down
// (`cluster2ctl --version`, the cluster2_info metric, /api/state).
#ifndef CLUSTER2_COMMON_VERSION_H_
#define CLUSTER2_COMMON_VERSION_H_

namespace cluster2 {

inline constexpr char kCluster2Version[] = "0.6.0";

}  // namespace cluster2

#endif  // CLUSTER2_COMMON_VERSION_H_
