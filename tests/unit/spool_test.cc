#include "probe/spool.h"

#include "common/option_error.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
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
  size_t segment_files() { return segment_paths().size(); }
  std::vector<fs::path> segment_paths() {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ".seg") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  uint64_t bytes_on_disk() {
    uint64_t n = 0;
    for (const auto& p : segment_paths()) n += fs::file_size(p);
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

TEST(Spool, TheBatchWaitIsOnTheInjectedClock) {
  FakeClock clock;
  FakeTimers timers(clock);
  Spool spool(memory_only(10), timers);
  std::atomic<bool> returned = false;
  std::thread sender([&] {
    EXPECT_TRUE(spool.next_unsent(10, milliseconds(200)).empty());
    returned = true;
  });
  // More than the wait in real time, none in simulated time: still waiting
  // (a wait on the real clock would have ended). The clock stays at zero
  // until then, so the wait ends at 200 ms whenever the thread began it.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(returned) << "the batch wait ended on real time";
  timers.advance(milliseconds(200));
  sender.join();
  EXPECT_TRUE(returned);
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

TEST_F(SpoolOnDisk, ATornLastRecordIsSkippedAndCountedOnRecovery) {
  {
    Spool spool(options());
    for (int i = 1; i <= 5; ++i) spool.append(result_for(i));
  }
  fs::path segment;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().extension() == ".seg") segment = e.path();
  }
  // The start of a sixth record, cut short by a crash.
  std::ofstream(segment, std::ios::app | std::ios::binary) << std::string("\x56\x53\x50\xa7garbage", 11);
  Spool reopened(options());
  const auto stats = reopened.stats();
  EXPECT_EQ(stats.last_sequence, 6u) << "the torn record's number is not used again";
  EXPECT_EQ(stats.dropped_by_reason[static_cast<size_t>(DropReason::kCorrupt)], 1u);
  EXPECT_EQ(stats.results, 5u);
  EXPECT_EQ(sequences(reopened.next_unsent(100, milliseconds(0))), range(1, 5));
  EXPECT_EQ(reopened.append(result_for(7)), 7u);
  Spool again(options());  // new results went to a segment of their own, after the torn one
  EXPECT_EQ(again.stats().last_sequence, 7u);
  std::vector<uint64_t> expected = range(1, 5);
  expected.push_back(7);
  EXPECT_EQ(sequences(again.next_unsent(100, milliseconds(0))), expected);
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

uint64_t corrupt(const Spool::Stats& s) { return s.dropped_by_reason[static_cast<size_t>(DropReason::kCorrupt)]; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Everything the spool would send on a new stream, in batches.
std::vector<uint64_t> drain(Spool& spool, size_t batch = 3) {
  std::vector<uint64_t> out;
  for (auto b = spool.next_unsent(batch, milliseconds(0)); !b.empty(); b = spool.next_unsent(batch, milliseconds(0))) {
    for (const auto& r : b) {
      EXPECT_EQ(r.check_id(), static_cast<int64_t>(r.sequence())) << "the right result for its number";
      out.push_back(r.sequence());
    }
  }
  return out;
}

TEST_F(SpoolOnDisk, EveryFlippedByteLosesOnlyTheRecordItHits) {
  // Two segments of four records each: damage at the start, inside and at
  // the end of a segment, before another segment and in the last one.
  constexpr int kRecords = 8;
  {
    Spool spool(options(/*memory=*/1000, /*disk=*/1 << 30, /*segment=*/400));
    for (int i = 1; i <= kRecords; ++i) spool.append(result_for(i));
  }
  const auto paths = segment_paths();
  ASSERT_EQ(paths.size(), 2u);
  std::vector<std::string> originals;
  for (const auto& p : paths) originals.push_back(read_file(p));
  // Where each record starts: records of one segment are the same size here.
  const size_t record_size = originals[0].size() / 4;
  ASSERT_EQ(originals[0].size(), 4 * record_size);
  ASSERT_EQ(originals[1].size(), 4 * record_size);
  size_t cases = 0;
  for (size_t file = 0; file < paths.size(); ++file) {
    for (size_t at = 0; at < originals[file].size(); ++at) {
      for (unsigned char mask : {0x01, 0xff}) {
        std::string damaged = originals[file];
        damaged[at] = static_cast<char>(damaged[at] ^ mask);
        write_file(paths[file], damaged);
        write_file(paths[1 - file], originals[1 - file]);
        const uint64_t hit = file * 4 + at / record_size + 1;
        Spool reopened(options());
        const auto stats = reopened.stats();
        ASSERT_EQ(corrupt(stats), 1u) << "file " << file << " byte " << at;
        ASSERT_EQ(stats.dropped, 1u);
        ASSERT_EQ(stats.last_sequence, static_cast<uint64_t>(kRecords));
        ASSERT_EQ(stats.results, kRecords - 1u) << "the gauge counts what can still be sent";
        std::vector<uint64_t> expected = range(1, kRecords);
        expected.erase(expected.begin() + static_cast<long>(hit - 1));
        ASSERT_EQ(drain(reopened), expected) << "file " << file << " byte " << at;
        reopened.rewind();
        ASSERT_EQ(drain(reopened), expected) << "read again";
        ASSERT_EQ(corrupt(reopened.stats()), 1u) << "counted once however often it is read";
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 2 * 8 * record_size);
}

TEST_F(SpoolOnDisk, DamageInsideASegmentIsCountedFromTheSequenceGap) {
  {
    Spool spool(options());
    for (int i = 1; i <= 10; ++i) spool.append(result_for(i));
  }
  const auto path = segment_paths().at(0);
  std::string bytes = read_file(path);
  const size_t record_size = bytes.size() / 10;
  // Records 3 to 6 overwritten with zeros: one damaged stretch, four results.
  std::fill(bytes.begin() + 2 * record_size + 5, bytes.begin() + 6 * record_size - 1, '\0');
  write_file(path, bytes);
  Spool reopened(options());
  EXPECT_EQ(corrupt(reopened.stats()), 4u);
  EXPECT_EQ(reopened.stats().results, 6u);
  EXPECT_EQ(drain(reopened), (std::vector<uint64_t>{1, 2, 7, 8, 9, 10}));
}

TEST_F(SpoolOnDisk, ARecordThatDoesNotParseIsSkippedNotTheRestOfTheSegment) {
  auto bad = result_for(3);
  bad.mutable_edge()->set_error("server \xff\xfe not UTF-8");  // a proto3 string that will not parse back
  {
    Spool spool(options(/*memory=*/1));  // the older results are read back from disk
    for (int i = 1; i <= 6; ++i) spool.append(i == 3 ? bad : result_for(i));
    EXPECT_EQ(drain(spool), (std::vector<uint64_t>{1, 2, 4, 5, 6}));
    EXPECT_EQ(corrupt(spool.stats()), 1u);
    spool.rewind();
    EXPECT_EQ(drain(spool), (std::vector<uint64_t>{1, 2, 4, 5, 6}));
    EXPECT_EQ(corrupt(spool.stats()), 1u) << "counted once";
  }
  const auto size_before = bytes_on_disk();
  Spool reopened(options());
  EXPECT_EQ(bytes_on_disk(), size_before) << "nothing cut off on recovery";
  EXPECT_EQ(corrupt(reopened.stats()), 1u);
  EXPECT_EQ(reopened.stats().results, 5u);
  EXPECT_EQ(reopened.stats().last_sequence, 6u);
  EXPECT_EQ(drain(reopened), (std::vector<uint64_t>{1, 2, 4, 5, 6}));
  reopened.ack(6);
  EXPECT_EQ(reopened.stats().results, 0u);
}

// A record as the earlier format wrote it: [u32 length][u32 crc32][payload].
std::string legacy_record(uint64_t sequence) {
  auto r = result_for(static_cast<int64_t>(sequence));
  r.set_sequence(sequence);
  const auto payload = r.SerializeAsString();
  const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size()));
  std::string out(8, '\0');
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((payload.size() >> (8 * i)) & 0xff);
    out[4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  return out + payload;
}

TEST_F(SpoolOnDisk, SegmentsOfTheEarlierFormatAreStillRead) {
  fs::create_directories(dir_);
  std::string old;
  for (uint64_t s = 1; s <= 4; ++s) old += legacy_record(s);
  write_file(dir_ / "spool-00000000000000000001.seg", old);
  write_file(dir_ / "spool-00000000000000000005.seg", legacy_record(5) + legacy_record(6) + "torn");
  Spool spool(options(/*memory=*/2));
  EXPECT_EQ(spool.stats().last_sequence, 7u) << "1..6 and the torn record";
  EXPECT_EQ(corrupt(spool.stats()), 1u);
  EXPECT_EQ(spool.append(result_for(8)), 8u);
  EXPECT_EQ(drain(spool), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 8}));
  spool.ack(8);
  EXPECT_EQ(segment_files(), 1u) << "the old segments go once acknowledged";
}

TEST_F(SpoolOnDisk, ASmallByteLimitHoldsWhileThousandsOfResultsArrive) {
  constexpr uint64_t kLimit = 100 * 1000;
  SpoolOptions o = options(/*memory=*/10, kLimit, /*segment=*/0);
  EXPECT_EQ(effective_segment_bytes(o), kLimit / 8);
  Spool spool(o);
  size_t record_max = 0;
  for (int i = 1; i <= 5000; ++i) {
    spool.append(result_for(i));
    record_max = std::max<size_t>(record_max, 24 + result_for(i).ByteSizeLong() + 8);
    ASSERT_LE(spool.stats().disk_bytes, kLimit + record_max) << "after result " << i;
  }
  EXPECT_LE(bytes_on_disk(), kLimit + record_max);
  EXPECT_EQ(bytes_on_disk(), spool.stats().disk_bytes);
  const auto stats = spool.stats();
  EXPECT_GT(stats.dropped, 0u);
  EXPECT_EQ(stats.dropped, stats.dropped_by_reason[static_cast<size_t>(DropReason::kDiskBound)]);
  EXPECT_EQ(stats.results + stats.dropped, 5000u);
  const auto sent = drain(spool, 500);
  EXPECT_EQ(sent.size(), stats.results);
  EXPECT_EQ(sent.back(), 5000u);
}

TEST_F(SpoolOnDisk, DroppingASegmentKeepsWhatMemoryStillHolds) {
  // The disk holds a few hundred results, memory all of them: nothing is lost.
  Spool spool(options(/*memory=*/3000, /*disk=*/20'000, /*segment=*/0));
  for (int i = 1; i <= 2000; ++i) spool.append(result_for(i));
  EXPECT_EQ(spool.stats().dropped, 0u);
  EXPECT_EQ(spool.stats().results, 2000u);
  EXPECT_EQ(drain(spool, 500), range(1, 2000));
}

// A coordinator that stores what it receives and acknowledges some of it
// late, and streams that break: every result produced is stored or counted
// dropped, exactly, while segments rotate and are dropped under the bound.
TEST_F(SpoolOnDisk, DropCountersAreExactWithResultsInFlight) {
  for (const size_t memory : {5, 50, 400}) {
    fs::remove_all(dir_);
    Spool spool(options(memory, /*disk=*/12'000, /*segment=*/0));
    std::set<uint64_t> stored;
    std::vector<uint64_t> received;  // on this stream, not yet acknowledged
    uint32_t lcg = 12345;
    auto next_random = [&] { return (lcg = lcg * 1103515245 + 12345) >> 16; };
    for (int step = 0; step < 4'000; ++step) {
      switch (next_random() % 10) {
        case 0: case 1: case 2: case 3: case 4: case 5:
          spool.append(result_for(0));
          break;
        case 6: case 7:
          for (const auto& r : spool.next_unsent(1 + next_random() % 40, milliseconds(0))) received.push_back(r.sequence());
          break;
        case 8:  // now and then, store and acknowledge what has arrived
          if (!received.empty() && next_random() % 6 == 0) {
            stored.insert(received.begin(), received.end());
            spool.ack(received.back());
            received.clear();
          }
          break;
        case 9:
          if (next_random() % 8 == 0) {  // the stream breaks: what was not stored is resent
            received.clear();
            spool.rewind();
          }
          break;
      }
    }
    // The last stream delivers everything still held.
    stored.insert(received.begin(), received.end());
    if (!received.empty()) spool.ack(received.back());
    spool.rewind();
    for (auto b = spool.next_unsent(1000, milliseconds(0)); !b.empty(); b = spool.next_unsent(1000, milliseconds(0))) {
      for (const auto& r : b) stored.insert(r.sequence());
      spool.ack(b.back().sequence());
    }
    spool.rewind();
    const auto stats = spool.stats();
    EXPECT_EQ(stats.results, 0u);
    EXPECT_EQ(stored.size() + stats.dropped, stats.last_sequence)
        << "memory " << memory << ": produced = stored + counted dropped";
    if (memory < 400) {
      EXPECT_GT(stats.dropped, 0u) << "the bound was reached";
    }
  }
}

TEST_F(SpoolOnDisk, TheAcknowledgedSequenceSurvivesARestart) {
  Spool spool(options());
  for (int i = 1; i <= 50; ++i) spool.append(result_for(i));
  spool.ack(30);  // the first acknowledgement is written at once
  // A crash now: what is on disk is what a new process finds.
  const fs::path copy = dir_.string() + "-crashed";
  fs::remove_all(copy);
  fs::copy(dir_, copy);
  {
    SpoolOptions o = options();
    o.directory = copy.string();
    Spool crashed(o);
    EXPECT_EQ(crashed.stats().acked_sequence, 30u);
    EXPECT_EQ(crashed.stats().results, 20u) << "the gauge counts what is truly unacknowledged";
    EXPECT_EQ(crashed.stats().oldest_sequence, 31u);
    EXPECT_EQ(drain(crashed, 100), range(31, 50));
  }
  fs::remove_all(copy);
  spool.ack(45);
  spool.~Spool();  // a clean stop writes the latest
  new (&spool) Spool(options());
  EXPECT_EQ(spool.stats().acked_sequence, 45u);
  EXPECT_EQ(spool.stats().results, 5u);
}

TEST_F(SpoolOnDisk, AnUnreadableStateFileIsIgnored) {
  {
    Spool spool(options());
    for (int i = 1; i <= 5; ++i) spool.append(result_for(i));
  }
  write_file(dir_ / "spool.state", "acked_sequence=12x\n");
  Spool reopened(options());
  EXPECT_EQ(reopened.stats().acked_sequence, 0u);
  EXPECT_EQ(reopened.stats().results, 5u);
}

TEST(SpoolSegments, TheSegmentSizeFollowsTheLimit) {
  SpoolOptions o;
  o.max_disk_bytes = 256ull << 20;
  EXPECT_EQ(effective_segment_bytes(o), 4ull << 20);
  o.max_disk_bytes = 100'000;
  EXPECT_EQ(effective_segment_bytes(o), 12'500u);
  o.max_disk_bytes = 10'000;
  EXPECT_EQ(effective_segment_bytes(o), 4096u);
  o.max_disk_bytes = 1000;
  EXPECT_EQ(effective_segment_bytes(o), 1000u);
  o.segment_bytes = 1 << 20;
  EXPECT_EQ(effective_segment_bytes(o), 1000u) << "never over the limit";
}

TEST(SpoolDirectory, AnUnusableDirectoryIsAClearError) {
  SpoolOptions o;
  o.directory = "/proc/vantage-cannot-be-here";
  try {
    Spool spool(o);
    FAIL() << "expected an error";
  } catch (const OptionError& e) {
    EXPECT_EQ(e.option(), "spool.directory");  // vantage-probe's main names its flag
    EXPECT_NE(std::string(e.what()).find("spool directory /proc/vantage-cannot-be-here"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace vantage::probe
