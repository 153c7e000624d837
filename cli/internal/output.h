// How cluster2ctl prints: protobuf messages as JSON (-o json) and the
// helpers of its human tables. The tables scripts may parse are declared in
// cli/commands.h and defined in output.cc. Thread-safe: pure functions.
#ifndef CLUSTER2_CLI_INTERNAL_OUTPUT_H_
#define CLUSTER2_CLI_INTERNAL_OUTPUT_H_

#include <string>
#include <vector>

#include "google/protobuf/message.h"

namespace cluster2::ctl {

// `message` as indented JSON with every field, defaults included, ending in
// a newline (what -o json prints for one response).
std::string ToJson(const google::protobuf::Message& message);

// `message` as JSON on one line, without a newline (streams: one per event).
std::string JsonLine(const google::protobuf::Message& message);

// Rows as columns two spaces apart, the last column unpadded, one line each.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace cluster2::ctl

#endif  // CLUSTER2_CLI_INTERNAL_OUTPUT_H_
