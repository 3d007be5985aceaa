// --resolve and --connect-to, as the probe daemon and `diagnose` parse them.
#include <gtest/gtest.h>

#include "probe/attempt.h"

namespace vantage::probe {
namespace {

TEST(Overrides, ResolveKeepsThePort) {
  std::string error;
  auto r = parse_resolve("shop.test:443:[2001:db8::1]", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->host, "shop.test");
  EXPECT_EQ(r->port, 443);
  EXPECT_EQ(r->address, "2001:db8::1");
  EXPECT_EQ(r->connect_port, 0);
}

TEST(Overrides, ConnectToChangesAddressAndPort) {
  std::string error;
  auto r = parse_connect_to("shop.test:8080:127.0.0.1:18081", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->address, "127.0.0.1");
  EXPECT_EQ(r->connect_port, 18081);

  v1::Check check;
  check.set_url("http://shop.test:8080/health");
  AttemptOptions options{.resolve = {*r}};
  auto target = edge_target(check, options);
  EXPECT_EQ(target.connect_host, "127.0.0.1");
  EXPECT_EQ(target.connect_port, 18081);
  check.set_url("http://shop.test:9090/");
  EXPECT_EQ(edge_target(check, options).connect_host, "") << "another port of the host is not redirected";
}

TEST(Overrides, BadValuesNameTheKindAndTheForm) {
  std::string error;
  EXPECT_FALSE(parse_connect_to("shop.test:8080:127.0.0.1", &error));
  EXPECT_EQ(error, "connect-to override \"shop.test:8080:127.0.0.1\": expected HOST:PORT:ADDRESS:PORT2 (PORT2 missing or not a port)");
  EXPECT_FALSE(parse_resolve("shop.test", &error));
  EXPECT_EQ(error, "resolve override \"shop.test\": expected HOST:PORT:ADDRESS");
  std::vector<ResolveOverride> out;
  EXPECT_FALSE(parse_overrides({"a:1:10.0.0.1"}, {"b:2::3"}, &out, &error));
  EXPECT_EQ(error, "connect-to override \"b:2::3\": missing address");
}

}  // namespace
}  // namespace vantage::probe
