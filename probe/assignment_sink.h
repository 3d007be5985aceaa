#pragma once
// Where the coordinator's word about checks goes: the streamer, which only
// carries messages, hands each one over here, and whatever runs the checks
// (the scheduler, wired by the agent) carries it out. The streamer knows
// nothing of scheduling.

#include <cstdint>
#include <future>
#include <string>

#include "vantage/v1/probe_service.pb.h"

namespace vantage::probe {

class AssignmentSink {
 public:
  using Checks = google::protobuf::RepeatedPtrField<v1::Check>;
  using Phases = google::protobuf::RepeatedPtrField<v1::CheckPhase>;
  virtual ~AssignmentSink() = default;
  // The whole set of checks, or a part of it (`first`, `last`), with the
  // part's phases (CheckPhase); both are moved in. Ready when the part is
  // applied, so a reader that waits for it before reading the next part
  // holds one part in memory.
  virtual std::future<void> assign(Checks checks, bool first, bool last, Phases phases) = 0;
  // Its phases too: a diff may carry phases alone.
  virtual void apply(const v1::CheckAssignmentDiff& diff) = 0;
  // Run a check now, its result carrying `request_id`.
  virtual void recheck(int64_t check_id, std::string request_id) = 0;
};

}  // namespace vantage::probe
