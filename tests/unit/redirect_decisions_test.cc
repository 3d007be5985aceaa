// The redirect decisions (probe/classifier.h judge_redirect): which statuses
// are followed, and where a chain fails as bad_redirect, redirect_loop or
// too_many_redirects; and the plan of the next request (probe/plan.h
// redirect_plan): method, Host, SNI, overrides and the check's credentials.
#include <gtest/gtest.h>

#include "common/check_config.h"
#include "common/diagnosis.h"
#include "common/failure_class.h"
#include "probe/classifier.h"
#include "probe/plan.h"

namespace vantage::probe {
namespace {

Url url(const std::string& text) {
  std::string error;
  auto parsed = parse_url(text, &error);
  EXPECT_TRUE(parsed) << text << ": " << error;
  return parsed.value_or(Url{});
}

std::vector<Url> chain_of(std::initializer_list<const char*> texts) {
  std::vector<Url> chain;
  for (const char* text : texts) chain.push_back(url(text));
  return chain;
}

TEST(RedirectDecisions, OnlyTheFiveRedirectStatusesAreFollowed) {
  for (uint32_t status : {301u, 302u, 303u, 307u, 308u}) EXPECT_TRUE(is_followed_redirect(status)) << status;
  for (uint32_t status : {200u, 300u, 304u, 305u, 306u, 309u, 399u, 404u}) {
    EXPECT_FALSE(is_followed_redirect(status)) << status;
  }
  const auto verdict = judge_redirect(304, std::string_view("/x"), chain_of({"http://h/a"}), 5);
  EXPECT_EQ(verdict.action, RedirectVerdict::Action::kFinal) << "a 304 with a Location is still final";
}

TEST(RedirectDecisions, ARelativeLocationIsFollowedResolved) {
  const auto verdict = judge_redirect(302, std::string_view("../c?d"), chain_of({"http://h/a/b"}), 1);
  ASSERT_EQ(verdict.action, RedirectVerdict::Action::kFollow) << verdict.error;
  EXPECT_EQ(url_text(*verdict.next), "http://h/c?d");
}

TEST(RedirectDecisions, AMissingOrEmptyLocationIsABadRedirect) {
  for (const auto& location : {std::optional<std::string_view>(), std::optional<std::string_view>("")}) {
    const auto verdict = judge_redirect(301, location, chain_of({"http://h/a"}), 3);
    EXPECT_EQ(verdict.action, RedirectVerdict::Action::kFail);
    EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_BAD_REDIRECT);
    EXPECT_EQ(verdict.error, "redirect 301 without a Location: http://h/a");
  }
}

TEST(RedirectDecisions, ALocationThatIsNoHttpUrlIsABadRedirectNamingIt) {
  const auto verdict = judge_redirect(302, std::string_view("ftp://files.test/x"), chain_of({"http://h/a", "http://h/b"}), 3);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_BAD_REDIRECT);
  EXPECT_EQ(verdict.error,
            "redirect 302 to \"ftp://files.test/x\", not an http(s) URL (scheme \"ftp\" is not http or https): "
            "http://h/a -> /b");
}

TEST(RedirectDecisions, ALocationAlreadyVisitedIsALoopNamingTheChain) {
  const auto verdict = judge_redirect(302, std::string_view("/a"), chain_of({"http://h/a", "http://h/b"}), 10);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_REDIRECT_LOOP);
  EXPECT_EQ(verdict.error, "redirect loop: http://h/a -> /b -> /a");
}

TEST(RedirectDecisions, TheFlexibleSslLoopBetweenSchemesNamesBothUrls) {
  const auto verdict =
      judge_redirect(301, std::string_view("http://shop.test/"), chain_of({"http://shop.test/", "https://shop.test/"}), 10);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_REDIRECT_LOOP);
  EXPECT_EQ(verdict.error, "redirect loop: http://shop.test/ -> https://shop.test/ -> http://shop.test/");
}

TEST(RedirectDecisions, TheSameUrlInAnotherSpellingIsStillALoop) {
  // Host case and an explicit default port do not make another resource.
  auto verdict = judge_redirect(302, std::string_view("http://H:80/a"), chain_of({"http://h/a"}), 10);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_REDIRECT_LOOP) << verdict.error;
  verdict = judge_redirect(302, std::string_view("/a?x"), chain_of({"http://h/a"}), 10);
  EXPECT_EQ(verdict.action, RedirectVerdict::Action::kFollow) << "another query is another resource";
}

