#pragma once
// Results a probe produced and the coordinator has not yet acknowledged.
//
// Every result gets a sequence number (per probe, strictly increasing) and is
// appended to a segment file on disk as it is produced, so it survives the
// coordinator going away for hours, the network dropping, and this process
// being killed. The newest results are also kept in memory; older ones are
// read back from disk when their turn to be sent comes. A result is forgotten
// once acknowledged. Bounded: past `max_disk_bytes` the oldest segment is
// dropped; a result is lost only when neither the disk nor the memory holds
// it any more, and then it is counted with a reason and logged (rate limited).
//
// The disk is not trusted (architecture.md, "Trust boundaries"): a torn or
// corrupted record is skipped and counted, and reading resynchronises on the
// next intact record; a full or failing disk keeps results in memory, is
// counted and visible (Stats::disk_failing), and writing resumes by itself.
//
// Without a directory the spool is memory only, bounded by
// `max_memory_results` (for tests and for probes that accept the loss).
//
// Segment files are named spool-<first sequence, 20 digits>.seg and hold the
// consecutive sequences from that one on (after a failed write the next
// result starts a new segment, so a gap inside a segment is always damage).
// A record, little-endian:
//   [u32 magic][u32 payload length][u64 sequence][u32 crc32 of the payload]
//   [u32 crc32 of the 20 bytes before][CheckResult bytes]
// Segments of the earlier format ([u32 length][u32 crc32][CheckResult bytes],
// no marker) are still read; new results always go to a new segment.
// `spool.state` keeps the acknowledged sequence across restarts (rewritten
// atomically, at most once a second).

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/timer.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

struct SpoolOptions {
  std::string directory;  // empty: memory only
  size_t max_memory_results = 10'000;
  uint64_t max_disk_bytes = 256ull << 20;
  // 0: derived from max_disk_bytes (an eighth of it, 4 KiB to 4 MiB), so
  // the bound holds at any size. Never more than max_disk_bytes.
  uint64_t segment_bytes = 0;
  // At most one line per interval about drops and disk errors, with counts.
  std::chrono::milliseconds log_interval{10'000};
};

// Why a result was lost.
enum class DropReason : uint8_t {
  kDiskBound,    // its segment was dropped to stay under max_disk_bytes, and memory no longer held it
  kMemoryBound,  // not on disk (memory-only spool) and evicted from memory
  kDiskError,    // could not be written, and evicted from memory
  kCorrupt,      // its record on disk is damaged or does not parse
};
inline constexpr size_t kDropReasons = 4;
// "disk_bound", "memory_bound", "disk_error", "corrupt": metric label values.
std::string_view drop_reason_name(DropReason reason);

// The segment size used for `options` (see SpoolOptions::segment_bytes).
uint64_t effective_segment_bytes(const SpoolOptions& options);

class Spool {
 public:
  // Opens (and recovers) the directory. Throws OptionError (option
  // "spool.directory", a std::runtime_error) naming the path when it cannot be used.
  // `timers`: the clock next_unsent's batch wait is on.
  explicit Spool(SpoolOptions options, Timers& timers = RealTimers::instance());
  ~Spool();

  // Numbers and keeps `result`. Returns its sequence number.
  uint64_t append(v1::CheckResult result);
  // The coordinator has stored everything up to `sequence` (e.g. before this
  // process restarted): forget it, and number new results after it.
  void continue_after(uint64_t sequence);
  // Everything up to and including `sequence` is stored: forget it.
  void ack(uint64_t sequence);
  // A new stream: send everything unacknowledged again. Results dropped
  // while they were in flight on the old stream and never acknowledged are
  // counted lost here.
  void rewind();
  // Up to `max` results not yet sent on this stream, oldest first; waits up
  // to `wait` for one to arrive. Empty on timeout or after close().
  std::vector<v1::CheckResult> next_unsent(size_t max, std::chrono::milliseconds wait);
  void close();

