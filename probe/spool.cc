#include "probe/spool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "common/log.h"
#include "common/option_error.h"

namespace vantage::probe {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// "VSP\xa7": read as the earlier format's u32 length it is over 16 MiB, so a
// segment of either format is told apart by its first four bytes.
constexpr uint32_t kMagic = 0xA7505356u;
constexpr size_t kHeaderBytes = 24;
constexpr size_t kLegacyHeaderBytes = 8;
// A record larger than this is corruption, not a result.
constexpr uint32_t kMaxRecordBytes = 16u << 20;
// Sequences beyond this are corruption (a probe makes far fewer), and
// arithmetic on them cannot overflow.
constexpr uint64_t kMaxSequence = 1ull << 62;
constexpr auto kStateInterval = std::chrono::seconds(1);
constexpr const char* kStateFile = "spool.state";

void put_u32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t get_u32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}
uint64_t get_u64(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}
uint32_t checksum(std::string_view bytes) {
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string encode_record(uint64_t sequence, const std::string& payload) {
  std::string record(kHeaderBytes, '\0');
  put_u32(record.data(), kMagic);
  put_u32(record.data() + 4, static_cast<uint32_t>(payload.size()));
  put_u64(record.data() + 8, sequence);
  put_u32(record.data() + 16, checksum(payload));
  put_u32(record.data() + 20, checksum(std::string_view(record.data(), 20)));
  return record + payload;
}

struct RecordHeader {
  uint32_t length;
  uint64_t sequence;
  uint32_t payload_crc;
};
// A header is trusted only whole: marker, its own checksum and sane values.
std::optional<RecordHeader> parse_header(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes || get_u32(bytes.data()) != kMagic) return std::nullopt;
  if (checksum(bytes.substr(0, 20)) != get_u32(bytes.data() + 20)) return std::nullopt;
  RecordHeader h{get_u32(bytes.data() + 4), get_u64(bytes.data() + 8), get_u32(bytes.data() + 16)};
  if (h.length > kMaxRecordBytes || h.sequence == 0 || h.sequence > kMaxSequence) return std::nullopt;
  return h;
}

// Buffered reading of a segment from an offset, for scans that look ahead
// (a record's header, then its payload) and step byte by byte to resynchronise.
class FileWindow {
 public:
  FileWindow(const std::string& path, uint64_t start) : in_(path, std::ios::binary), offset_(start) {
    in_.seekg(static_cast<std::streamoff>(start));
    if (!in_) eof_ = true;
  }
  // Up to `n` bytes from the current position (fewer only at the end of the
  // file). Valid until the next call.
  std::string_view peek(size_t n) {
    if (buffer_.size() - pos_ < n && !eof_) fill(n);
    return std::string_view(buffer_).substr(pos_, n);
  }
  void skip(size_t n) {
    pos_ += n;
    offset_ += n;
  }
  uint64_t offset() const { return offset_; }

 private:
  void fill(size_t n) {
    buffer_.erase(0, pos_);
    pos_ = 0;
    const size_t have = buffer_.size();
    const size_t want = std::max<size_t>(n - have, 64 * 1024);
    buffer_.resize(have + want);
    in_.read(buffer_.data() + have, static_cast<std::streamsize>(want));
    const auto got = static_cast<size_t>(in_.gcount());
    buffer_.resize(have + got);
    if (got < want) eof_ = true;
  }
  std::ifstream in_;
  std::string buffer_;
  size_t pos_ = 0;
  uint64_t offset_;
  bool eof_ = false;
};

