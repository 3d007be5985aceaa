// A check's assertions (Check.assertions, probe/assertions.h) through
// run_attempt against the fault lab's origin (/fault/echo serves the body and
// header fields a test asks for): assertions that hold, a body and a header
// that do not, negation, several values of a header, a body cut by
// body_limit_bytes, the origin leg judged too, a pattern the probe cannot
// compile, and assertions never judged on a status that already failed.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/check_config.h"
#include "common/proto_time.h"
#include "probe/attempt.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;

v1::Assertion body(std::string pattern, bool negate = false) {
  v1::Assertion a;
  a.set_target(v1::Assertion::TARGET_BODY);
  a.set_pattern(std::move(pattern));
  a.set_negate(negate);
  return a;
}

v1::Assertion header(std::string name, std::string pattern, bool negate = false) {
  v1::Assertion a = body(std::move(pattern), negate);
  a.set_target(v1::Assertion::TARGET_HEADER);
  a.set_header_name(std::move(name));
  return a;
}

class Assertions : public ::testing::Test {
 protected:
  std::string lab(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(origin_.port()) + path; }

  // A check of `url` with `assertions`, as the checks file would give it
  // (expected 200..399).
  static v1::Check check_of(const std::string& url, std::vector<v1::Assertion> assertions) {
    v1::Check check;
    check.set_name("assertions");
    check.set_url(url);
    *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
    *check.mutable_interval() = to_duration(std::chrono::seconds(60));
    for (auto& a : assertions) *check.add_assertions() = std::move(a);
    std::string problem;
    EXPECT_TRUE(normalize_check(check, &problem)) << problem;
    return check;
  }

  static v1::CheckResult run(const v1::Check& check) {
    asio::io_context io;
    auto future = asio::co_spawn(io, run_attempt(check, RealClock::instance(), HttpLimits{}, AttemptOptions{}),
                                 asio::use_future);
    io.run();
    return future.get();
  }

  // The echo page: body "service status: healthy", X-Version: 2.1, two X-Tag fields.
  std::string echo() const {
    return lab("/fault/echo?body=service%20status:%20healthy&header=X-Version:2.1&header=X-Tag:blue"
               "&header=x-tag:canary");
  }

  lab::Origin origin_{"127.0.0.1", 0};
};

TEST_F(Assertions, AssertionsThatHoldLeaveTheAttemptOk) {
  const auto result = run(check_of(echo(), {body("status: healthy$"), header("x-version", "^2\\."),
                                            header("X-Tag", "^canary$"), body("(?i)ERROR", true),
                                            header("X-Absent", ".", true)}));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  EXPECT_FALSE(edge.has_assertion_failure());
  EXPECT_FALSE(result.has_diagnosis());
  EXPECT_EQ(edge.response().body_bytes(), 23u);
  EXPECT_FALSE(edge.response().body_truncated_by_cap());
}

TEST_F(Assertions, ABodyThatDoesNotMatchFailsWithTheAssertionAndADiagnosisNamingIt) {
  const auto result = run(check_of(echo(), {header("X-Version", "2"), body("status: degraded")}));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(edge.response().status(), 200u);
  ASSERT_TRUE(edge.has_assertion_failure());
  EXPECT_EQ(edge.assertion_failure().index(), 1u);
  EXPECT_EQ(edge.assertion_failure().assertion().pattern(), "status: degraded");
  EXPECT_EQ(edge.assertion_failure().reason(), "body does not match \"status: degraded\" (23 bytes read)");
  EXPECT_EQ(edge.error(), "assertions[1] failed: body does not match \"status: degraded\" (23 bytes read)");
  ASSERT_TRUE(result.has_diagnosis());
  EXPECT_EQ(result.diagnosis().cause_id(), "assertion_failed");
  EXPECT_NE(result.diagnosis().cause().find("assertions[1]: body must match \"status: degraded\""),
            std::string::npos)
      << result.diagnosis().cause();
  ASSERT_GE(result.diagnosis().evidence_size(), 1);
  EXPECT_NE(result.diagnosis().evidence(0).find("(23 bytes read)"), std::string::npos)
      << result.diagnosis().evidence(0);
}

