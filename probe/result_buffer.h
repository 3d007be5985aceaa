#pragma once
// Results a probe produced and the coordinator has not yet acknowledged.
// Numbers every result (per probe, strictly increasing), hands out the ones
// not yet sent on the current stream, forgets them once acknowledged, and
// rewinds on reconnect so everything unacknowledged is sent again.
// Bounded: past `max_results` the oldest are dropped and counted.
// (Spilling to disk is the spool's job, built on this interface.)

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

class ResultBuffer {
 public:
  explicit ResultBuffer(size_t max_results);

  // Numbers and keeps `result`. Returns its sequence number.
  uint64_t append(v1::CheckResult result);
  // Continue numbering after `sequence` if it is ahead (the coordinator has
  // stored up to it, e.g. before this process restarted).
  void continue_after(uint64_t sequence);
  // Everything up to and including `sequence` is stored: forget it.
  void ack(uint64_t sequence);
  // A new stream: send everything unacknowledged again.
  void rewind();
  // Up to `max` results not yet sent on this stream, oldest first; waits up
  // to `wait` for one to arrive. Empty on timeout or after close().
  std::vector<v1::CheckResult> next_unsent(size_t max, std::chrono::milliseconds wait);
  void close();

  size_t size() const;
  uint64_t last_sequence() const;
  uint64_t acked_sequence() const;
  uint64_t oldest_sequence() const;  // 0 when empty
  uint64_t dropped() const;

 private:
  const size_t max_results_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::CheckResult> pending_;  // unacknowledged, in sequence order
  size_t unsent_index_ = 0;              // first not yet sent on this stream
  uint64_t last_sequence_ = 0;
  uint64_t acked_sequence_ = 0;
  uint64_t dropped_ = 0;
  bool closed_ = false;
};

}  // namespace vantage::probe