// Scans a segment from byte `start`, where the record of sequence `expected`
// should begin. Calls on_record(sequence, payload, end_offset) for each
// intact record (false stops the scan) and on_damage(first, last) for the
// sequences whose records are damaged or missing. Damage at the end of the
// file counts as the sequences up to `tail_last` (the next segment's first
// minus one), or as one record in the last segment: more cannot be known.
template <typename OnRecord, typename OnDamage>
void scan_records(const std::string& path, uint64_t start, uint64_t expected, uint64_t tail_last,
                  OnRecord&& on_record, OnDamage&& on_damage) {
  FileWindow in(path, start);
  bool in_damage = false;  // stepping over bytes that are not a record
  while (true) {
    const auto head = in.peek(kHeaderBytes);
    if (head.size() < kHeaderBytes) {
      if (!head.empty() || in_damage) on_damage(expected, std::max(expected, tail_last));
      return;
    }
    const auto header = parse_header(head);
    if (!header) {
      in_damage = true;  // resynchronise on the next intact header
      in.skip(1);
      continue;
    }
    in_damage = false;
    const auto whole = in.peek(kHeaderBytes + header->length);
    if (whole.size() < kHeaderBytes + header->length) {  // a torn write
      on_damage(expected, std::max(expected, header->sequence));
      return;
    }
    const auto payload = whole.substr(kHeaderBytes);
    const bool intact = checksum(payload) == header->payload_crc;
    in.skip(whole.size());
    if (header->sequence < expected) continue;  // out of place: its sequence is accounted for
    if (header->sequence > expected) on_damage(expected, header->sequence - 1);
    expected = header->sequence + 1;
    if (!intact) {
      on_damage(header->sequence, header->sequence);
    } else if (!on_record(header->sequence, payload, in.offset())) {
      return;
    }
  }
}

// The same for a segment of the earlier format, which has no marker to
// resynchronise on: a bad length or checksum ends the scan. That format
// left gaps where a write failed; on_gap(first, last) reports them.
template <typename OnRecord, typename OnDamage, typename OnGap>
void scan_legacy_records(const std::string& path, uint64_t start, uint64_t expected, uint64_t tail_last,
                         OnRecord&& on_record, OnDamage&& on_damage, OnGap&& on_gap) {
  FileWindow in(path, start);
  v1::CheckResult result;
  while (true) {
    const auto head = in.peek(kLegacyHeaderBytes);
    if (head.empty()) return;
    const uint32_t length = head.size() == kLegacyHeaderBytes ? get_u32(head.data()) : kMaxRecordBytes + 1;
    const auto whole = length <= kMaxRecordBytes ? in.peek(kLegacyHeaderBytes + length) : std::string_view();
    if (whole.size() < kLegacyHeaderBytes + length || checksum(whole.substr(kLegacyHeaderBytes)) != get_u32(head.data() + 4)) {
      on_damage(expected, std::max(expected, tail_last));
      return;
    }
    const auto payload = whole.substr(kLegacyHeaderBytes);
    const bool parsed = result.ParseFromArray(payload.data(), static_cast<int>(payload.size())) &&
                        result.sequence() > 0 && result.sequence() <= kMaxSequence;
    // Unparsable: its sequence is unknown; the records are consecutive unless a write failed.
    const uint64_t sequence = parsed ? result.sequence() : expected;
    in.skip(whole.size());
    if (sequence < expected) continue;
    if (sequence > expected) on_gap(expected, sequence - 1);
    expected = sequence + 1;
    if (!parsed) {
      on_damage(sequence, sequence);
    } else if (!on_record(sequence, payload, in.offset())) {
      return;
    }
  }
}

// True when the file starts with an intact record of the earlier format.
bool is_legacy_segment(const std::string& path) {
  FileWindow in(path, 0);
  const auto head = in.peek(kLegacyHeaderBytes);
  if (head.size() < kLegacyHeaderBytes || get_u32(head.data()) == kMagic) return false;
  const uint32_t length = get_u32(head.data());
  if (length > kMaxRecordBytes) return false;
  const auto whole = in.peek(kLegacyHeaderBytes + length);
  return whole.size() == kLegacyHeaderBytes + length &&
         checksum(whole.substr(kLegacyHeaderBytes)) == get_u32(whole.data() + 4);
}

std::string segment_name(uint64_t first) {
  char name[64];
  std::snprintf(name, sizeof name, "spool-%020llu.seg", static_cast<unsigned long long>(first));
  return name;
}

