#pragma once
// Results a probe produced and the coordinator has not yet acknowledged.
//
// Every result gets a sequence number (per probe, strictly increasing) and is
// appended to a segment file on disk as it is produced, so it survives the
// coordinator going away for hours, the network dropping, and this process
// being killed. The newest results are also kept in memory; older ones are
// read back from disk when their turn to be sent comes. A result is forgotten
// once acknowledged. Bounded: past `max_disk_bytes` the oldest segment is
// dropped, counted and logged, never silently.
//
// Without a directory the spool is memory only, bounded by
// `max_memory_results` (for tests and for probes that accept the loss).
//
// Segment format: records of [u32 length][u32 crc32][CheckResult bytes],
// little-endian, in files named spool-<first sequence>.seg. A torn last
// record (a crash mid-write) is cut off on start-up.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

struct SpoolOptions {
  std::string directory;  // empty: memory only
  size_t max_memory_results = 10'000;
  uint64_t max_disk_bytes = 256ull << 20;
  uint64_t segment_bytes = 4ull << 20;
};

class Spool {
 public:
  // Opens (and recovers) the directory. Throws std::runtime_error naming the
  // path when it cannot be used.
  explicit Spool(SpoolOptions options);
  ~Spool();

  // Numbers and keeps `result`. Returns its sequence number.
  uint64_t append(v1::CheckResult result);
  // The coordinator has stored everything up to `sequence` (e.g. before this
  // process restarted): forget it, and number new results after it.
  void continue_after(uint64_t sequence);
  // Everything up to and including `sequence` is stored: forget it.
  void ack(uint64_t sequence);
  // A new stream: send everything unacknowledged again.
  void rewind();
  // Up to `max` results not yet sent on this stream, oldest first; waits up
  // to `wait` for one to arrive. Empty on timeout or after close().
  std::vector<v1::CheckResult> next_unsent(size_t max, std::chrono::milliseconds wait);
  void close();

  struct Stats {
    uint64_t results = 0;  // unacknowledged
    uint64_t disk_bytes = 0;
    uint64_t last_sequence = 0;
    uint64_t acked_sequence = 0;
    uint64_t oldest_sequence = 0;  // 0 when empty
    uint64_t dropped = 0;          // lost to the bound, ever
    uint64_t replayed = 0;         // sent again on a later stream, ever
  };
  Stats stats() const;
  size_t size() const { return stats().results; }

 private:
  struct Segment {
    uint64_t first = 0;
    uint64_t last = 0;  // 0 while empty
    uint64_t bytes = 0;
    std::string path;
  };
  void recover();
  void write_record(const v1::CheckResult& result);
  void enforce_disk_bound();
  void forget_through(uint64_t sequence);
  // Reads results with sequence >= `from` from disk, at most `max`.
  std::vector<v1::CheckResult> read_disk(uint64_t from, size_t max);
  uint64_t memory_first() const;
  // The oldest unacknowledged result still held (not dropped); 0 when none.
  uint64_t oldest_held() const;

  const SpoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::CheckResult> memory_;  // the newest unacknowledged, contiguous, ending at last_sequence_
  std::deque<Segment> segments_;        // oldest first; the last one takes appends
  int active_fd_ = -1;
  struct DiskCursor {
    std::string path;
    uint64_t offset = 0;
    uint64_t next_sequence = 0;
  } disk_cursor_;  // where the last read_disk stopped
  uint64_t disk_bytes_ = 0;
  uint64_t last_sequence_ = 0;
  uint64_t acked_sequence_ = 0;
  uint64_t next_to_send_ = 1;
  uint64_t highest_sent_ = 0;
  uint64_t dropped_ = 0;
  uint64_t replayed_ = 0;
  std::chrono::steady_clock::time_point last_sync_{};
  bool closed_ = false;
};

}  // namespace vantage::probe