TEST(RedirectDecisions, OneMoreThanTheLimitIsTooMany) {
  auto verdict = judge_redirect(302, std::string_view("/c"), chain_of({"http://h/a", "http://h/b"}), 2);
  EXPECT_EQ(verdict.action, RedirectVerdict::Action::kFollow) << "the second of two allowed";
  verdict = judge_redirect(302, std::string_view("/d"), chain_of({"http://h/a", "http://h/b", "http://h/c"}), 2);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_TOO_MANY_REDIRECTS);
  EXPECT_EQ(verdict.error, "more than 2 redirects: http://h/a -> /b -> /c -> /d");
  verdict = judge_redirect(302, std::string_view("/b"), chain_of({"http://h/a"}), 1);
  EXPECT_EQ(verdict.action, RedirectVerdict::Action::kFollow);
}

TEST(RedirectDecisions, ALoopIsNamedSoEvenAtTheLimit) {
  const auto verdict = judge_redirect(302, std::string_view("/a"), chain_of({"http://h/a", "http://h/b"}), 1);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_REDIRECT_LOOP);
}

TEST(RedirectDecisions, ALongLocationIsCutInTheError) {
  const std::string location = "mailto:" + std::string(5000, 'x');
  const auto verdict = judge_redirect(302, std::string_view(location), chain_of({"http://h/a"}), 3);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_BAD_REDIRECT);
  EXPECT_LT(verdict.error.size(), 600u);
}

// --- the diagnosis of a chain that failed ---

TEST(RedirectDiagnosis, EachRedirectClassHasItsOwnCauseWhateverTheOriginLegSaw) {
  v1::LegResult origin_ok;
  origin_ok.set_failure_class(v1::FAILURE_CLASS_OK);
  for (const auto failure_class : {v1::FAILURE_CLASS_TOO_MANY_REDIRECTS, v1::FAILURE_CLASS_REDIRECT_LOOP,
                                   v1::FAILURE_CLASS_BAD_REDIRECT}) {
    v1::LegResult edge;
    edge.set_failure_class(failure_class);
    edge.mutable_response()->set_status(301);
    edge.add_redirects()->set_status(301);
    edge.set_error("redirect loop: http://h/ -> https://h/ -> http://h/");
    for (const v1::LegResult* origin : std::vector<const v1::LegResult*>{nullptr, &origin_ok}) {
      const auto d = diagnose(edge, origin);
      EXPECT_EQ(d.cause_id(), failure_class_name(failure_class));
      EXPECT_FALSE(d.cause().empty());
      EXPECT_FALSE(d.advice().empty());
      ASSERT_GE(d.evidence_size(), 1);
      EXPECT_NE(d.evidence(0).find("after 1 redirect ("), std::string::npos) << d.evidence(0);
      EXPECT_NE(d.evidence(0).find("redirect loop: http://h/"), std::string::npos) << "the chain is evidence";
    }
  }
  v1::LegResult loop;
  loop.set_failure_class(v1::FAILURE_CLASS_REDIRECT_LOOP);
  EXPECT_NE(diagnose(loop, nullptr).advice().find("Flexible"), std::string::npos)
      << "the classic http <-> https loop behind Cloudflare is named";
}

// --- the next request's plan ---

v1::Check check_of(const std::string& url_text, const std::string& method = "GET") {
  v1::Check check;
  check.set_url(url_text);
  check.set_method(method);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(3));
  check.set_follow_redirects(5);
  return check;
}

LegPlan next_plan(const LegPlan& from, const std::string& to, uint32_t status, const AttemptOptions& options = {}) {
  return redirect_plan(from, url(to), status, options, std::chrono::milliseconds(1234));
}

