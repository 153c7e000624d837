// The types of cluster2's emitter and status, shared by the worker library
// (cluster2::Worker) and the master's side of an embedding app
// (cluster2::MasterContext).
#ifndef CLUSTER2_EVENTS_EVENTS_H_
#define CLUSTER2_EVENTS_EVENTS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"

namespace cluster2 {

// Where an event goes.
struct EmitTarget {
  // kCluster: every process of every host sharing the emitter bridge
  // (emitter.proto's Target.cluster).
  enum class Kind { kSelf, kMaster, kWorkers, kPid, kCluster };
  Kind kind = Kind::kSelf;
  int pid = 0;
  static EmitTarget Self() { return {Kind::kSelf, 0}; }
  static EmitTarget Master() { return {Kind::kMaster, 0}; }
  static EmitTarget Workers() { return {Kind::kWorkers, 0}; }
  static EmitTarget Pid(int pid) { return {Kind::kPid, pid}; }
  static EmitTarget Cluster() { return {Kind::kCluster, 0}; }
};

// An event as a listener receives it.
struct ClusterEvent {
  std::string name;
  std::vector<google::protobuf::Value> args;  // JSON values
  int from_pid = 0;
  uint64_t sequence = 0;  // increasing per sender
};

using EventHandler = std::function<void(const ClusterEvent& event)>;

struct EmitResult {
  uint32_t delivered = 0;         // processes that received it
  std::vector<int> unknown_pids;  // pid targets that are not workers
};

// A registrant's view of a status, and its update (returns the value after
// the update).
using StatusView = std::function<google::protobuf::Value()>;
using StatusUpdate =
    std::function<google::protobuf::Value(const google::protobuf::Value&)>;

// One process's value of a status.
struct StatusEntry {
  int pid = 0;
  std::optional<unsigned> worker_id;  // unset for the master
  google::protobuf::Value value;
  std::string error;  // the registrant failed or did not answer in time
};

}  // namespace cluster2

#endif  // CLUSTER2_EVENTS_EVENTS_H_
