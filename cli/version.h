// The version cluster2ctl prints for `cluster2ctl --version`: the project's
// (common/version.h).
#ifndef CLUSTER2_CLI_VERSION_H_
#define CLUSTER2_CLI_VERSION_H_

#include <string>

#include "common/version.h"

namespace cluster2 {

inline std::string Cluster2ctlVersion() {
  return std::string("cluster2ctl ") + kCluster2Version;
}

}  // namespace cluster2

#endif  // CLUSTER2_CLI_VERSION_H_
