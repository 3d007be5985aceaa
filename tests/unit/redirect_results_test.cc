// What the coordinator keeps of a probe's redirect hops (coordinator/
// result_validation.h): statuses that are HTTP statuses, text valid and
// bounded, at most the list limit of hops.
#include <gtest/gtest.h>

#include "common/text.h"
#include "coordinator/result_validation.h"

namespace vantage::coordinator {
namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));

v1::CheckResult with_hops(int count) {
  v1::CheckResult r;
  r.set_check_id(7);
  r.mutable_start_time()->set_seconds(1'790'000'000 - 5);
  auto* edge = r.mutable_edge();
  edge->set_failure_class(v1::FAILURE_CLASS_TOO_MANY_REDIRECTS);
  edge->mutable_response()->set_status(302);
  for (int i = 0; i < count; ++i) {
    auto* hop = edge->add_redirects();
    hop->set_url("http://h/" + std::to_string(i));
    hop->set_status(302);
    hop->set_location("/" + std::to_string(i + 1));
  }
  return r;
}

TEST(RedirectResults, AHopWhoseStatusIsNoHttpStatusIsRefused) {
  auto r = with_hops(2);
  r.mutable_edge()->mutable_redirects(1)->set_status(70000);
  const auto refusal = validate_result(r, kNow);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, RefusalReason::kStatus);
  EXPECT_NE(refusal->message.find("edge.redirects status 70000"), std::string::npos) << refusal->message;
}

TEST(RedirectResults, HopsAreBoundedInNumberAndTextAndValidOnesKeptAsSent) {
  auto valid = with_hops(3);
  const auto sent = valid.SerializeAsString();
  ASSERT_FALSE(validate_result(valid, kNow));
  EXPECT_EQ(valid.SerializeAsString(), sent) << "a valid result is kept byte for byte";

  auto hostile = with_hops(1000);
  hostile.mutable_edge()->mutable_redirects(0)->set_location("/\xff" + std::string(100'000, 'x'));
  ASSERT_FALSE(validate_result(hostile, kNow));
  const ResultLimits limits;
  EXPECT_EQ(static_cast<size_t>(hostile.edge().redirects_size()), limits.max_list_items);
  const auto& location = hostile.edge().redirects(0).location();
  EXPECT_LE(location.size(), limits.max_text_bytes);
  EXPECT_TRUE(is_valid_utf8(location));
}

}  // namespace
}  // namespace vantage::coordinator
