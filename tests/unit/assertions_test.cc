// A check's assertions (probe/assertions.h): body and header matches,
// negation, several values of a header, a body cut by the cap, patterns that
// do not compile; how the plan carries them (plan.h), how the classifier
// judges them (classifier.h classify_response) and the diagnosis that names
// the assertion that failed (common/diagnosis.h).
#include "probe/assertions.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/diagnosis.h"
#include "common/text.h"
#include "probe/classifier.h"
#include "probe/plan.h"

namespace vantage::probe {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

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

v1::Check check_with(std::vector<v1::Assertion> assertions) {
  v1::Check check;
  check.set_id(7);
  check.set_url("http://shop.example.com/");
  check.set_method("GET");
  check.mutable_timeout()->set_seconds(5);
  auto* ok = check.add_expected_status();
  ok->set_min(200);
  ok->set_max(299);
  for (auto& a : assertions) *check.add_assertions() = std::move(a);
  return check;
}

// The first failed assertion of `check` on this response (compiled as the probe does).
std::optional<v1::AssertionFailure> judge(const v1::Check& check, std::string_view body_read,
                                          const Headers& headers = {}, bool capped = false) {
  const auto compiled = compile_assertions(check);
  EXPECT_NE(compiled, nullptr);
  EXPECT_EQ(compiled->invalid, "");
  return first_failed_assertion(check, *compiled, {body_read, capped, &headers});
}

TEST(Assertions, ACheckWithoutAssertionsCompilesToNothing) {
  EXPECT_EQ(compile_assertions(check_with({})), nullptr);
}

TEST(Assertions, BodyMatchHoldsAnywhereInTheBody) {
  EXPECT_FALSE(judge(check_with({body("status: ok")}), "<p>status: ok</p>"));
  EXPECT_FALSE(judge(check_with({body("^<p>"), body("(?i)STATUS")}), "<p>status: ok</p>"));
}

TEST(Assertions, BodyWithoutMatchFailsNamingPatternAndBytesRead) {
  const auto failure = judge(check_with({body("welcome"), body("ok")}), "all good here, ok");
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->index(), 0u);
  EXPECT_EQ(failure->assertion().pattern(), "welcome");
  EXPECT_EQ(failure->reason(), "body does not match \"welcome\" (17 bytes read)");
}

TEST(Assertions, TheFirstThatFailsIsReported) {
  const auto failure = judge(check_with({body("ok"), body("missing"), body("also missing")}), "ok");
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->index(), 1u);
}

TEST(Assertions, NegatedBodyHoldsWithoutMatchAndFailsOnOne) {
  EXPECT_FALSE(judge(check_with({body("error", true)}), "all good"));
  const auto failure = judge(check_with({body("[Ee]rror", true)}), "Internal Error");
  ASSERT_TRUE(failure);
  EXPECT_TRUE(failure->assertion().negate());
  EXPECT_EQ(failure->reason(), "body matches \"[Ee]rror\", which it must not (14 bytes read)");
}

TEST(Assertions, ABodyCutByTheCapSaysOnlyItsFirstBytesWereRead) {
  const auto failure = judge(check_with({body("footer")}), "0123456789", {}, /*capped=*/true);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->reason(),
            "body does not match \"footer\" (only the first 10 bytes read: the body is longer than the cap)");
  // What is in the bytes read still matches.
  EXPECT_FALSE(judge(check_with({body("345")}), "0123456789", {}, true));
}

TEST(Assertions, AnEmptyBodyIsJudgedAsEmpty) {
  EXPECT_FALSE(judge(check_with({body("^$")}), ""));
  const auto failure = judge(check_with({body("x")}), "");
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->reason(), "body does not match \"x\" (0 bytes read)");
}

TEST(Assertions, HeaderNameIsMatchedInAnyCase) {
  const Headers headers{{"content-type", "application/json; charset=utf-8"}};
  EXPECT_FALSE(judge(check_with({header("Content-Type", "^application/json")}), "", headers));
  const auto failure = judge(check_with({header("Content-Type", "^text/html")}), "", headers);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->reason(),
            "header Content-Type \"application/json; charset=utf-8\" does not match \"^text/html\"");
}

TEST(Assertions, AnAbsentHeaderFailsAPlainAssertionAndHoldsANegatedOne) {
  const Headers headers{{"Server", "nginx"}};
  const auto failure = judge(check_with({header("X-Cache", "HIT")}), "", headers);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->reason(), "header X-Cache absent");
  EXPECT_FALSE(judge(check_with({header("X-Cache", "MISS", true)}), "", headers));
}