  struct Stats {
    uint64_t results = 0;  // unacknowledged and still held (in memory or on disk)
    uint64_t disk_bytes = 0;
    uint64_t last_sequence = 0;
    uint64_t acked_sequence = 0;
    uint64_t oldest_sequence = 0;  // 0 when empty
    uint64_t dropped = 0;          // lost, ever (the sum of dropped_by_reason)
    std::array<uint64_t, kDropReasons> dropped_by_reason{};  // indexed by DropReason
    uint64_t replayed = 0;         // sent again on a later stream, ever
    bool disk_failing = false;     // the last write to the spool's disk failed
    uint64_t disk_write_errors = 0;
  };
  Stats stats() const;
  size_t size() const { return stats().results; }

 private:
  struct Segment {
    uint64_t first = 0;  // from the file name
    uint64_t last = 0;   // the highest sequence seen in it; first - 1 while empty
    uint64_t bytes = 0;
    std::string path;
    bool legacy = false;  // the earlier record format (read only)
  };
  enum class DiskCopy : uint8_t { kWritten, kWriteFailed, kSegmentDropped, kNone };
  struct Held {
    v1::CheckResult result;
    DiskCopy disk;
  };
  // Sequences lost while in flight on the current stream: counted at the
  // next rewind unless acknowledged first.
  struct InFlightLoss {
    uint64_t first, last;
    DropReason reason;
  };

  // Reads what an earlier process left in the directory (throws
  // OptionError when it cannot be used).
  void recover();
  // The segment files, oldest first: (first sequence, path).
  std::vector<std::pair<uint64_t, std::string>> segment_files() const;
  // Reads one segment's records, counting the unacknowledged ones into
  // `recovered`; false when it holds none. `tail_last`: see scan_records.
  bool recover_segment(Segment& segment, uint64_t tail_last, uint64_t& recovered);
  void read_state_file();
  void write_state_file(std::chrono::steady_clock::time_point now, bool force);
  // Writes `result` to the active segment; false (nothing left behind) when it failed.
  bool write_record(const v1::CheckResult& result);
  void close_active_segment();
  void disk_failed(const std::string& path, int error);
  void enforce_disk_bound();
  void evict_from_memory();
  void forget_through(uint64_t sequence);
  // Records [first, last] as lost for `reason`: now, or at the next rewind
  // for what is in flight.
  void lose(uint64_t first, uint64_t last, DropReason reason);
  void count_lost(uint64_t n, DropReason reason);
  // Damage found on disk: counted once per sequence, however often read.
  void lose_corrupt(uint64_t first, uint64_t last);
  void flush_drop_log(std::chrono::steady_clock::time_point now, bool force);
  // Reads results with sequence >= `from` from disk, at most `max`.
  std::vector<v1::CheckResult> read_disk(uint64_t from, size_t max);
  uint64_t memory_first() const;
  uint64_t held_unacked() const;
  uint64_t oldest_held() const;

  const SpoolOptions options_;
  const uint64_t segment_bytes_;
  const std::string state_path_;
  std::chrono::steady_clock::time_point last_drop_log_;
  mutable std::mutex mu_;
  ClockCondition cv_;  // appends and close, for next_unsent's batch wait
  std::deque<Held> memory_;         // the newest, contiguous, ending at last_sequence_
  std::deque<Segment> segments_;    // oldest first; the last one takes appends while active_fd_ is open
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
  std::array<uint64_t, kDropReasons> dropped_{};
  uint64_t replayed_ = 0;
  std::vector<InFlightLoss> in_flight_losses_;
  // first -> last: unacknowledged sequences whose loss is accounted for (damage counted, or
  // the gaps an earlier-format segment left), so never counted twice nor held.
  std::map<uint64_t, uint64_t> corrupt_counted_;
  bool disk_failing_ = false;
  uint64_t disk_write_errors_ = 0;
  std::string last_disk_error_;
  // Rate-limited logging of drops and disk errors.
  std::array<uint64_t, kDropReasons> unlogged_drops_{};
  uint64_t unlogged_write_errors_ = 0;
  bool logged_disk_failing_ = false;
  std::chrono::steady_clock::time_point last_sync_{};
  std::chrono::steady_clock::time_point last_state_write_{};
  uint64_t state_written_acked_ = 0;
  bool closed_ = false;
};

}  // namespace vantage::probe