// The first sequence from "spool-<20 digits>.seg"; 0 when the name is not one.
uint64_t segment_first(const std::string& name) {
  if (name.size() != 30 || !name.starts_with("spool-") || !name.ends_with(".seg")) return 0;
  uint64_t first = 0;
  for (char c : std::string_view(name).substr(6, 20)) {
    if (c < '0' || c > '9' || first > kMaxSequence / 10) return 0;
    first = first * 10 + static_cast<uint64_t>(c - '0');
  }
  return first <= kMaxSequence ? first : 0;
}

// Intervals [first, last] of sequences kept as map first -> last, disjoint.
using Intervals = std::map<uint64_t, uint64_t>;

uint64_t overlap(const Intervals& set, uint64_t first, uint64_t last) {
  if (first > last) return 0;
  uint64_t n = 0;
  auto it = set.upper_bound(first);
  if (it != set.begin()) --it;
  for (; it != set.end() && it->first <= last; ++it) {
    const uint64_t a = std::max(first, it->first), b = std::min(last, it->second);
    if (a <= b) n += b - a + 1;
  }
  return n;
}

// Adds [first, last]; returns how many of its sequences were not there yet.
uint64_t insert(Intervals& set, uint64_t first, uint64_t last) {
  if (first > last) return 0;
  const uint64_t added = last - first + 1 - overlap(set, first, last);
  auto it = set.upper_bound(first);
  if (it != set.begin() && std::prev(it)->second + 1 >= first) --it;
  while (it != set.end() && it->first <= last + 1) {
    first = std::min(first, it->first);
    last = std::max(last, it->second);
    it = set.erase(it);
  }
  set.emplace(first, last);
  return added;
}

void erase_through(Intervals& set, uint64_t sequence) {
  while (!set.empty() && set.begin()->first <= sequence) {
    const auto [first, last] = *set.begin();
    set.erase(set.begin());
    if (last > sequence) set.emplace(sequence + 1, last);
  }
}

}  // namespace

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kDiskBound: return "disk_bound";
    case DropReason::kMemoryBound: return "memory_bound";
    case DropReason::kDiskError: return "disk_error";
    case DropReason::kCorrupt: return "corrupt";
  }
  return "unknown";
}

uint64_t effective_segment_bytes(const SpoolOptions& options) {
  const uint64_t limit = std::max<uint64_t>(options.max_disk_bytes, 1);
  if (options.segment_bytes > 0) return std::min(options.segment_bytes, limit);
  return std::min(std::clamp<uint64_t>(limit / 8, 4096, 4ull << 20), limit);
}

Spool::Spool(SpoolOptions options, Timers& timers)
    : options_(std::move(options)),
      segment_bytes_(effective_segment_bytes(options_)),
      state_path_(options_.directory.empty() ? "" : (fs::path(options_.directory) / kStateFile).string()),
      // The first drop or disk error is logged at once.
      last_drop_log_(Clock::now() - options_.log_interval),
      cv_(timers, mu_) {
  if (!options_.directory.empty()) recover();
}

Spool::~Spool() {
  std::lock_guard lock(mu_);
  close_active_segment();
  if (!options_.directory.empty()) write_state_file(Clock::now(), /*force=*/true);
  flush_drop_log(Clock::now(), /*force=*/true);
}

void Spool::read_state_file() {
  std::ifstream in(state_path_);
  if (!in) return;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("acked_sequence=")) continue;
    const auto digits = line.substr(15);
    uint64_t value = 0;
    bool ok = !digits.empty() && digits.size() <= 19;
    for (char c : digits) ok = ok && c >= '0' && c <= '9' && ((value = value * 10 + (c - '0')), true);
    if (!ok || value > kMaxSequence) {
      log::warn("ignoring an unreadable spool state file; the coordinator's welcome says what is stored", "path",
                state_path_);
      return;
    }
    acked_sequence_ = value;
  }
}

