#include "probe/spool.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/log.h"

namespace vantage::probe {

namespace fs = std::filesystem;

namespace {

constexpr size_t kHeaderBytes = 8;
// A record larger than this is corruption, not a result.
constexpr uint32_t kMaxRecordBytes = 16u << 20;

void put_u32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t get_u32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}
uint32_t checksum(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// Calls `fn(result, end_offset)` for each intact record from byte `start` on;
// returns the offset after the last intact one.
template <typename Fn>
uint64_t scan_segment(const std::string& path, uint64_t start, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(start));
  uint64_t good = start;
  char header[kHeaderBytes];
  std::string payload;
  while (in.read(header, kHeaderBytes)) {
    const uint32_t length = get_u32(header);
    if (length > kMaxRecordBytes) break;
    payload.resize(length);
    if (!in.read(payload.data(), length)) break;
    v1::CheckResult result;
    if (checksum(payload) != get_u32(header + 4) || !result.ParseFromString(payload)) break;
    good += kHeaderBytes + length;
    if (!fn(std::move(result), good)) break;
  }
  return good;
}

std::string segment_name(uint64_t first) {
  char name[64];
  std::snprintf(name, sizeof name, "spool-%020llu.seg", static_cast<unsigned long long>(first));
  return name;
}

}  // namespace

Spool::Spool(SpoolOptions options) : options_(std::move(options)) {
  if (!options_.directory.empty()) recover();
}

Spool::~Spool() {
  if (active_fd_ >= 0) {
    fdatasync(active_fd_);
    ::close(active_fd_);
  }
}

