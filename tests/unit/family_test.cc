// Check.ip_family (probe/ip_family.h: the order a leg tries a name's
// addresses in, or the other family dropped) and Check.cache_busting_param
// (probe/cache_busting.h, added by the plan: plan.h), as pure functions.
#include <gtest/gtest.h>

#include <set>

#include "common/check_config.h"
#include "probe/cache_busting.h"
#include "probe/ip_family.h"
#include "probe/plan.h"

namespace vantage::probe {
namespace {

namespace ip = boost::asio::ip;

std::vector<ip::address> addresses(std::initializer_list<const char*> texts) {
  std::vector<ip::address> out;
  for (const char* text : texts) out.push_back(ip::make_address(text));
  return out;
}

std::vector<std::string> texts(const std::vector<ip::address>& list) {
  std::vector<std::string> out;
  for (const auto& a : list) out.push_back(a.to_string());
  return out;
}

using Texts = std::vector<std::string>;

// As the resolver gives them: IPv4 first (dns.h).
const auto kMixed = {"203.0.113.7", "203.0.113.8", "2001:db8::7", "2001:db8::8"};

TEST(IpFamily, AnyKeepsTheResolversOrder) {
  auto list = addresses(kMixed);
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_UNSPECIFIED, false), "");
  EXPECT_EQ(texts(list), (Texts{"203.0.113.7", "203.0.113.8", "2001:db8::7", "2001:db8::8"}));
}

TEST(IpFamily, PreferPutsThatFamilyFirstAndKeepsTheOther) {
  auto list = addresses(kMixed);
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_PREFER_V6, false), "");
  EXPECT_EQ(texts(list), (Texts{"2001:db8::7", "2001:db8::8", "203.0.113.7", "203.0.113.8"}));
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_PREFER_V4, false), "");
  EXPECT_EQ(texts(list), (Texts{"203.0.113.7", "203.0.113.8", "2001:db8::7", "2001:db8::8"}));
  // A preference for a family the name lacks is no failure: the other is tried.
  auto v4 = addresses({"203.0.113.7"});
  EXPECT_EQ(order_by_family(v4, v1::IP_FAMILY_PREFER_V6, false), "");
  EXPECT_EQ(texts(v4), (Texts{"203.0.113.7"}));
}

TEST(IpFamily, OnlyDropsTheOtherFamily) {
  auto list = addresses(kMixed);
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V6, false), "");
  EXPECT_EQ(texts(list), (Texts{"2001:db8::7", "2001:db8::8"}));
  list = addresses(kMixed);
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V4, false), "");
  EXPECT_EQ(texts(list), (Texts{"203.0.113.7", "203.0.113.8"}));
}

