#include "probe/result_buffer.h"

#include <gtest/gtest.h>

namespace vantage::probe {
namespace {

using std::chrono::milliseconds;

v1::CheckResult result_for(int64_t check) {
  v1::CheckResult r;
  r.set_check_id(check);
  return r;
}

std::vector<uint64_t> sequences(const std::vector<v1::CheckResult>& results) {
  std::vector<uint64_t> out;
  for (const auto& r : results) out.push_back(r.sequence());
  return out;
}

TEST(ResultBuffer, NumbersResultsInOrder) {
  ResultBuffer buffer(10);
  EXPECT_EQ(buffer.append(result_for(1)), 1u);
  EXPECT_EQ(buffer.append(result_for(2)), 2u);
  auto batch = buffer.next_unsent(10, milliseconds(0));
  EXPECT_EQ(sequences(batch), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(batch[1].check_id(), 2);
  EXPECT_TRUE(buffer.next_unsent(10, milliseconds(0)).empty()) << "sent once per stream";
}

TEST(ResultBuffer, AckForgetsAndRewindResendsTheRest) {
  ResultBuffer buffer(10);
  for (int i = 0; i < 5; ++i) buffer.append(result_for(i));
  EXPECT_EQ(buffer.next_unsent(3, milliseconds(0)).size(), 3u);
  buffer.ack(2);
  EXPECT_EQ(buffer.size(), 3u);
  EXPECT_EQ(buffer.oldest_sequence(), 3u);
  EXPECT_EQ(sequences(buffer.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{4, 5}));
  buffer.rewind();  // a new stream: 3 was sent but never acknowledged
  EXPECT_EQ(sequences(buffer.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{3, 4, 5}));
  buffer.ack(5);
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.acked_sequence(), 5u);
}

TEST(ResultBuffer, ContinuesNumberingAfterWhatIsStored) {
  ResultBuffer buffer(10);
  buffer.continue_after(41);
  EXPECT_EQ(buffer.append(result_for(1)), 42u);
  buffer.continue_after(10);  // behind: ignored
  EXPECT_EQ(buffer.append(result_for(1)), 43u);
}

TEST(ResultBuffer, PastTheBoundDropsTheOldestAndCountsIt) {
  ResultBuffer buffer(3);
  for (int i = 0; i < 5; ++i) buffer.append(result_for(i));
  EXPECT_EQ(buffer.size(), 3u);
  EXPECT_EQ(buffer.dropped(), 2u);
  EXPECT_EQ(sequences(buffer.next_unsent(10, milliseconds(0))), (std::vector<uint64_t>{3, 4, 5}));
}

TEST(ResultBuffer, WaitsForAResultAndCloseWakesTheWaiter) {
  ResultBuffer buffer(3);
  std::thread producer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    buffer.append(result_for(1));
  });
  EXPECT_EQ(buffer.next_unsent(10, milliseconds(5'000)).size(), 1u);
  producer.join();
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    buffer.close();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(buffer.next_unsent(10, milliseconds(60'000)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  closer.join();
}

}  // namespace
}  // namespace vantage::probe