TEST_F(Assertions, AHeaderThatDoesNotMatchOrIsAbsentFails) {
  auto edge = run(check_of(echo(), {header("X-Version", "^3\\.")})).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(edge.assertion_failure().reason(), "header X-Version \"2.1\" does not match \"^3\\.\"");

  edge = run(check_of(echo(), {header("Cache-Control", "max-age")})).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(edge.assertion_failure().reason(), "header Cache-Control absent");

  // Two X-Tag fields, each judged alone: neither is "green".
  edge = run(check_of(echo(), {header("X-Tag", "green")})).edge();
  EXPECT_EQ(edge.assertion_failure().reason(),
            "none of the 2 values of header X-Tag matches \"green\" (the first: \"blue\")");
}

TEST_F(Assertions, ANegatedAssertionFailsWhenItsPatternMatches) {
  auto edge = run(check_of(echo(), {body("healthy", /*negate=*/true)})).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_TRUE(edge.assertion_failure().assertion().negate());
  EXPECT_EQ(edge.assertion_failure().reason(), "body matches \"healthy\", which it must not (23 bytes read)");

  edge = run(check_of(echo(), {header("X-Tag", "^canary$", true)})).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(edge.assertion_failure().reason(), "header X-Tag \"canary\" matches \"^canary$\", which it must not");
}

TEST_F(Assertions, ABodyCutByTheCheckBodyLimitIsJudgedOnWhatWasRead) {
  // 10 000 bytes of "abcdefghij"; eleven in a row need 110 bytes.
  auto check = check_of(lab("/fault/echo?body=abcdefghij&repeat=1000"), {body("(abcdefghij){11}")});
  auto edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << "the probe's own cap reads it all: " << edge.error();

  check.set_body_limit_bytes(100);
  edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(edge.response().body_bytes(), 100u);
  EXPECT_TRUE(edge.response().body_truncated_by_cap());
  EXPECT_EQ(edge.assertion_failure().reason(),
            "body does not match \"(abcdefghij){11}\" (only the first 100 bytes read: the body is longer than the "
            "cap)");
}

TEST_F(Assertions, TheOriginLegIsJudgedByTheSameAssertions) {
  auto check = check_of(echo(), {body("status: degraded")});
  check.mutable_origin()->set_address("127.0.0.1:" + std::to_string(origin_.port()));
  const auto result = run(check);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(result.origin().assertion_failure().index(), 0u);
  EXPECT_EQ(result.diagnosis().cause_id(), "assertion_failed") << "the origin serves the same page";
}

TEST_F(Assertions, AfterRedirectsTheFinalResponseIsJudged) {
  // Three 302s ("redirect 302\n" bodies), then a 200 "ok\n" ($ is the end of the text, after the \n).
  auto check = check_of(lab("/fault/redirect-chain?n=3"), {body("^ok\\n$")});
  check.set_follow_redirects(5);
  auto edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  EXPECT_EQ(edge.redirects_size(), 3);

  check.mutable_assertions(0)->set_pattern("redirect");
  edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ASSERTION_FAILED) << "the hops' bodies are not judged";
  EXPECT_EQ(edge.redirects_size(), 3);
  EXPECT_EQ(edge.assertion_failure().reason(), "body does not match \"redirect\" (3 bytes read)");
}

TEST_F(Assertions, APatternTheProbeCannotCompileIsAnInvalidCheckAndNothingIsSent) {
  auto check = check_of(echo(), {body("ok")});
  check.mutable_assertions(0)->set_pattern("status: (healthy");  // as an older coordinator might send it
  const auto edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_INVALID_CHECK);
  EXPECT_EQ(edge.error().rfind("bad assertion: assertions[0].pattern \"status: (healthy\": does not compile", 0), 0u)
      << edge.error();
  EXPECT_EQ(origin_.requests(), 0u);
}

TEST_F(Assertions, AStatusThatFailsIsJudgedBeforeAnyAssertion) {
  const auto edge = run(check_of(lab("/status/503"), {body("never there")})).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_FALSE(edge.has_assertion_failure());
}

}  // namespace
}  // namespace vantage::probe
