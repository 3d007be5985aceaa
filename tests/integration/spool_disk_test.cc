// The spool on a disk that fills up: a 256 KiB tmpfs mounted in a private
// mount namespace of this test's thread (needs root, as CI runs; no other
// process sees the mount, and it goes away with the test).

#include <gtest/gtest.h>
#include <sched.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "probe/spool.h"

namespace vantage::probe {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

v1::CheckResult result_for(int64_t check) {
  v1::CheckResult r;
  r.set_check_id(check);
  r.mutable_edge()->set_error(std::string(100, 'x'));
  return r;
}

// Log lines, captured while it lives.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  size_t lines_with(std::string_view text) const {
    std::istringstream in(out_.str());
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(text) != std::string::npos;
    return n;
  }
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

class SpoolOnAFullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    // Only this thread's view of the mounts changes; "private" so nothing
    // propagates back to the host's namespace.
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS) needs root: " << std::strerror(errno);
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
    mount_ = fs::temp_directory_path() / ("vantage-tiny-disk-" + std::to_string(getpid()));
    fs::create_directories(mount_);
    ASSERT_EQ(mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=256k"), 0) << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) umount2(mount_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(mount_, ec);
  }
  SpoolOptions options() const {
    SpoolOptions o;
    o.directory = (mount_ / "spool").string();
    o.max_memory_results = 200;
    o.max_disk_bytes = 64ull << 20;  // far more than the disk has: the disk fills first
    o.log_interval = std::chrono::hours(1);
    return o;
  }
  fs::path mount_;
  bool mounted_ = false;
};

TEST_F(SpoolOnAFullDisk, EveryResultIsDeliveredOrCountedAndWritingResumes) {
  // Most of the disk is taken by something else.
  const auto filler = mount_ / "filler";
  std::ofstream(filler, std::ios::binary) << std::string(180 * 1024, 'f');
  CapturedLog log;
  auto spool = std::make_unique<Spool>(options());
  constexpr int kDuringOutage = 3000, kAfter = 1000;
  for (int i = 1; i <= kDuringOutage; ++i) spool->append(result_for(i));
  auto stats = spool->stats();
  EXPECT_TRUE(stats.disk_failing);
  EXPECT_GT(stats.disk_write_errors, 1000u);
  const uint64_t disk_errors = stats.dropped_by_reason[static_cast<size_t>(DropReason::kDiskError)];
  EXPECT_GT(disk_errors, 1000u) << "what could not be written and left memory is counted";
  EXPECT_EQ(stats.dropped, disk_errors);
  EXPECT_EQ(stats.results + stats.dropped, static_cast<uint64_t>(kDuringOutage));
  // Thousands of failed writes and drops, a line or two.
  EXPECT_LE(log.lines_with("spool"), 2u) << log.text();
  EXPECT_EQ(log.lines_with("cannot write to the spool's disk"), 1u) << log.text();

  fs::remove(filler);  // space is back
  for (int i = kDuringOutage + 1; i <= kDuringOutage + kAfter / 2; ++i) spool->append(result_for(i));
  stats = spool->stats();
  EXPECT_FALSE(stats.disk_failing) << "writing resumed";
  // The newest results of the outage were only in memory; new ones push
  // them out (counted), and then nothing more is lost.
  EXPECT_LE(stats.dropped - disk_errors, options().max_memory_results);
  const uint64_t dropped = stats.dropped;
  for (int i = kDuringOutage + kAfter / 2 + 1; i <= kDuringOutage + kAfter; ++i) spool->append(result_for(i));
  stats = spool->stats();
  EXPECT_EQ(stats.dropped, dropped) << "once the disk takes writes again, nothing more is lost";
  EXPECT_FALSE(stats.disk_failing);

  // Everything held is delivered; produced = delivered + counted dropped.
  std::set<uint64_t> delivered;
  for (auto b = spool->next_unsent(500, milliseconds(0)); !b.empty(); b = spool->next_unsent(500, milliseconds(0))) {
    for (const auto& r : b) {
      EXPECT_EQ(r.check_id(), static_cast<int64_t>(r.sequence()));
      EXPECT_TRUE(delivered.insert(r.sequence()).second) << "sent once";
    }
  }
  EXPECT_EQ(delivered.size() + stats.dropped, static_cast<uint64_t>(kDuringOutage + kAfter));
  for (int i = kDuringOutage + 1; i <= kDuringOutage + kAfter; ++i) {
    EXPECT_TRUE(delivered.count(static_cast<uint64_t>(i))) << i;
  }

  // What is on disk is whole: partial writes were cut back. A new process
  // finds the results written after the outage and no damage.
  spool.reset();
  EXPECT_EQ(log.lines_with("results are kept in memory"), 1u) << "the summary at the end: " << log.text();
  spool = std::make_unique<Spool>(options());
  stats = spool->stats();
  EXPECT_EQ(stats.dropped, 0u) << "no damaged record on disk";
  EXPECT_EQ(stats.last_sequence, static_cast<uint64_t>(kDuringOutage + kAfter));
  EXPECT_GE(stats.results, static_cast<uint64_t>(kAfter));
}

TEST_F(SpoolOnAFullDisk, AResultThatCannotBeWrittenIsStillSentFromMemory) {
  // The disk is full from the start; memory holds everything produced.
  SpoolOptions o = options();
  fs::create_directories(o.directory);
  {
    std::ofstream filler(mount_ / "filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), block.size())) {}
  }
  Spool spool(o);
  for (int i = 1; i <= 150; ++i) spool.append(result_for(i));
  EXPECT_TRUE(spool.stats().disk_failing);
  EXPECT_EQ(spool.stats().dropped, 0u);
  EXPECT_EQ(spool.stats().results, 150u);
  EXPECT_EQ(spool.next_unsent(1000, milliseconds(0)).size(), 150u);
  spool.ack(150);
  EXPECT_EQ(spool.stats().results, 0u);
}

}  // namespace
}  // namespace vantage::probe