TEST(RedirectPlan, SeeOtherIsAGetAndMovedTurnsOnlyAPostIntoAGet) {
  const auto post = check_of("http://h/form", "POST");
  const auto first = plan_leg(post, {});
  EXPECT_EQ(next_plan(first, "http://h/done", 303).method, "GET");
  EXPECT_EQ(next_plan(first, "http://h/done", 301).method, "GET");
  EXPECT_EQ(next_plan(first, "http://h/done", 302).method, "GET");
  EXPECT_EQ(next_plan(first, "http://h/done", 307).method, "POST");
  EXPECT_EQ(next_plan(first, "http://h/done", 308).method, "POST");
  const auto put = check_of("http://h/x", "PUT");
  EXPECT_EQ(next_plan(plan_leg(put, {}), "http://h/y", 302).method, "PUT");
  EXPECT_EQ(next_plan(plan_leg(put, {}), "http://h/y", 303).method, "GET");
  const auto head = check_of("http://h/x", "HEAD");
  const auto after = next_plan(plan_leg(head, {}), "http://h/y", 303);
  EXPECT_EQ(after.method, "HEAD");
  EXPECT_TRUE(after.head()) << "a HEAD's response has no body to read";
  EXPECT_EQ(next_plan(first, "http://h/done", 303).request.rfind("GET /done HTTP/1.1\r\n", 0), 0u);
}

TEST(RedirectPlan, ANewHostGetsItsOwnHostHeaderServerNameAndScheme) {
  const auto check = check_of("http://a.test/x");
  const auto plan = next_plan(plan_leg(check, {}), "https://b.test:8443/y?z", 301);
  EXPECT_EQ(plan.url.scheme, "https");
  EXPECT_EQ(plan.url.host, "b.test");
  EXPECT_EQ(plan.url.port, 8443);
  EXPECT_EQ(plan.server_name, "b.test");
  EXPECT_EQ(plan.timeout, std::chrono::milliseconds(1234));
  EXPECT_EQ(plan.invalid, "");
  EXPECT_EQ(plan.request, "GET /y?z HTTP/1.1\r\nHost: b.test:8443\r\nUser-Agent: vantage-probe\r\n\r\n");
  const auto back = next_plan(plan, "http://a.test/", 301);
  EXPECT_EQ(back.url.port, 80) << "the scheme's default port";
  EXPECT_EQ(back.url.scheme, "http");
}

TEST(RedirectPlan, AnOverrideAppliesOnlyToTheHostAndPortItNames) {
  AttemptOptions options;
  options.resolve.push_back({"a.test", 443, "192.0.2.7", 0});
  const auto check = check_of("https://a.test/x");
  const auto first = plan_attempt(check, {}, options).edge;
  ASSERT_EQ(first.url.host, "192.0.2.7");
  const auto same = next_plan(first, "https://a.test/y", 302, options);
  EXPECT_EQ(same.url.host, "192.0.2.7");
  EXPECT_EQ(same.server_name, "a.test") << "SNI and the certificate keep the name";
  EXPECT_EQ(next_plan(first, "https://b.test/y", 302, options).url.host, "b.test");
  EXPECT_EQ(next_plan(first, "http://a.test/y", 302, options).url.host, "a.test") << "port 80 is not named";
}

TEST(RedirectPlan, TheChecksCredentialsAreNotSentToAnotherHost) {
  auto check = check_of("https://a.test/x");
  (*check.mutable_headers())["Authorization"] = "Bearer secret";
  (*check.mutable_headers())["Cookie"] = "session=1";
  (*check.mutable_headers())["X-Trace"] = "t";
  const auto first = plan_leg(check, {});
  const auto same_host = next_plan(first, "https://a.test/y", 302);
  EXPECT_NE(same_host.request.find("Authorization: Bearer secret"), std::string::npos);
  const auto other = next_plan(first, "https://evil.test/", 302);
  EXPECT_EQ(other.request.find("secret"), std::string::npos) << other.request;
  EXPECT_EQ(other.request.find("session=1"), std::string::npos) << other.request;
  EXPECT_NE(other.request.find("X-Trace: t"), std::string::npos) << "other headers go on";
  EXPECT_EQ(next_plan(other, "https://a.test/z", 302).request.find("secret"), std::string::npos)
      << "once away, never back with them";
}

TEST(RedirectPlan, ALocationThatWouldInjectIsRefusedBeforeSending) {
  // resolve_reference refuses control characters; a Url built another way is judged by the plan.
  Url to = url("http://h/x");
  to.target = "/x\r\nX-Injected: 1";
  const auto plan = redirect_plan(plan_leg(check_of("http://h/"), {}), to, 302, {}, std::chrono::milliseconds(10));
  EXPECT_NE(plan.invalid, "");
  EXPECT_EQ(plan.request, "");
}

}  // namespace
}  // namespace vantage::probe
