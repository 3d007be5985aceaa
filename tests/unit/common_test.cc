#include <gtest/gtest.h>

#include "common/assignment.h"
#include "common/backoff.h"
#include "common/failure_class.h"
#include "common/log.h"
#include "common/token.h"
#include "common/url.h"

namespace vantage {
namespace {

TEST(FailureClass, EveryEnumValueHasAStableNameThatRoundTrips) {
  const auto* descriptor = v1::FailureClass_descriptor();
  ASSERT_GE(descriptor->value_count(), 23);
  for (int i = 0; i < descriptor->value_count(); ++i) {
    auto c = static_cast<v1::FailureClass>(descriptor->value(i)->number());
    if (c == v1::FAILURE_CLASS_UNSPECIFIED) continue;
    auto name = failure_class_name(c);
    EXPECT_EQ(name.find("failure_class"), std::string::npos) << name;
    EXPECT_EQ(failure_class_from_name(name), c) << name;
  }
}

TEST(FailureClass, NamesAreTheOnesOfDiagnosisMd) {
  EXPECT_EQ(failure_class_name(v1::FAILURE_CLASS_EMPTY_REPLY), "empty_reply");
  EXPECT_EQ(failure_class_name(v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT), "headers_near_limit");
  EXPECT_EQ(failure_class_name(v1::FAILURE_CLASS_ORIGIN_5XX), "origin_5xx");
  EXPECT_FALSE(failure_class_from_name("unspecified"));
  EXPECT_FALSE(failure_class_from_name("no_such_class"));
}

TEST(Token, Sha256MatchesTheStandardTestVector) {
  EXPECT_EQ(token_sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Token, GeneratedTokensAreLongAndDifferent) {
  auto a = generate_token();
  auto b = generate_token();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
}

TEST(Token, BearerSchemeIsParsedCaseInsensitively) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc"), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearer "), "");
  EXPECT_EQ(bearer_token(""), "");
}

TEST(Backoff, DoublesUpToTheCapWithJitterInTheUpperHalf) {
  double u = 0.0;
  Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), [&] { return u; });
  EXPECT_EQ(backoff.next().count(), 50);   // ceiling 100, lowest draw
  EXPECT_EQ(backoff.next().count(), 100);  // ceiling 200
  u = 0.999999;
  EXPECT_EQ(backoff.next().count(), 399);  // ceiling 400, highest draw
  for (int i = 0; i < 30; ++i) EXPECT_LE(backoff.next().count(), 1000);
  backoff.reset();
  u = 0.0;
  EXPECT_EQ(backoff.next().count(), 50);
}

TEST(Url, ParsesWhatAProbeNeeds) {
  std::string error;
  auto u = parse_url("http://example.com:8080/a/b?c=d#frag", &error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/a/b?c=d");
  EXPECT_EQ(u->host_header, "example.com:8080");

  u = parse_url("HTTPS://[2001:db8::1]", &error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->host, "2001:db8::1");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/");
}

TEST(Url, RejectsWithAReason) {
  std::string error;
  EXPECT_FALSE(parse_url("ftp://x/", &error));
  EXPECT_NE(error.find("ftp"), std::string::npos);
  EXPECT_FALSE(parse_url("example.com", &error));
  EXPECT_NE(error.find("scheme"), std::string::npos);
  EXPECT_FALSE(parse_url("http://x:99999/", &error));
  EXPECT_NE(error.find("99999"), std::string::npos);
  EXPECT_FALSE(parse_url("http://user:pw@x/", &error));
  EXPECT_FALSE(parse_url("http:///path", &error));
  EXPECT_FALSE(parse_url("http://x/a b", &error));
}

TEST(Log, RedactsPasswordsInConnectionStrings) {
  EXPECT_EQ(log::redact("cannot connect to postgresql://vantage:s3cret@127.0.0.1:5432/v"),
            "cannot connect to postgresql://vantage:***@127.0.0.1:5432/v");
  EXPECT_EQ(log::redact("host=x password=s3cret user=y"), "host=x password=*** user=y");
  EXPECT_EQ(log::redact("nothing secret here"), "nothing secret here");
}

TEST(Log, QuotesValuesThatNeedIt) {
  std::string out;
  log::append_field(out, "a", "plain");
  log::append_field(out, "b", "two words");
  log::append_field(out, "c", "say \"hi\"\n");
  log::append_field(out, "d", "");
  EXPECT_EQ(out, " a=plain b=\"two words\" c=\"say \\\"hi\\\"\\n\" d=\"\"");
}

TEST(Assignment, ALargeSetComesInPartsOnlyToAProbeThatAcceptsThem) {
  std::vector<v1::Check> checks(1'201);
  for (size_t i = 0; i < checks.size(); ++i) checks[i].set_id(static_cast<int64_t>(i) + 1);
  const auto parts = assignment_messages(checks, /*accepts_parts=*/true, 500);
  ASSERT_EQ(parts.size(), 3u);
  int64_t next_id = 1;
  for (size_t p = 0; p < parts.size(); ++p) {
    const auto& part = parts[p].assignment();
    EXPECT_EQ(part.checks_size(), p < 2 ? 500 : 201);
    EXPECT_EQ(part.more(), p < 2) << "part " << p;
    for (const auto& c : part.checks()) EXPECT_EQ(c.id(), next_id++);
  }
  const auto whole = assignment_messages(checks, /*accepts_parts=*/false, 500);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].assignment().checks_size(), 1'201);
  EXPECT_FALSE(whole[0].assignment().more());
}

TEST(Assignment, NoChecksIsOneEmptyMessage) {
  const auto parts = assignment_messages({}, /*accepts_parts=*/true);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_TRUE(parts[0].has_assignment());
  EXPECT_EQ(parts[0].assignment().checks_size(), 0);
  EXPECT_FALSE(parts[0].assignment().more());
}

}  // namespace
}  // namespace vantage
