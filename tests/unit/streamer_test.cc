#include "probe/streamer.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

namespace vantage::probe {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Session = ReconnectPolicy::Session;

// The top of each jitter range, so delays are exact.
ReconnectPolicy policy() {
  return ReconnectPolicy(milliseconds(500), milliseconds(30'000), milliseconds(30'000), [] { return 1.0; });
}

TEST(ReconnectPolicy, GrowsWhileTheCoordinatorIsUnreachable) {
  auto p = policy();
  const Session unreachable{};
  EXPECT_EQ(p.after(unreachable), milliseconds(500));
  EXPECT_EQ(p.after(unreachable), milliseconds(1000));
  EXPECT_EQ(p.after(unreachable), milliseconds(2000));
  for (int i = 0; i < 10; ++i) p.after(unreachable);
  EXPECT_EQ(p.after(unreachable), milliseconds(30'000)) << "capped";
}

TEST(ReconnectPolicy, GrowsAcrossStreamsEndedRightAfterTheirWelcome) {
  // A coordinator that welcomes every stream and ends it at once.
  auto p = policy();
  const Session ended_at_once{.welcomed = true, .acked = false, .lasted = milliseconds(20)};
  std::vector<milliseconds> delays;
  for (int i = 0; i < 8; ++i) delays.push_back(p.after(ended_at_once));
  EXPECT_EQ(delays, (std::vector<milliseconds>{milliseconds(500), milliseconds(1000), milliseconds(2000),
                                               milliseconds(4000), milliseconds(8000), milliseconds(16'000),
                                               milliseconds(30'000), milliseconds(30'000)}));
  EXPECT_EQ(p.failures(), 8);
}

TEST(ReconnectPolicy, StartsOverAfterAHealthyStream) {
  auto p = policy();
  for (int i = 0; i < 5; ++i) p.after(Session{});
  EXPECT_EQ(p.after(Session{.welcomed = true, .acked = true, .lasted = milliseconds(50)}), milliseconds(500))
      << "an ack: the coordinator stores this probe's results";
  EXPECT_EQ(p.failures(), 1);
  for (int i = 0; i < 5; ++i) p.after(Session{});
  EXPECT_EQ(p.after(Session{.welcomed = true, .acked = false, .lasted = seconds(31)}), milliseconds(500))
      << "long enough without an ack (an idle probe)";
  EXPECT_EQ(p.after(Session{.welcomed = false, .acked = false, .lasted = seconds(60)}), milliseconds(1000))
      << "never welcomed: not healthy";
}

TEST(StreamEnd, EachKindOfFailureIsToldApart) {
  auto code = [](grpc::StatusCode c) { return static_cast<int>(c); };
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::UNAUTHENTICATED), false), StreamEnd::kRefused);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::PERMISSION_DENIED), true), StreamEnd::kRefused);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::RESOURCE_EXHAUSTED), true), StreamEnd::kTooLarge);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::UNAVAILABLE), false), StreamEnd::kUnreachable);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::UNAVAILABLE), true), StreamEnd::kLost);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::OK), true), StreamEnd::kEnded);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::INVALID_ARGUMENT), true), StreamEnd::kEnded);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::DEADLINE_EXCEEDED), false), StreamEnd::kFailed);
  EXPECT_EQ(classify_stream_end(code(grpc::StatusCode::INTERNAL), true), StreamEnd::kFailed);
  EXPECT_EQ(grpc_code_name(code(grpc::StatusCode::UNAUTHENTICATED)), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_code_name(code(grpc::StatusCode::RESOURCE_EXHAUSTED)), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(grpc_code_name(99), "UNKNOWN");
}

}  // namespace
}  // namespace vantage::probe