TEST(Assertions, SeveralValuesEachJudgedAlone) {
  // Two field lines: not joined, so an anchored pattern sees each value whole.
  const Headers headers{{"Set-Cookie", "a=1; Path=/"}, {"Server", "x"}, {"set-cookie", "session=abc; Secure"}};
  EXPECT_FALSE(judge(check_with({header("Set-Cookie", "^session=")}), "", headers));
  const auto none = judge(check_with({header("Set-Cookie", "^theme=")}), "", headers);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->reason(),
            "none of the 2 values of header Set-Cookie matches \"^theme=\" (the first: \"a=1; Path=/\")");
  // Negated: fails when any value matches, and shows that one.
  const auto negated = judge(check_with({header("Set-Cookie", "^session=", true)}), "", headers);
  ASSERT_TRUE(negated);
  EXPECT_EQ(negated->reason(), "header Set-Cookie \"session=abc; Secure\" matches \"^session=\", which it must not");
  EXPECT_FALSE(judge(check_with({header("Set-Cookie", "^theme=", true)}), "", headers));
}

TEST(Assertions, WhatTheSiteSentIsBoundedAndValidUtf8InTheReason) {
  const Headers headers{{"X-Long", std::string(5000, 'v') + "\xff"}};
  const auto failure = judge(check_with({header("X-Long", "^w")}), "", headers);
  ASSERT_TRUE(failure);
  EXPECT_LT(failure->reason().size(), 400u);
  EXPECT_TRUE(is_valid_utf8(failure->reason()));
}

TEST(Assertions, BodyBytesThatAreNotUtf8NeverBreakMatching) {
  EXPECT_FALSE(judge(check_with({body("ok")}), std::string("\xff\xfe ok \xc3", 7)));
  EXPECT_TRUE(judge(check_with({body("^ok$")}), std::string("\xff ok", 4)));
}

TEST(Assertions, APatternThatDoesNotCompileNamesTheAssertion) {
  const auto compiled = compile_assertions(check_with({body("ok"), body("(unclosed")}));
  ASSERT_NE(compiled, nullptr);
  EXPECT_EQ(compiled->invalid, "assertions[1].pattern \"(unclosed\": does not compile: missing ): (unclosed");
}

TEST(Assertions, ATargetOrHeaderNameMissingIsInvalid) {
  v1::Assertion untargeted;
  untargeted.set_pattern("x");
  EXPECT_EQ(compile_assertions(check_with({untargeted}))->invalid, "assertions[0].target: must be body or header");
  EXPECT_EQ(compile_assertions(check_with({body("a"), header("", "x")}))->invalid,
            "assertions[1].header_name: is empty");
}

TEST(Assertions, ThePatternIsCompiledOnceForEveryPlan) {
  const auto check = check_with({body("compiled-once-[0-9]+")});
  const auto first = compile_assertions(check);
  const auto second = compile_assertions(check_with({header("X", "compiled-once-[0-9]+")}));
  EXPECT_EQ(first->patterns[0].get(), second->patterns[0].get());
}

// --- the plan ---

TEST(AssertionPlan, TheCheckBodyLimitLowersTheCapButNeverRaisesIt) {
  HttpLimits limits;
  limits.parser.max_body_bytes = 1000;
  auto check = check_with({});
  EXPECT_EQ(plan_leg(check, limits).limits.parser.max_body_bytes, 1000u);
  check.set_body_limit_bytes(100);
  EXPECT_EQ(plan_leg(check, limits).limits.parser.max_body_bytes, 100u);
  check.set_body_limit_bytes(5000);
  EXPECT_EQ(plan_leg(check, limits).limits.parser.max_body_bytes, 1000u);
}

TEST(AssertionPlan, BothLegsCarryTheAssertionsAndTheFollowUpsDoNot) {
  auto check = check_with({body("ok")});
  check.mutable_origin()->set_address("127.0.0.1:8080");
  const auto plan = plan_attempt(check, HttpLimits{}, AttemptOptions{});
  ASSERT_NE(plan.edge.assertions, nullptr);
  ASSERT_TRUE(plan.origin);
  EXPECT_NE(plan.origin->assertions, nullptr);
  EXPECT_EQ(json_follow_up_plan(plan.edge, std::chrono::seconds(1)).assertions, nullptr);
  EXPECT_EQ(trace_follow_up_plan(plan.edge, std::chrono::seconds(1)).assertions, nullptr);
  EXPECT_EQ(plan_leg(check_with({}), HttpLimits{}).assertions, nullptr);
}

TEST(AssertionPlan, APatternThatDoesNotCompileMakesThePlanInvalidSoNothingIsSent) {
  const auto plan = plan_leg(check_with({body("a{2,1}")}), HttpLimits{});
  EXPECT_EQ(plan.request, "");
  EXPECT_EQ(plan.invalid.rfind("bad assertion: assertions[0].pattern \"a{2,1}\": does not compile: ", 0), 0u)
      << plan.invalid;
}

// --- the classifier ---

ResponseSeen seen(uint32_t status, std::string_view body_read, const Headers* headers) {
  ResponseSeen out;
  out.status = status;
  out.header_bytes = 100;
  out.body = body_read;
  out.headers = headers;
  return out;
}