void Spool::write_state_file(Clock::time_point now, bool force) {
  if (acked_sequence_ == state_written_acked_ || (!force && now - last_state_write_ < kStateInterval)) return;
  last_state_write_ = now;
  // Written aside and renamed over: a crash leaves the old file or the new one.
  const std::string temporary = state_path_ + ".tmp";
  const std::string text = "acked_sequence=" + std::to_string(acked_sequence_) + "\n";
  int error = 0;
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = errno;
  } else {
    const auto n = ::write(fd, text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) error = n < 0 ? errno : ENOSPC;
    if (::close(fd) != 0 && error == 0) error = errno;
  }
  if (error == 0 && ::rename(temporary.c_str(), state_path_.c_str()) != 0) error = errno;
  if (error != 0) {
    disk_failed(state_path_, error);
    ::unlink(temporary.c_str());
    return;
  }
  state_written_acked_ = acked_sequence_;
}

std::vector<std::pair<uint64_t, std::string>> Spool::segment_files() const {
  const auto unusable = [&](const std::string& why) {
    return OptionError("spool.directory", fmt::format("spool directory {}: {}", options_.directory, why));
  };
  std::error_code ec;
  fs::create_directories(options_.directory, ec);
  if (ec) throw unusable(ec.message());
  std::vector<std::pair<uint64_t, std::string>> found;  // first sequence, path
  for (const auto& entry : fs::directory_iterator(options_.directory, ec)) {
    const auto name = entry.path().filename().string();
    if (!name.starts_with("spool-") || !name.ends_with(".seg")) continue;
    if (const auto first = segment_first(name)) {
      found.emplace_back(first, entry.path().string());
    } else {
      log::warn("ignoring a file in the spool directory that is not a segment", "path", entry.path().string());
    }
  }
  if (ec) throw unusable(ec.message());
  if (!fs::exists(options_.directory) || access(options_.directory.c_str(), W_OK) != 0) throw unusable("not writable");
  std::sort(found.begin(), found.end());
  return found;
}

bool Spool::recover_segment(Segment& segment, uint64_t tail_last, uint64_t& recovered) {
  // What is found is numbered before it is counted (lose_corrupt counts
  // only up to the last sequence known).
  auto on_record = [&](uint64_t sequence, std::string_view payload, uint64_t) {
    last_sequence_ = std::max(last_sequence_, sequence);
    v1::CheckResult result;
    if (!result.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      lose_corrupt(sequence, sequence);
    } else if (sequence > acked_sequence_) {
      ++recovered;
    }
    segment.last = std::max(segment.last, sequence);
    return true;
  };
  auto on_damage = [&](uint64_t first, uint64_t last) {
    last_sequence_ = std::max(last_sequence_, last);
    lose_corrupt(first, last);
    segment.last = std::max(segment.last, last);
  };
  // Lost in an earlier process (which may have counted it): not held, not counted again.
  auto on_gap = [&](uint64_t first, uint64_t last) { insert(corrupt_counted_, first, last); };
  if (segment.legacy) {
    scan_legacy_records(segment.path, 0, segment.first, tail_last, on_record, on_damage, on_gap);
  } else {
    scan_records(segment.path, 0, segment.first, tail_last, on_record, on_damage);
  }
  return segment.last >= segment.first;
}

void Spool::recover() {
  const auto found = segment_files();
  read_state_file();
  // What the oldest segment starts with was not acknowledged (its segment
  // would have been deleted otherwise).
  if (!found.empty()) acked_sequence_ = std::max(acked_sequence_, found.front().first - 1);
  state_written_acked_ = acked_sequence_;
  last_sequence_ = acked_sequence_;
  next_to_send_ = acked_sequence_ + 1;

  uint64_t recovered = 0, legacy = 0;
  const uint64_t corrupt_before = dropped_[static_cast<size_t>(DropReason::kCorrupt)];
  for (size_t i = 0; i < found.size(); ++i) {
    std::error_code ec;
    Segment segment{found[i].first, found[i].first - 1, fs::file_size(found[i].second, ec), found[i].second,
                    is_legacy_segment(found[i].second)};
    if (ec) segment.bytes = 0;
    if (segment.legacy) ++legacy;
    const uint64_t tail_last = i + 1 < found.size() ? found[i + 1].first - 1 : 0;
    if (!recover_segment(segment, tail_last, recovered)) {  // empty
      fs::remove(segment.path, ec);
      continue;
    }
    disk_bytes_ += segment.bytes;
    last_sequence_ = std::max(last_sequence_, segment.last);
    segments_.push_back(segment);
  }
  // New results go to a new segment: a recovered one may end in a torn record.
  forget_through(acked_sequence_);
  const uint64_t damaged = dropped_[static_cast<size_t>(DropReason::kCorrupt)] - corrupt_before;
  if (!segments_.empty()) {
    log::info("spool recovered unacknowledged results from disk", "results", recovered, "damaged", damaged,
              "legacy_segments", legacy, "directory", options_.directory, "acked_sequence", acked_sequence_,
              "last_sequence", last_sequence_);
  }
  if (damaged > 0) {
    log::warn("spool segments hold damaged records; skipped them and counted them dropped", "results", damaged,
              "directory", options_.directory);
  }
}

