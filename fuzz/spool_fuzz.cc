// libFuzzer target for the spool's reader (probe/spool.h): recovery of a
// spool directory whose segment files hold any bytes, and reading back.
//
// Input layout:
//   byte 0     bit0: two segments (else one), bit1: also a spool.state file
//   bytes 1-2  with two segments: where the second file's bytes start (u16 LE,
//              clamped), and byte 3 is added to the first file's last
//              sequence seen, to name the second (spool-<n>.seg)
//   rest       the segment file(s); a state file gets the first 24 bytes
// Checked (trap on violation): recovery never throws or crashes; all drops
// are "corrupt"; what is sent is strictly increasing, within 1..last_sequence,
// never twice on a stream, the same after a rewind, and as many as the
// results gauge said; with one segment of the current format every
// sequence up to the last is either sent or counted; a result appended after recovery gets the next
// number and is read back, with all the rest, by a new process.

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "probe/spool.h"

namespace {

namespace fs = std::filesystem;
using vantage::probe::DropReason;
using vantage::probe::Spool;
using vantage::probe::SpoolOptions;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

fs::path scratch_directory() {
  // Never destroyed, so the exit handler can still use it.
  static const fs::path* dir = [] {
    // Quiet: every input is a damaged spool, and each would log.
    spdlog::set_level(spdlog::level::off);
    google::protobuf::SetLogHandler(nullptr);
    const char* base = fs::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = std::string(base) + "/vantage-spool-fuzz-XXXXXX";
    check(mkdtemp(pattern.data()) != nullptr);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(*dir, ec);
    });
    return new fs::path(pattern);
  }();
  return *dir;
}

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string name(uint64_t first) {
  char out[64];
  std::snprintf(out, sizeof out, "spool-%020llu.seg", static_cast<unsigned long long>(first));
  return out;
}

std::vector<uint64_t> drain(Spool& spool) {
  std::vector<uint64_t> out;
  for (auto batch = spool.next_unsent(7, std::chrono::milliseconds(0)); !batch.empty();
       batch = spool.next_unsent(7, std::chrono::milliseconds(0))) {
    for (const auto& r : batch) {
      check(out.empty() || r.sequence() > out.back());
      out.push_back(r.sequence());
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint8_t flags = input.empty() ? 0 : static_cast<uint8_t>(input[0]);
  const bool two = flags & 1;
  size_t split = input.size() > 2 ? (static_cast<uint8_t>(input[1]) | static_cast<uint8_t>(input[2]) << 8) : 0;
  const uint64_t name_gap = input.size() > 3 ? static_cast<uint8_t>(input[3]) : 0;
  input.remove_prefix(std::min<size_t>(input.size(), 4));
  split = std::min(split, input.size());

  const fs::path dir = scratch_directory() / "spool";
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (flags & 2) write_file(dir / "spool.state", input.substr(0, 24));
  const auto first_file = two ? input.substr(0, split) : input;
  write_file(dir / name(1), first_file);
  if (two) {
    // Named after what the first holds, so the files keep their order.
    SpoolOptions probe_first;
    probe_first.directory = dir.string();
    uint64_t last_in_first = 0;
    { last_in_first = Spool(probe_first).stats().last_sequence; }
    fs::remove(dir / "spool.state");
    if (flags & 2) write_file(dir / "spool.state", input.substr(0, 24));
    if (last_in_first < (1ull << 61)) write_file(dir / name(last_in_first + 1 + name_gap), input.substr(split));
  }

  SpoolOptions options;
  options.directory = dir.string();
  options.max_memory_results = 4;
  std::vector<uint64_t> sent;
  uint64_t last = 0;
  {
    Spool spool(options);
    const auto stats = spool.stats();
    check(stats.dropped == stats.dropped_by_reason[static_cast<size_t>(DropReason::kCorrupt)]);
    check(stats.results <= stats.last_sequence);
    sent = drain(spool);
    const auto after = spool.stats();
    check(after.dropped == stats.dropped);  // all damage was found on recovery
    check(sent.size() == stats.results);
    for (auto s : sent) check(s > stats.acked_sequence && s <= stats.last_sequence);
    check(sent.size() + stats.dropped <= stats.last_sequence);
    // One segment of the current format (it starts with the record marker;
    // the earlier format had gaps where a write failed): nothing unaccounted.
    if (!two && !(flags & 2) && first_file.starts_with("\x56\x53\x50\xa7")) {
      check(sent.size() + stats.dropped == stats.last_sequence);
    }
    spool.rewind();
    check(drain(spool) == sent);
    check(spool.stats().dropped == stats.dropped);
    last = stats.last_sequence;
    if (last >= (1ull << 61)) return 0;  // absurd numbers from a forged file: nothing more to check
    vantage::v1::CheckResult result;
    result.set_check_id(7);
    check(spool.append(result) == last + 1);
  }
  Spool reopened(options);
  check(reopened.stats().last_sequence == last + 1);
  auto expected = sent;
  expected.push_back(last + 1);
  check(drain(reopened) == expected);
  return 0;
}