TEST(AssertionClassifier, AFailedAssertionOnAnExpectedStatusIsAssertionFailed) {
  const auto check = check_with({body("ok"), header("X-Version", "^2\\.")});
  const auto plan = plan_leg(check, HttpLimits{});
  const Headers headers{{"X-Version", "1.9"}};
  const auto verdict = classify_response(seen(200, "ok", &headers), plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_EQ(verdict.error, "assertions[1] failed: header X-Version \"1.9\" does not match \"^2\\.\"");
  ASSERT_TRUE(verdict.assertion_failure);
  EXPECT_EQ(verdict.assertion_failure->index(), 1u);
}

TEST(AssertionClassifier, AssertionsThatHoldLeaveTheResponseOk) {
  const auto check = check_with({body("ok")});  // outlives the plan, which points at it
  const auto plan = plan_leg(check, HttpLimits{});
  const Headers headers;
  const auto verdict = classify_response(seen(200, "ok", &headers), plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_OK);
  EXPECT_FALSE(verdict.assertion_failure);
}

TEST(AssertionClassifier, AnUnexpectedStatusIsJudgedBeforeAnyAssertion) {
  const auto check = check_with({body("never there")});
  const auto plan = plan_leg(check, HttpLimits{});
  const Headers headers;
  EXPECT_EQ(classify_response(seen(404, "", &headers), plan).failure_class, v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  const auto five = classify_response(seen(503, "", &headers), plan);
  EXPECT_NE(five.failure_class, v1::FAILURE_CLASS_ASSERTION_FAILED);
  EXPECT_FALSE(five.assertion_failure);
}

TEST(AssertionClassifier, AFailedAssertionWinsOverHeadersNearLimit) {
  const auto check = check_with({body("ok")});  // outlives the plan, which points at it
  const auto plan = plan_leg(check, HttpLimits{});
  const Headers headers;
  auto big = seen(200, "nope", &headers);
  big.header_bytes = 127 * 1024;
  EXPECT_EQ(classify_response(big, plan).failure_class, v1::FAILURE_CLASS_ASSERTION_FAILED);
  big.body = "ok";
  EXPECT_EQ(classify_response(big, plan).failure_class, v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT);
}

TEST(AssertionClassifier, ARedirectTheLegFollowsIsAHopNotJudged) {
  auto check = check_with({body("final page")});
  check.mutable_expected_status(0)->set_max(399);
  const Headers headers{{"Location", "/next"}};
  const auto plan = plan_leg(check, HttpLimits{});
  // Not followed: the 302 is the response, and is judged.
  EXPECT_EQ(classify_response(seen(302, "moved", &headers), plan).failure_class, v1::FAILURE_CLASS_ASSERTION_FAILED);
  check.set_follow_redirects(3);
  EXPECT_EQ(classify_response(seen(302, "moved", &headers), plan).failure_class, v1::FAILURE_CLASS_OK);
  EXPECT_EQ(classify_response(seen(200, "moved", &headers), plan).failure_class, v1::FAILURE_CLASS_ASSERTION_FAILED);
}

// --- the diagnosis ---

v1::LegResult failed_leg(const v1::Check& check, uint32_t index, std::string reason) {
  v1::LegResult leg;
  leg.set_failure_class(v1::FAILURE_CLASS_ASSERTION_FAILED);
  leg.mutable_response()->set_status(200);
  auto* failure = leg.mutable_assertion_failure();
  failure->set_index(index);
  *failure->mutable_assertion() = check.assertions(static_cast<int>(index));
  failure->set_reason(reason);
  leg.set_error("assertions[" + std::to_string(index) + "] failed: " + reason);
  return leg;
}

TEST(AssertionDiagnosis, TheCauseNamesTheAssertionAndTheEvidenceWhatWasRead) {
  const auto check = check_with({body("ok"), header("X-Cache", "^MISS$", true)});
  const auto edge = failed_leg(check, 1, "header X-Cache \"MISS\" matches \"^MISS$\", which it must not");
  const auto d = diagnose(edge, nullptr);
  EXPECT_EQ(d.cause_id(), "assertion_failed");
  EXPECT_NE(d.cause().find("(assertions[1]: header X-Cache must not match \"^MISS$\")"), std::string::npos)
      << d.cause();
  ASSERT_GE(d.evidence_size(), 1);
  EXPECT_NE(d.evidence(0).find("assertions[1] failed: header X-Cache \"MISS\" matches"), std::string::npos)
      << d.evidence(0);
}

TEST(AssertionDiagnosis, AnOriginThatHoldsTheAssertionPointsAtTheEdge) {
  const auto check = check_with({body("fresh")});
  const auto edge = failed_leg(check, 0, "body does not match \"fresh\" (5 bytes read)");
  v1::LegResult origin;
  origin.set_failure_class(v1::FAILURE_CLASS_OK);
  EXPECT_EQ(diagnose(edge, &origin).cause_id(), "assertion_failed_through_edge");
  const auto origin_too = failed_leg(check, 0, "body does not match \"fresh\" (5 bytes read)");
  const auto d = diagnose(edge, &origin_too);
  EXPECT_EQ(d.cause_id(), "assertion_failed");
  EXPECT_NE(d.cause().find("(assertions[0]: body must match \"fresh\")"), std::string::npos) << d.cause();
}

}  // namespace
}  // namespace vantage::probe