uint64_t Spool::memory_first() const {
  return memory_.empty() ? last_sequence_ + 1 : memory_.front().result.sequence();
}

void Spool::close_active_segment() {
  if (active_fd_ < 0) return;
  fdatasync(active_fd_);
  ::close(active_fd_);
  active_fd_ = -1;
  if (!segments_.empty() && segments_.back().bytes == 0) {
    std::error_code ec;
    fs::remove(segments_.back().path, ec);
    segments_.pop_back();
  }
}

void Spool::disk_failed(const std::string& path, int error) {
  ++disk_write_errors_;
  ++unlogged_write_errors_;
  last_disk_error_ = path + ": " + std::strerror(error);
  disk_failing_ = true;
}

bool Spool::write_record(const v1::CheckResult& result) {
  if (active_fd_ < 0 || segments_.back().bytes >= segment_bytes_) {
    close_active_segment();
    const auto path = (fs::path(options_.directory) / segment_name(result.sequence())).string();
    active_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (active_fd_ < 0) {
      disk_failed(path, errno);
      return false;
    }
    segments_.push_back(Segment{result.sequence(), result.sequence() - 1, 0, path, false});
  }
  auto& segment = segments_.back();
  const std::string record = encode_record(result.sequence(), result.SerializeAsString());
  size_t written = 0;
  int error = 0;
  while (written < record.size()) {
    const auto n = ::write(active_fd_, record.data() + written, record.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : ENOSPC;
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (written < record.size()) {
    // Cut the partial record back, and start the next result in a new
    // segment, so the records of a segment stay consecutive.
    if (written > 0 && ftruncate(active_fd_, static_cast<off_t>(segment.bytes)) != 0) {
      log::error("cannot cut a partly written record off the spool segment", "path", segment.path, "error",
                 std::strerror(errno));
    }
    disk_failed(segment.path, error);
    close_active_segment();
    return false;
  }
  segment.last = result.sequence();
  segment.bytes += record.size();
  disk_bytes_ += record.size();
  disk_failing_ = false;
  // The page cache survives this process being killed; sync now and then
  // for a machine that goes down.
  const auto now = Clock::now();
  if (now - last_sync_ >= std::chrono::seconds(1)) {
    fdatasync(active_fd_);
    last_sync_ = now;
  }
  return true;
}

void Spool::count_lost(uint64_t n, DropReason reason) {
  if (n == 0) return;
  dropped_[static_cast<size_t>(reason)] += n;
  unlogged_drops_[static_cast<size_t>(reason)] += n;
}

void Spool::lose(uint64_t first, uint64_t last, DropReason reason) {
  first = std::max(first, acked_sequence_ + 1);
  if (first > last) return;
  // Sent on this stream and not acknowledged yet: it may still be, so it is
  // counted at the next rewind if not.
  const uint64_t in_flight_last = std::min(last, next_to_send_ - 1);
  if (first <= in_flight_last) {
    auto& losses = in_flight_losses_;
    if (!losses.empty() && losses.back().reason == reason && losses.back().last + 1 == first) {
      losses.back().last = in_flight_last;
    } else {
      losses.push_back({first, in_flight_last, reason});
    }
    first = in_flight_last + 1;
  }
  if (first > last) return;
  // Damage already counted is not counted again under another reason.
  const uint64_t n = last - first + 1 - (reason == DropReason::kCorrupt ? 0 : overlap(corrupt_counted_, first, last));
  count_lost(n, reason);
}

void Spool::lose_corrupt(uint64_t first, uint64_t last) {
  // What memory holds is sent from there, whatever its copy on disk is like.
  first = std::max(first, acked_sequence_ + 1);
  last = std::min(last, memory_first() - 1);
  if (first > last) return;
  // Counted once per sequence, however often a segment is read; only the
  // part not counted before goes on.
  auto it = corrupt_counted_.upper_bound(first);
  if (it != corrupt_counted_.begin()) --it;
  uint64_t next = first;
  std::vector<std::pair<uint64_t, uint64_t>> fresh;
  for (; it != corrupt_counted_.end() && it->first <= last; ++it) {
    if (it->second < next) continue;
    if (it->first > next) fresh.emplace_back(next, it->first - 1);
    next = it->second + 1;
  }
  if (next <= last) fresh.emplace_back(next, last);
  insert(corrupt_counted_, first, last);
  for (const auto& [a, b] : fresh) lose(a, b, DropReason::kCorrupt);
}

void Spool::flush_drop_log(Clock::time_point now, bool force) {
  const bool drops = std::any_of(unlogged_drops_.begin(), unlogged_drops_.end(), [](uint64_t n) { return n > 0; });
  const bool disk = unlogged_write_errors_ > 0 || disk_failing_ != logged_disk_failing_;
  if (!drops && !disk) return;
  if (!force && now - last_drop_log_ < options_.log_interval) return;
  last_drop_log_ = now;
  if (disk) {
    if (disk_failing_) {
      log::error("cannot write to the spool's disk; results are kept in memory until it recovers", "error",
                 last_disk_error_, "failed_writes", unlogged_write_errors_, "memory_limit",
                 options_.max_memory_results);
    } else {
      log::info("the spool's disk takes writes again", "directory", options_.directory, "failed_writes",
                unlogged_write_errors_, "last_error", last_disk_error_);
    }
    unlogged_write_errors_ = 0;
    logged_disk_failing_ = disk_failing_;
  }
  if (drops) {
    uint64_t total = 0;
    for (auto n : dropped_) total += n;
    log::warn("spool dropped unacknowledged results", "disk_bound", unlogged_drops_[0], "memory_bound",
              unlogged_drops_[1], "disk_error", unlogged_drops_[2], "corrupt", unlogged_drops_[3], "dropped_total",
              total, "limit_bytes", options_.max_disk_bytes, "memory_limit", options_.max_memory_results);
    unlogged_drops_ = {};
  }
}

void Spool::enforce_disk_bound() {
  while (disk_bytes_ > options_.max_disk_bytes && segments_.size() > 1) {
    const auto segment = segments_.front();
    segments_.pop_front();
    disk_bytes_ -= segment.bytes;
    std::error_code ec;
    fs::remove(segment.path, ec);
    if (disk_cursor_.path == segment.path) disk_cursor_ = {};
    // What memory still holds can still be sent: only its copy on disk is gone.
    for (auto& held : memory_) {
      if (held.result.sequence() > segment.last) break;
      if (held.disk == DiskCopy::kWritten) held.disk = DiskCopy::kSegmentDropped;
    }
    lose(segment.first, std::min(segment.last, memory_first() - 1), DropReason::kDiskBound);
  }
}

void Spool::evict_from_memory() {
  while (memory_.size() > options_.max_memory_results) {
    const uint64_t sequence = memory_.front().result.sequence();
    const auto disk = memory_.front().disk;
    memory_.pop_front();
    switch (disk) {
      case DiskCopy::kWritten: break;  // read back from disk when its turn comes
      case DiskCopy::kWriteFailed: lose(sequence, sequence, DropReason::kDiskError); break;
      case DiskCopy::kSegmentDropped: lose(sequence, sequence, DropReason::kDiskBound); break;
      case DiskCopy::kNone: lose(sequence, sequence, DropReason::kMemoryBound); break;
    }
  }
}

uint64_t Spool::append(v1::CheckResult result) {
  uint64_t sequence;
  {
    std::lock_guard lock(mu_);
    sequence = ++last_sequence_;
    result.set_sequence(sequence);
    auto disk = DiskCopy::kNone;
    if (!options_.directory.empty()) {
      disk = write_record(result) ? DiskCopy::kWritten : DiskCopy::kWriteFailed;
      if (disk == DiskCopy::kWritten) enforce_disk_bound();
    }
    memory_.push_back({std::move(result), disk});
    evict_from_memory();
    flush_drop_log(Clock::now(), false);
  }
  cv_.notify_one();
  return sequence;
}

void Spool::forget_through(uint64_t sequence) {
  while (!memory_.empty() && memory_.front().result.sequence() <= sequence) memory_.pop_front();
  // Every segment but the newest goes once fully acknowledged.
  while (segments_.size() > 1 && segments_.front().last <= sequence) {
    disk_bytes_ -= segments_.front().bytes;
    std::error_code ec;
    fs::remove(segments_.front().path, ec);
    if (disk_cursor_.path == segments_.front().path) disk_cursor_ = {};
    segments_.pop_front();
  }
  // Lost in flight, yet stored after all: not lost.
  std::erase_if(in_flight_losses_, [&](InFlightLoss& loss) {
    loss.first = std::max(loss.first, sequence + 1);
    return loss.first > loss.last;
  });
  erase_through(corrupt_counted_, sequence);
}

void Spool::continue_after(uint64_t sequence) {
  std::lock_guard lock(mu_);
  sequence = std::min(sequence, kMaxSequence);
  if (sequence > last_sequence_) {
    last_sequence_ = sequence;
    // The next sequence does not follow the active segment's last.
    close_active_segment();
  }
  if (sequence > acked_sequence_) acked_sequence_ = sequence;
  forget_through(acked_sequence_);
  next_to_send_ = std::max(next_to_send_, acked_sequence_ + 1);
  if (!options_.directory.empty()) write_state_file(Clock::now(), false);
}

void Spool::ack(uint64_t sequence) {
  std::lock_guard lock(mu_);
  // Nothing past what was produced can have been stored.
  sequence = std::min(sequence, last_sequence_);
  if (sequence <= acked_sequence_) return;
  acked_sequence_ = sequence;
  forget_through(sequence);
  next_to_send_ = std::max(next_to_send_, acked_sequence_ + 1);
  if (!options_.directory.empty()) write_state_file(Clock::now(), false);
}

void Spool::rewind() {
  std::lock_guard lock(mu_);
  // Lost while in flight and not acknowledged on the old stream: lost.
  for (const auto& loss : in_flight_losses_) {
    const uint64_t counted =
        loss.reason == DropReason::kCorrupt ? 0 : overlap(corrupt_counted_, loss.first, loss.last);
    count_lost(loss.last - loss.first + 1 - counted, loss.reason);
  }
  in_flight_losses_.clear();
  next_to_send_ = acked_sequence_ + 1;
  flush_drop_log(Clock::now(), false);
}

std::vector<v1::CheckResult> Spool::read_disk(uint64_t from, size_t max) {
  std::vector<v1::CheckResult> out;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const auto& segment = segments_[i];
    if (segment.last < from) continue;
    // Replaying a long outage reads a segment batch after batch: go on from
    // where the last read stopped instead of from the segment's start.
    const bool resume = disk_cursor_.path == segment.path && disk_cursor_.next_sequence <= from;
    const uint64_t start = resume ? disk_cursor_.offset : 0;
    const uint64_t expected = resume ? disk_cursor_.next_sequence : segment.first;
    const uint64_t tail_last = i + 1 < segments_.size() ? segments_[i + 1].first - 1 : 0;
    const std::string path = segment.path;
    auto on_record = [&](uint64_t sequence, std::string_view payload, uint64_t end) {
      disk_cursor_ = {path, end, sequence + 1};
      if (sequence < from) return true;
      v1::CheckResult result;
      if (!result.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
        // A valid checksum over bytes that are no result: skipped and counted.
        lose_corrupt(sequence, sequence);
        return true;
      }
      result.set_sequence(sequence);
      out.push_back(std::move(result));
      return out.size() < max;
    };
    auto on_damage = [&](uint64_t first, uint64_t last) { lose_corrupt(first, last); };
    auto on_gap = [&](uint64_t first, uint64_t last) {
      insert(corrupt_counted_, std::max(first, acked_sequence_ + 1), last);
    };
    if (segment.legacy) {
      scan_legacy_records(path, start, expected, tail_last, on_record, on_damage, on_gap);
    } else {
      scan_records(path, start, expected, tail_last, on_record, on_damage);
    }
    if (!out.empty()) break;
  }
  return out;
}

uint64_t Spool::held_unacked() const {
  const uint64_t below_memory = memory_first() - 1;
  uint64_t n = memory_.size();  // all unacknowledged: acknowledged ones are forgotten
  for (const auto& segment : segments_) {
    const uint64_t a = std::max(segment.first, acked_sequence_ + 1), b = std::min(segment.last, below_memory);
    if (a <= b) n += b - a + 1 - std::min(b - a + 1, overlap(corrupt_counted_, a, b));
  }
  return n;
}

uint64_t Spool::oldest_held() const {
  const uint64_t below_memory = memory_first() - 1;
  for (const auto& segment : segments_) {
    const uint64_t a = std::max(segment.first, acked_sequence_ + 1), b = std::min(segment.last, below_memory);
    if (a <= b) return a;
  }
  return memory_.empty() ? 0 : memory_.front().result.sequence();
}

std::vector<v1::CheckResult> Spool::next_unsent(size_t max, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return closed_ || next_to_send_ <= last_sequence_; });
  std::vector<v1::CheckResult> out;
  const bool disk = !options_.directory.empty();
  next_to_send_ = std::max(next_to_send_, acked_sequence_ + 1);
  // Sized once: growing it moved every result copied so far, each time.
  if (!closed_ && next_to_send_ <= last_sequence_) {
    out.reserve(static_cast<size_t>(std::min<uint64_t>(max, last_sequence_ - next_to_send_ + 1)));
  }
  while (!closed_ && out.size() < max && next_to_send_ <= last_sequence_) {
    const uint64_t first_in_memory = memory_first();
    if (next_to_send_ >= first_in_memory) {
      out.push_back(memory_[next_to_send_ - first_in_memory].result);
      ++next_to_send_;
      continue;
    }
    auto chunk = disk ? read_disk(next_to_send_, max - out.size()) : std::vector<v1::CheckResult>{};
    if (chunk.empty() || chunk.front().sequence() >= first_in_memory) {
      next_to_send_ = first_in_memory;  // nothing held in between: what was there is counted lost
      continue;
    }
    next_to_send_ = chunk.back().sequence() + 1;
    for (auto& r : chunk) out.push_back(std::move(r));
  }
  for (const auto& r : out) {
    if (r.sequence() <= highest_sent_) ++replayed_;
  }
  if (!out.empty()) highest_sent_ = std::max(highest_sent_, out.back().sequence());
  const auto now = Clock::now();
  if (disk) write_state_file(now, false);
  flush_drop_log(now, false);
  return out;
}

void Spool::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

Spool::Stats Spool::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.disk_bytes = disk_bytes_;
  s.last_sequence = last_sequence_;
  s.acked_sequence = acked_sequence_;
  s.dropped_by_reason = dropped_;
  for (auto n : dropped_) s.dropped += n;
  s.replayed = replayed_;
  s.oldest_sequence = oldest_held();
  s.results = held_unacked();
  s.disk_failing = disk_failing_;
  s.disk_write_errors = disk_write_errors_;
  return s;
}

}  // namespace vantage::probe
