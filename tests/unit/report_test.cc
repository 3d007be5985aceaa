// `vantage-probe diagnose`'s report (probe/report.h) of legs that followed
// redirects or failed an assertion: built by hand, no network.
#include "probe/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/text.h"

namespace vantage::probe {
namespace {

void add_hop(v1::LegResult& leg, const std::string& url, uint32_t status, const std::string& location,
             uint64_t total_us) {
  auto& hop = *leg.add_redirects();
  hop.set_url(url);
  hop.set_status(status);
  hop.set_location(location);
  hop.set_connected_address("192.0.2.7:80");
  hop.mutable_timings()->set_total_us(total_us);
}

// http://a.test/ -> 301 https://a.test/ -> 302 /home (relative) -> 200.
v1::CheckResult followed_twice() {
  v1::CheckResult result;
  auto& edge = *result.mutable_edge();
  edge.set_failure_class(v1::FAILURE_CLASS_OK);
  edge.mutable_response()->set_status(200);
  add_hop(edge, "http://a.test/", 301, "https://a.test/", 1500);
  add_hop(edge, "https://a.test/", 302, "/home", 2500);
  edge.set_url("https://a.test/home");
  return result;
}

// Where `needle` starts in `text`; fails the test when it is not there.
size_t position(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << "\"" << needle << "\" not in:\n" << text;
  return at;
}

TEST(DiagnoseReport, TheTextListsEachRedirectHopInOrderAndTheFinalUrl) {
  const auto text = report_text("http://a.test/", "", followed_twice());
  const auto first = position(text, "redirect 1: 301 http://a.test/\n            Location: https://a.test/ "
                                    "(192.0.2.7:80, 1.5 ms)");
  const auto second = position(text, "redirect 2: 302 https://a.test/\n            Location: /home "
                                     "(192.0.2.7:80, 2.5 ms)");
  const auto final_url = position(text, "final URL https://a.test/home");
  EXPECT_LT(first, second);
  EXPECT_LT(second, final_url);
  EXPECT_EQ(text.find("redirect 3"), std::string::npos) << text;
}

TEST(DiagnoseReport, NoRedirectsMeansNoHopsAndNoFinalUrl) {
  v1::CheckResult result;
  result.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
  result.mutable_edge()->mutable_response()->set_status(200);
  result.mutable_edge()->set_url("http://a.test/?cb=1234");  // a cache-busting parameter is not a redirect
  const auto text = report_text("http://a.test/", "", result);
  EXPECT_EQ(text.find("redirect"), std::string::npos) << text;
  EXPECT_EQ(text.find("final URL"), std::string::npos) << text;
}

TEST(DiagnoseReport, TheJsonCarriesTheHopsInOrderAndTheFinalUrl) {
  const auto report = nlohmann::json::parse(report_json("http://a.test/", "", followed_twice()));
  const auto& hops = report["edge"]["redirects"];
  ASSERT_EQ(hops.size(), 2u) << report.dump(2);
  EXPECT_EQ(hops[0]["url"], "http://a.test/");
  EXPECT_EQ(hops[0]["status"], 301);
  EXPECT_EQ(hops[0]["location"], "https://a.test/");
  EXPECT_EQ(hops[0]["connected_address"], "192.0.2.7:80");
  EXPECT_EQ(hops[0]["timings"]["total_ms"], 1.5);
  EXPECT_EQ(hops[1]["location"], "/home");
  EXPECT_EQ(report["edge"]["url"], "https://a.test/home");
  EXPECT_EQ(report["edge"]["assertion_failure"], nullptr);
}

TEST(DiagnoseReport, ARedirectLoopShowsItsClassChainAndHops) {
  v1::CheckResult result;
  auto& edge = *result.mutable_edge();
  edge.set_failure_class(v1::FAILURE_CLASS_REDIRECT_LOOP);
  edge.mutable_response()->set_status(302);
  edge.set_error("redirect loop: http://a.test/ -> /b -> /");
  add_hop(edge, "http://a.test/", 302, "/b", 1000);
  edge.set_url("http://a.test/b");
  const auto text = report_text("http://a.test/", "", result);
  const auto cls = position(text, "redirect_loop, status 302");
  const auto chain = position(text, "redirect loop: http://a.test/ -> /b -> /");
  const auto hop = position(text, "redirect 1: 302 http://a.test/\n            Location: /b");
  EXPECT_LT(cls, chain);
  EXPECT_LT(chain, hop);
  EXPECT_EQ(nlohmann::json::parse(report_json("http://a.test/", "", result))["edge"]["class"], "redirect_loop");
}

v1::CheckResult failed_assertion(v1::Assertion assertion, uint32_t index, const std::string& reason) {
  v1::CheckResult result;
  auto& edge = *result.mutable_edge();
  edge.set_failure_class(v1::FAILURE_CLASS_ASSERTION_FAILED);
  edge.mutable_response()->set_status(200);
  edge.set_error("assertions[" + std::to_string(index) + "] failed: " + reason);
  auto& failure = *edge.mutable_assertion_failure();
  failure.set_index(index);
  *failure.mutable_assertion() = std::move(assertion);
  failure.set_reason(reason);
  return result;
}

TEST(DiagnoseReport, AnAssertionFailureNamesTheAssertionAsItsFlagAndTheReason) {
  v1::Assertion header;
  header.set_target(v1::Assertion::TARGET_HEADER);
  header.set_header_name("Server");
  header.set_pattern("nginx");
  header.set_negate(true);
  const auto reason = "header Server \"nginx/1.25\" matches \"nginx\", which it must not";
  const auto text = report_text("http://a.test/", "", failed_assertion(header, 1, reason));
  position(text, "assertion_failed, status 200");
  position(text, std::string("assertions[1] failed (--assert-header-not \"Server=nginx\"): ") + reason);
  EXPECT_EQ(text.find("assertions[1] failed: "), std::string::npos) << "the reason once, not twice:\n" << text;

  v1::Assertion body;
  body.set_target(v1::Assertion::TARGET_BODY);
  body.set_pattern("\"status\":\\s*\"ok\"");
  const auto body_text = report_text("http://a.test/", "", failed_assertion(body, 0, "body does not match"));
  position(body_text, "assertions[0] failed (--assert-body \"\"status\":\\s*\"ok\"\"): body does not match");
}

TEST(DiagnoseReport, TheJsonCarriesTheAssertionFailure) {
  v1::Assertion header;
  header.set_target(v1::Assertion::TARGET_HEADER);
  header.set_header_name("Content-Type");
  header.set_pattern("^application/json");
  const auto report = nlohmann::json::parse(
      report_json("http://a.test/", "", failed_assertion(header, 2, "header Content-Type absent")));
  const auto& failure = report["edge"]["assertion_failure"];
  EXPECT_EQ(failure["index"], 2);
  EXPECT_EQ(failure["target"], "header");
  EXPECT_EQ(failure["header"], "Content-Type");
  EXPECT_EQ(failure["pattern"], "^application/json");
  EXPECT_EQ(failure["negate"], false);
  EXPECT_EQ(failure["reason"], "header Content-Type absent");
  EXPECT_EQ(report["edge"]["class"], "assertion_failed");
}

// A hop's Location is the checked site's bytes: the report shows them safely.
TEST(DiagnoseReport, AHostileLocationIsShownSafely) {
  v1::CheckResult result;
  auto& edge = *result.mutable_edge();
  edge.set_failure_class(v1::FAILURE_CLASS_OK);
  add_hop(edge, "http://a.test/", 302, "/x\x1b[2J\xff", 1000);
  edge.set_url("http://a.test/x");
  const auto text = report_text("http://a.test/", "", result);
  EXPECT_TRUE(is_valid_utf8(text));
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no terminal escapes from a Location";
  const auto json_text = report_json("http://a.test/", "", result);
  EXPECT_TRUE(nlohmann::json::accept(json_text)) << json_text;
}

}  // namespace
}  // namespace vantage::probe