TEST(IpFamily, ANameWithoutAnAddressOfTheOnlyFamilySaysWhatItHas) {
  auto list = addresses({"203.0.113.7"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V6, false), "no IPv6 address (ip_family: ipv6); it has 203.0.113.7");
  EXPECT_TRUE(list.empty()) << "nothing may be tried";
  list = addresses({"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V4, false),
            "no IPv4 address (ip_family: ipv4); it has 2001:db8::1, 2001:db8::2, 2001:db8::3 and 2 more");
  EXPECT_TRUE(list.empty());
}

TEST(IpFamily, AnAddressLiteralOfTheOtherFamilyIsTheChecksContradiction) {
  auto list = addresses({"203.0.113.7"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V6, true),
            "203.0.113.7 is an IPv4 address and the check's ip_family is ipv6");
  list = addresses({"::1"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V4, true),
            "::1 is an IPv6 address and the check's ip_family is ipv4");
  list = addresses({"::1"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V6, true), "");
  EXPECT_EQ(texts(list), (Texts{"::1"}));
}

TEST(IpFamily, AnIpv4MappedAddressTravelsOverIpv4) {
  EXPECT_EQ(ip_version(ip::make_address("::ffff:203.0.113.7")), 4u);
  EXPECT_EQ(ip_version(ip::make_address("2001:db8::7")), 6u);
  EXPECT_EQ(ip_version(ip::make_address("203.0.113.7")), 4u);
  auto list = addresses({"::ffff:203.0.113.7", "2001:db8::7"});
  EXPECT_EQ(order_by_family(list, v1::IP_FAMILY_ONLY_V6, false), "");
  EXPECT_EQ(texts(list), (Texts{"2001:db8::7"}));
}

TEST(IpFamily, AnUnknownValueIsAny) {
  auto list = addresses(kMixed);
  EXPECT_EQ(order_by_family(list, static_cast<v1::IpFamily>(99), false), "");
  EXPECT_EQ(list.size(), 4u);
  EXPECT_EQ(ip_family_name(static_cast<v1::IpFamily>(99)), "any");
}

TEST(CacheBusting, TheParameterJoinsTheQueryTheRightWay) {
  EXPECT_EQ(with_query_parameter("/", "cb", "1f"), "/?cb=1f");
  EXPECT_EQ(with_query_parameter("/health", "cb", "1f"), "/health?cb=1f");
  EXPECT_EQ(with_query_parameter("/health?full=1", "cb", "1f"), "/health?full=1&cb=1f");
  EXPECT_EQ(with_query_parameter("/health?", "cb", "1f"), "/health?cb=1f");
  EXPECT_EQ(with_query_parameter("/health?full=1&", "cb", "1f"), "/health?full=1&cb=1f");
}

TEST(CacheBusting, ValuesAre64BitsOfHexAndDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto value = cache_busting_value();
    ASSERT_EQ(value.size(), 16u) << value;
    ASSERT_EQ(value.find_first_not_of("0123456789abcdef"), std::string::npos) << value;
    seen.insert(value);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

v1::Check check_of(const std::string& url) {
  v1::Check check;
  check.set_url(url);
  check.set_method("GET");
  *check.mutable_timeout() = to_duration(std::chrono::seconds(3));
  return check;
}

// The value the plan added to `target` for `name`, or empty.
std::string value_of(const std::string& target, const std::string& name) {
  const auto at = target.find(name + "=");
  return at == std::string::npos ? "" : target.substr(at + name.size() + 1, 16);
}

TEST(CacheBusting, ThePlanAddsOneFreshValuePerAttemptToBothLegsAndTheJsonFollowUp) {
  auto check = check_of("http://shop.test/health?full=1");
  check.set_cache_busting_param("vantage_cb");
  check.mutable_origin()->set_address("10.0.0.5:8080");
  const auto plan = plan_attempt(check, {}, {});
  const auto value = value_of(plan.edge.url.target, "vantage_cb");
  ASSERT_EQ(value.size(), 16u) << plan.edge.url.target;
  EXPECT_EQ(plan.edge.url.target, "/health?full=1&vantage_cb=" + value);
  EXPECT_TRUE(plan.edge.request.starts_with("GET /health?full=1&vantage_cb=" + value + " HTTP/1.1\r\n"))
      << plan.edge.request;
  ASSERT_TRUE(plan.origin);
  EXPECT_EQ(plan.origin->url.target, plan.edge.url.target) << "both legs ask for the same resource";
  EXPECT_EQ(json_follow_up_plan(plan.edge, std::chrono::seconds(1)).url.target, plan.edge.url.target);
  EXPECT_EQ(trace_follow_up_plan(plan.edge, std::chrono::seconds(1)).url.target, "/cdn-cgi/trace");

  const auto next = plan_attempt(check, {}, {});
  EXPECT_NE(value_of(next.edge.url.target, "vantage_cb"), value) << "a fresh value each attempt";
  EXPECT_NE(value_of(plan_leg(check, {}).url.target, "vantage_cb"), "");
}

TEST(CacheBusting, ACheckWithoutTheParameterSendsItsUrlAsItIs) {
  const auto plan = plan_attempt(check_of("http://shop.test/health?full=1"), {}, {});
  EXPECT_EQ(plan.edge.url.target, "/health?full=1");
}

TEST(CacheBusting, ANameThatWouldBreakTheRequestLineIsNeverSent) {
  // (The checks file refuses such a name; a check that slipped past is not sent.)
  auto check = check_of("http://shop.test/");
  check.set_cache_busting_param("a b");
  const auto plan = plan_leg(check, {});
  EXPECT_EQ(plan.request, "");
  EXPECT_TRUE(plan.invalid.starts_with("request not sent: the URL's path has whitespace")) << plan.invalid;
  check.set_cache_busting_param("a\r\nX-Injected: 1");
  EXPECT_EQ(plan_leg(check, {}).request, "");
}

TEST(LegUrl, TheRequestedUrlIsTheHostHeadersAndTheTargetAsSent) {
  Url url;
  url.scheme = "https";
  url.host = "10.0.0.5";
  url.port = 8443;
  url.host_header = "shop.test:8443";
  url.target = "/x?a=1&cb=00ff";
  EXPECT_EQ(requested_url_text(url), "https://shop.test:8443/x?a=1&cb=00ff");
  url.target = "/\xff" + std::string(3000, 'a');
  const auto text = requested_url_text(url);
  EXPECT_LE(text.size(), 2048u);
  EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos) << "not UTF-8: replaced";
}

}  // namespace
}  // namespace vantage::probe
