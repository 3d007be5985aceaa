// The attempt's plans (probe/plan.h): the check read once into where each leg
// connects and the exact bytes it sends; follow-ups and keep-alive requests
// derived from a leg's plan.
#include "probe/plan.h"

#include <gtest/gtest.h>

#include "common/check_config.h"

namespace vantage::probe {
namespace {

v1::Check check_of(const std::string& url, const std::string& method = "GET") {
  v1::Check check;
  check.set_url(url);
  check.set_method(method);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(3));
  return check;
}

TEST(Plan, APlainUrlConnectsWhereItPointsAndSendsTheMinimalRequest) {
  const auto check = check_of("http://shop.test/health?full=1#top");
  const auto plan = plan_attempt(check, {}, {});
  EXPECT_EQ(plan.edge.invalid, "");
  EXPECT_EQ(plan.edge.url.host, "shop.test");
  EXPECT_EQ(plan.edge.url.port, 80);
  EXPECT_EQ(plan.edge.server_name, "shop.test");
  EXPECT_EQ(plan.edge.timeout, std::chrono::seconds(3));
  EXPECT_EQ(plan.edge.request,
            "GET /health?full=1 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: vantage-probe\r\n\r\n");
  EXPECT_FALSE(plan.origin) << "no origin address, no origin leg";
}

TEST(Plan, AnExplicitPortStaysInTheHostHeaderButNotInTheServerName) {
  const auto plan = plan_leg(check_of("https://shop.test:8443/"), {});
  EXPECT_EQ(plan.url.scheme, "https");
  EXPECT_EQ(plan.url.port, 8443);
  EXPECT_EQ(plan.url.host_header, "shop.test:8443");
  EXPECT_EQ(plan.server_name, "shop.test");
  EXPECT_NE(plan.request.find("\r\nHost: shop.test:8443\r\n"), std::string::npos) << plan.request;
}

TEST(Plan, AnIpv6LiteralConnectsWithoutBrackets) {
  const auto plan = plan_leg(check_of("http://[2001:db8::1]:8080/x"), {});
  EXPECT_EQ(plan.url.host, "2001:db8::1");
  EXPECT_EQ(plan.url.host_header, "[2001:db8::1]:8080");
  EXPECT_EQ(plan.server_name, "2001:db8::1");
}

TEST(Plan, ABadUrlIsTheReasonForEveryLegAndEveryDerivedPlan) {
  auto check = check_of("ftp://shop.test/");
  check.mutable_origin()->set_address("10.0.0.5:80");
  const auto plan = plan_attempt(check, {}, {});
  EXPECT_TRUE(plan.edge.invalid.starts_with("bad url: ")) << plan.edge.invalid;
  EXPECT_EQ(plan.edge.request, "");
  ASSERT_TRUE(plan.origin);
  EXPECT_EQ(plan.origin->invalid, plan.edge.invalid);
  EXPECT_EQ(keep_alive_plan(plan.edge).invalid, plan.edge.invalid);
  EXPECT_EQ(json_follow_up_plan(plan.edge, std::chrono::seconds(1)).invalid, plan.edge.invalid);
}

TEST(Plan, ResolveRedirectsOnlyItsHostAndPortAndKeepsTheNames) {
  AttemptOptions options;
  options.resolve.push_back({"shop.test", 443, "104.16.1.1", 0});
  options.resolve.push_back({"shop.test", 8443, "104.16.2.2", 9443});
  const auto on_443 = plan_attempt(check_of("https://shop.test/"), {}, options).edge;
  EXPECT_EQ(on_443.url.host, "104.16.1.1");
  EXPECT_EQ(on_443.url.port, 443);
  EXPECT_EQ(on_443.url.host_header, "shop.test");
  EXPECT_EQ(on_443.server_name, "shop.test");
  const auto on_8443 = plan_attempt(check_of("https://shop.test:8443/"), {}, options).edge;
  EXPECT_EQ(on_8443.url.host, "104.16.2.2");
  EXPECT_EQ(on_8443.url.port, 9443);
  const auto elsewhere = plan_attempt(check_of("https://shop.test:9000/"), {}, options).edge;
  EXPECT_EQ(elsewhere.url.host, "shop.test");
}

TEST(Plan, TheOriginLegGoesToTheOriginAddressWithTheUrlsHostAndItsOwnOverrides) {
  auto check = check_of("https://shop.test/cart");
  check.mutable_origin()->set_address("10.0.0.5:8443");
  auto plan = plan_attempt(check, {}, {});
  ASSERT_TRUE(plan.origin);
  EXPECT_EQ(plan.origin->url.host, "10.0.0.5");
  EXPECT_EQ(plan.origin->url.port, 8443);
  EXPECT_EQ(plan.origin->url.scheme, "https");
  EXPECT_EQ(plan.origin->url.host_header, "shop.test");
  EXPECT_EQ(plan.origin->url.target, "/cart");
  EXPECT_EQ(plan.origin->server_name, "shop.test");

  check.mutable_origin()->set_address("10.0.0.5");
  check.mutable_origin()->set_scheme("http");
  check.mutable_origin()->set_host("origin.shop.test");
  check.mutable_origin()->set_sni("tls.shop.test");
  plan = plan_attempt(check, {}, {});
  EXPECT_EQ(plan.origin->url.port, 80) << "the origin scheme's default port";
  EXPECT_EQ(plan.origin->url.scheme, "http");
  EXPECT_EQ(plan.origin->url.host_header, "origin.shop.test");
  EXPECT_EQ(plan.origin->server_name, "tls.shop.test");
  EXPECT_EQ(plan.edge.url.host, "shop.test") << "the edge leg is unchanged";
}

TEST(Plan, TheChecksHeadersReplaceTheDefaultsWhateverTheirCase) {
  auto check = check_of("http://shop.test/");
  (*check.mutable_headers())["user-agent"] = "custom";
  (*check.mutable_headers())["X-Trace"] = "1";
  const auto plan = plan_leg(check, {});
  // The check's headers come in the map's order: look for each.
  EXPECT_TRUE(plan.request.starts_with("GET / HTTP/1.1\r\nHost: shop.test\r\n")) << plan.request;
  EXPECT_NE(plan.request.find("\r\nuser-agent: custom\r\n"), std::string::npos) << plan.request;
  EXPECT_NE(plan.request.find("\r\nX-Trace: 1\r\n"), std::string::npos) << plan.request;
  EXPECT_EQ(plan.request.find("vantage-probe"), std::string::npos) << plan.request;
  EXPECT_TRUE(plan.request.ends_with("\r\n\r\n")) << plan.request;
}

TEST(Plan, FollowUpsAreGetsOfTheEdgeTargetWithSmallBodies) {
  auto check = check_of("https://shop.test:8443/checkout", "POST");
  (*check.mutable_headers())["accept"] = "text/html";
  AttemptOptions options;
  options.resolve.push_back({"shop.test", 8443, "104.16.1.1", 0});
  HttpLimits limits;
  limits.targets.allow_loopback = true;
  limits.parser.max_header_bytes = 4096;
  const auto edge = plan_attempt(check, limits, options).edge;

  const auto json = json_follow_up_plan(edge, std::chrono::milliseconds(1500));
  EXPECT_EQ(json.method, "GET") << "never a repeated POST";
  EXPECT_EQ(json.url.host, "104.16.1.1");
  EXPECT_EQ(json.timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(json.limits.parser.max_body_bytes, 64u * 1024);
  EXPECT_EQ(json.limits.parser.max_header_bytes, HttpParserLimits{}.max_header_bytes);
  EXPECT_TRUE(json.limits.targets.allow_loopback);
  EXPECT_EQ(json.request,
            "GET /checkout HTTP/1.1\r\nHost: shop.test:8443\r\nUser-Agent: vantage-probe\r\n"
            "Accept: application/json\r\n\r\n");

  const auto trace = trace_follow_up_plan(edge, std::chrono::milliseconds(900));
  EXPECT_EQ(trace.url.target, "/cdn-cgi/trace");
  EXPECT_EQ(trace.url.host, "104.16.1.1");
  EXPECT_EQ(trace.only_status, 200u);
  EXPECT_TRUE(trace.request.starts_with("GET /cdn-cgi/trace HTTP/1.1\r\n")) << trace.request;
  EXPECT_EQ(check.method(), "POST") << "the user's check is never edited";
}

TEST(Plan, KeepAliveReadsWithGetOrHead) {
  EXPECT_EQ(keep_alive_plan(plan_leg(check_of("http://shop.test/", "POST"), {})).method, "GET");
  const auto head = keep_alive_plan(plan_leg(check_of("http://shop.test/", "HEAD"), {}));
  EXPECT_EQ(head.method, "HEAD");
  EXPECT_TRUE(head.head());
  EXPECT_TRUE(head.request.starts_with("HEAD / HTTP/1.1\r\n"));
}

TEST(Plan, InjectedLinesAreRefusedInEveryPlan) {
  auto check = check_of("http://shop.test/");
  (*check.mutable_headers())["X-Evil"] = "a\r\nX-Injected: yes";
  const auto plan = plan_leg(check, {});
  EXPECT_EQ(plan.invalid, "request not sent: the value of header X-Evil has CR (0x0d) at byte 1");
  EXPECT_EQ(plan.request, "");
  EXPECT_EQ(keep_alive_plan(plan).invalid, plan.invalid);

  LegTarget target;
  target.sni = "shop.test\n";
  EXPECT_EQ(plan_leg(check_of("https://shop.test/"), {}, target).invalid,
            "request not sent: the TLS server name has LF (0x0a) at byte 9");
  EXPECT_EQ(plan_leg(check_of("http://shop.test/", "GE T"), {}).invalid,
            "request not sent: method \"GE T\" is not a token");
}

}  // namespace
}  // namespace vantage::probe
