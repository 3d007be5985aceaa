#include "probe/spool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace vantage::probe {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

v1::CheckResult result_for(int64_t check) {
  v1::CheckResult r;
  r.set_check_id(check);
  r.mutable_edge()->set_error(std::string(100, 'x'));  // some weight on disk
  return r;
}

std::vector<uint64_t> sequences(const std::vector<v1::CheckResult>& results) {
  std::vector<uint64_t> out;
  for (const auto& r : results) out.push_back(r.sequence());
  return out;
}

std::vector<uint64_t> range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (auto s = from; s <= to; ++s) out.push_back(s);
  return out;
}

SpoolOptions memory_only(size_t max) {
  SpoolOptions o;
  o.max_memory_results = max;
  return o;
}

class SpoolOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vantage-spool-test-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  SpoolOptions options(size_t memory = 1000, uint64_t disk = 1 << 30, uint64_t segment = 4096) {
    SpoolOptions o;
    o.directory = dir_.string();
    o.max_memory_results = memory;
    o.max_disk_bytes = disk;
    o.segment_bytes = segment;
    return o;
  }
  size_t segment_files() {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) n += e.path().extension() == ".seg";
    return n;
  }
  fs::path dir_;
};

TEST(Spool, NumbersResultsInOrder) {
  Spool spool(memory_only(10));
  EXPECT_EQ(spool.append(result_for(1)), 1u);
  EXPECT_EQ(spool.append(result_for(2)), 2u);
  auto batch = spool.next_unsent(10, milliseconds(0));
  EXPECT_EQ(sequences(batch), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(batch[1].check_id(), 2);
  EXPECT_TRUE(spool.next_unsent(10, milliseconds(0)).empty()) << "sent once per stream";
}

TEST(Spool, AckForgetsAndRewindResendsTheRest) {
  Spool spool(memory_only(10));
  for (int i = 0; i < 5; ++i) spool.append(result_for(i));
  EXPECT_EQ(spool.next_unsent(3, milliseconds(0)).size(), 3u);
  spool.ack(2);
  EXPECT_EQ(spool.size(), 3u);
  EXPECT_EQ(spool.stats().oldest_sequence, 3u);
  EXPECT_EQ(sequences(spool.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{4, 5}));
  spool.rewind();  // a new stream: 3 was sent but never acknowledged
  EXPECT_EQ(sequences(spool.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(spool.stats().replayed, 3u);
  spool.ack(5);
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_EQ(spool.stats().acked_sequence, 5u);
}

TEST(Spool, ContinuesNumberingAfterWhatIsStored) {
  Spool spool(memory_only(10));
  spool.continue_after(41);
  EXPECT_EQ(spool.append(result_for(1)), 42u);
  spool.continue_after(10);  // behind: ignored
  EXPECT_EQ(spool.append(result_for(1)), 43u);
}

TEST(Spool, MemoryOnlyPastTheBoundDropsTheOldestAndCountsIt) {
  Spool spool(memory_only(3));
  for (int i = 0; i < 5; ++i) spool.append(result_for(i));
  EXPECT_EQ(spool.size(), 3u);
  EXPECT_EQ(spool.stats().dropped, 2u);
  EXPECT_EQ(sequences(spool.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{3, 4, 5}));
}

TEST(Spool, WaitsForAResultAndCloseWakesTheWaiter) {
  Spool spool(memory_only(3));
  std::thread producer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    spool.append(result_for(1));
  });
  EXPECT_EQ(spool.next_unsent(10, milliseconds(5'000)).size(), 1u);
  producer.join();
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    spool.close();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(spool.next_unsent(10, milliseconds(60'000)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  closer.join();
}

TEST_F(SpoolOnDisk, OlderResultsThanMemoryHoldsAreReadBackFromDisk) {
  Spool spool(options(/*memory=*/10));
  for (int i = 1; i <= 200; ++i) spool.append(result_for(i));
  EXPECT_EQ(spool.size(), 200u);
  EXPECT_GT(segment_files(), 2u);
  std::vector<uint64_t> sent;
  for (auto batch = spool.next_unsent(64, milliseconds(0)); !batch.empty();
       batch = spool.next_unsent(64, milliseconds(0))) {
    for (const auto& r : batch) {
      EXPECT_EQ(r.check_id(), static_cast<int64_t>(r.sequence())) << "the right result for its number";
      sent.push_back(r.sequence());
    }
  }
  EXPECT_EQ(sent, range(1, 200));
  spool.ack(200);
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_LE(segment_files(), 1u) << "acknowledged segments are deleted";
}

TEST_F(SpoolOnDisk, SurvivesARestartAndReplaysEverythingUnacknowledged) {
  {
    Spool spool(options());
    for (int i = 1; i <= 50; ++i) spool.append(result_for(i));
    spool.ack(20);
  }
  Spool reopened(options());
  const auto stats = reopened.stats();
  EXPECT_EQ(stats.last_sequence, 50u);
  EXPECT_GE(stats.results, 30u) << "at least 21..50 (a partly acknowledged segment may bring back more)";
  // The coordinator's welcome says what it has; numbering continues after it.
  reopened.continue_after(20);
  reopened.rewind();
  auto batch = reopened.next_unsent(100, milliseconds(0));
  EXPECT_EQ(sequences(batch), range(21, 50));
  EXPECT_EQ(reopened.append(result_for(51)), 51u);
}

TEST_F(SpoolOnDisk, ATornLastRecordIsCutOffOnRecovery) {
  {
    Spool spool(options());
    for (int i = 1; i <= 5; ++i) spool.append(result_for(i));
  }
  fs::path segment;
  for (const auto& e : fs::directory_iterator(dir_)) segment = e.path();
  std::ofstream(segment, std::ios::app | std::ios::binary) << std::string("\x40\x00\x00\x00garbage", 11);
  Spool reopened(options());
  EXPECT_EQ(reopened.stats().last_sequence, 5u);
  EXPECT_EQ(sequences(reopened.next_unsent(100, milliseconds(0))), range(1, 5));
  EXPECT_EQ(reopened.append(result_for(6)), 6u);
  Spool again(options());  // and the file is whole again
  EXPECT_EQ(again.stats().last_sequence, 6u);
}

TEST_F(SpoolOnDisk, PastTheDiskBoundTheOldestSegmentIsDroppedAndCounted) {
  Spool spool(options(/*memory=*/5, /*disk=*/8 * 1024, /*segment=*/2 * 1024));
  for (int i = 1; i <= 300; ++i) spool.append(result_for(i));
  const auto stats = spool.stats();
  EXPECT_LE(stats.disk_bytes, 8u * 1024 + 2 * 1024);
  EXPECT_GT(stats.dropped, 0u);
  EXPECT_EQ(stats.results + stats.dropped, 300u) << "every result is either held or counted as dropped";
  auto batch = spool.next_unsent(1000, milliseconds(0));
  ASSERT_FALSE(batch.empty());
  EXPECT_EQ(batch.front().sequence(), stats.dropped + 1) << "sending resumes at the oldest held";
  EXPECT_EQ(batch.back().sequence(), 300u);
}

TEST(SpoolDirectory, AnUnusableDirectoryIsAClearError) {
  SpoolOptions o;
  o.directory = "/proc/vantage-cannot-be-here";
  try {
    Spool spool(o);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--spool-dir /proc/vantage-cannot-be-here"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vantage::probe