void Spool::recover() {
  std::error_code ec;
  fs::create_directories(options_.directory, ec);
  if (ec) throw std::runtime_error("--spool-dir " + options_.directory + ": " + ec.message());
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(options_.directory, ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with("spool-") && name.ends_with(".seg")) paths.push_back(entry.path().string());
  }
  if (ec) throw std::runtime_error("--spool-dir " + options_.directory + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  uint64_t recovered = 0;
  for (const auto& path : paths) {
    Segment segment{0, 0, 0, path};
    const auto good = scan_segment(path, 0, [&](v1::CheckResult r, uint64_t) {
      if (segment.first == 0) segment.first = r.sequence();
      segment.last = r.sequence();
      ++recovered;
      return true;
    });
    if (good < fs::file_size(path, ec)) {
      log::warn("spool segment ends in a torn record; cutting it off", "path", path, "kept_bytes", good);
      fs::resize_file(path, good, ec);
    }
    if (segment.last == 0) {
      fs::remove(path, ec);
      continue;
    }
    segment.bytes = good;
    disk_bytes_ += good;
    last_sequence_ = std::max(last_sequence_, segment.last);
    segments_.push_back(segment);
  }
  if (!segments_.empty()) {
    acked_sequence_ = segments_.front().first - 1;
    next_to_send_ = segments_.front().first;
    active_fd_ = ::open(segments_.back().path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    log::info("spool recovered unacknowledged results from disk", "results", recovered, "directory",
              options_.directory, "last_sequence", last_sequence_);
  }
  if (!fs::exists(options_.directory) || access(options_.directory.c_str(), W_OK) != 0) {
    throw std::runtime_error("--spool-dir " + options_.directory + ": not writable");
  }
}

uint64_t Spool::memory_first() const {
  return memory_.empty() ? last_sequence_ + 1 : memory_.front().sequence();
}

void Spool::write_record(const v1::CheckResult& result) {
  const bool rotate = segments_.empty() || active_fd_ < 0 || segments_.back().bytes >= options_.segment_bytes;
  if (rotate) {
    if (active_fd_ >= 0) {
      fdatasync(active_fd_);
      ::close(active_fd_);
    }
    Segment segment{result.sequence(), 0, 0, (fs::path(options_.directory) / segment_name(result.sequence())).string()};
    active_fd_ = ::open(segment.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (active_fd_ < 0) {
      log::error("cannot create a spool segment; the result is kept in memory only", "path", segment.path,
                 "error", std::strerror(errno));
      return;
    }
    segments_.push_back(segment);
  }
  std::string record(kHeaderBytes, '\0');
  const std::string payload = result.SerializeAsString();
  put_u32(record.data(), static_cast<uint32_t>(payload.size()));
  put_u32(record.data() + 4, checksum(payload));
  record += payload;
  if (::write(active_fd_, record.data(), record.size()) != static_cast<ssize_t>(record.size())) {
    log::error("cannot write to the spool; the result is kept in memory only", "path",
               segments_.back().path, "error", std::strerror(errno));
    return;
  }
  auto& segment = segments_.back();
  segment.last = result.sequence();
  segment.bytes += record.size();
  disk_bytes_ += record.size();
  // The page cache survives this process being killed; sync now and then
  // for a machine that goes down.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_sync_ >= std::chrono::seconds(1)) {
    fdatasync(active_fd_);
    last_sync_ = now;
  }
}

void Spool::enforce_disk_bound() {
  while (disk_bytes_ > options_.max_disk_bytes && segments_.size() > 1) {
    const auto segment = segments_.front();
    segments_.pop_front();
    const uint64_t from = std::max(segment.first, acked_sequence_ + 1);
    const uint64_t lost = segment.last >= from ? segment.last - from + 1 : 0;
    dropped_ += lost;
    disk_bytes_ -= segment.bytes;
    std::error_code ec;
    fs::remove(segment.path, ec);
    while (!memory_.empty() && memory_.front().sequence() <= segment.last) memory_.pop_front();
    log::warn("spool full: dropped the oldest unacknowledged results", "results", lost, "limit_bytes",
              options_.max_disk_bytes, "dropped_total", dropped_);
  }
}

uint64_t Spool::append(v1::CheckResult result) {
  uint64_t sequence;
  {
    std::lock_guard lock(mu_);
    sequence = ++last_sequence_;
    result.set_sequence(sequence);
    if (!options_.directory.empty()) {
      write_record(result);
      enforce_disk_bound();
    }
    memory_.push_back(std::move(result));
    if (memory_.size() > options_.max_memory_results) {
      memory_.pop_front();
      if (options_.directory.empty()) {
        ++dropped_;
        log::warn("result buffer full: dropped the oldest unacknowledged result", "limit",
                  options_.max_memory_results, "dropped_total", dropped_);
      }
    }
  }
  cv_.notify_one();
  return sequence;
}

void Spool::forget_through(uint64_t sequence) {
  while (!memory_.empty() && memory_.front().sequence() <= sequence) memory_.pop_front();
  // Every segment but the one taking appends goes once fully acknowledged.
  while (segments_.size() > 1 && segments_.front().last <= sequence) {
    disk_bytes_ -= segments_.front().bytes;
    std::error_code ec;
    fs::remove(segments_.front().path, ec);
    segments_.pop_front();
  }
}

void Spool::continue_after(uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (sequence > last_sequence_) last_sequence_ = sequence;
  if (sequence > acked_sequence_) acked_sequence_ = sequence;
  forget_through(acked_sequence_);
  next_to_send_ = std::max(next_to_send_, acked_sequence_ + 1);
}

void Spool::ack(uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (sequence <= acked_sequence_) return;
  acked_sequence_ = sequence;
  forget_through(sequence);
  next_to_send_ = std::max(next_to_send_, acked_sequence_ + 1);
}

void Spool::rewind() {
  std::lock_guard lock(mu_);
  next_to_send_ = acked_sequence_ + 1;
}

std::vector<v1::CheckResult> Spool::read_disk(uint64_t from, size_t max) {
  std::vector<v1::CheckResult> out;
  for (const auto& segment : segments_) {
    if (segment.last < from) continue;
    // Replaying a long outage reads a segment batch after batch: go on from
    // where the last read stopped instead of from the segment's start.
    const bool resume = disk_cursor_.path == segment.path && disk_cursor_.next_sequence <= from;
    scan_segment(segment.path, resume ? disk_cursor_.offset : 0, [&](v1::CheckResult r, uint64_t end) {
      if (r.sequence() < from) return true;
      disk_cursor_ = {segment.path, end, r.sequence() + 1};
      out.push_back(std::move(r));
      return out.size() < max;
    });
    if (!out.empty()) break;
  }
  return out;
}

uint64_t Spool::oldest_held() const {
  if (!options_.directory.empty() && !segments_.empty() && segments_.back().last > acked_sequence_) {
    return std::max(segments_.front().first, acked_sequence_ + 1);
  }
  // Memory only (or results a disk error kept in memory): memory_ holds
  // just the unacknowledged.
  return memory_.empty() ? 0 : memory_.front().sequence();
}

std::vector<v1::CheckResult> Spool::next_unsent(size_t max, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return closed_ || next_to_send_ <= last_sequence_; });
  std::vector<v1::CheckResult> out;
  const bool disk = !options_.directory.empty();
  // Skip what the bound dropped.
  if (const auto held = oldest_held()) next_to_send_ = std::max(next_to_send_, held);
  while (!closed_ && out.size() < max && next_to_send_ <= last_sequence_) {
    const uint64_t first_in_memory = memory_first();
    if (next_to_send_ >= first_in_memory) {
      out.push_back(memory_[next_to_send_ - first_in_memory]);
      ++next_to_send_;
      continue;
    }
    auto chunk = disk ? read_disk(next_to_send_, max - out.size()) : std::vector<v1::CheckResult>{};
    if (chunk.empty()) {
      next_to_send_ = first_in_memory;  // nothing held in between
      continue;
    }
    next_to_send_ = chunk.back().sequence() + 1;
    for (auto& r : chunk) out.push_back(std::move(r));
  }
  for (const auto& r : out) {
    if (r.sequence() <= highest_sent_) ++replayed_;
  }
  if (!out.empty()) highest_sent_ = std::max(highest_sent_, out.back().sequence());
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
  s.dropped = dropped_;
  s.replayed = replayed_;
  // What is held runs without holes up to the last sequence.
  s.oldest_sequence = oldest_held();
  if (s.oldest_sequence) s.results = last_sequence_ - s.oldest_sequence + 1;
  return s;
}

}  // namespace vantage::probe
