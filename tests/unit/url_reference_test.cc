// Resolving a Location against the URL it answered (common/url.h
// resolve_reference): RFC 3986 section 5.4's examples, and what a probe
// refuses to follow.
#include <gtest/gtest.h>

#include "common/url.h"

namespace vantage {
namespace {

// The reference resolved against `base`, as text, or "error: ..." when refused.
std::string resolved(const std::string& base_text, const std::string& reference) {
  std::string error;
  const auto base = parse_url(base_text, &error);
  EXPECT_TRUE(base) << error;
  if (!base) return "bad base";
  const auto url = resolve_reference(*base, reference, &error);
  return url ? url_text(*url) : "error: " + error;
}

struct Example {
  const char* reference;
  const char* expected;
};

// RFC 3986 5.4.1 and 5.4.2 (base http://a/b/c/d;p?q); fragments are dropped,
// as a probe never sends them, and "//g" gains the path "/".
constexpr Example kRfcExamples[] = {
    {"g", "http://a/b/c/g"},
    {"./g", "http://a/b/c/g"},
    {"g/", "http://a/b/c/g/"},
    {"/g", "http://a/g"},
    {"//g", "http://g/"},
    {"?y", "http://a/b/c/d;p?y"},
    {"g?y", "http://a/b/c/g?y"},
    {"#s", "http://a/b/c/d;p?q"},
    {"g#s", "http://a/b/c/g"},
    {"g?y#s", "http://a/b/c/g?y"},
    {";x", "http://a/b/c/;x"},
    {"g;x", "http://a/b/c/g;x"},
    {"g;x?y#s", "http://a/b/c/g;x?y"},
    {".", "http://a/b/c/"},
    {"./", "http://a/b/c/"},
    {"..", "http://a/b/"},
    {"../", "http://a/b/"},
    {"../g", "http://a/b/g"},
    {"../..", "http://a/"},
    {"../../", "http://a/"},
    {"../../g", "http://a/g"},
    {"../../../g", "http://a/g"},
    {"../../../../g", "http://a/g"},
    {"/./g", "http://a/g"},
    {"/../g", "http://a/g"},
    {"g.", "http://a/b/c/g."},
    {".g", "http://a/b/c/.g"},
    {"g..", "http://a/b/c/g.."},
    {"..g", "http://a/b/c/..g"},
    {"./../g", "http://a/b/g"},
    {"./g/.", "http://a/b/c/g/"},
    {"g/./h", "http://a/b/c/g/h"},
    {"g/../h", "http://a/b/c/h"},
    {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
    {"g;x=1/../y", "http://a/b/c/y"},
    {"g?y/./x", "http://a/b/c/g?y/./x"},
    {"g?y/../x", "http://a/b/c/g?y/../x"},
    {"g#s/./x", "http://a/b/c/g"},
    {"g#s/../x", "http://a/b/c/g"},
};

TEST(UrlReference, TheRfcExamplesResolveAsTheRfcSays) {
  for (const auto& example : kRfcExamples) {
    EXPECT_EQ(resolved("http://a/b/c/d;p?q", example.reference), example.expected) << example.reference;
  }
}

TEST(UrlReference, AnAbsoluteUrlReplacesTheBaseAndMayChangeTheScheme) {
  EXPECT_EQ(resolved("http://a/b", "https://other.test:8443/x?y"), "https://other.test:8443/x?y");
  EXPECT_EQ(resolved("https://a/b", "http://a/b"), "http://a/b");
  EXPECT_EQ(resolved("http://a/b", "HTTPS://a/b"), "https://a/b") << "the scheme is case-insensitive";
  std::string error;
  const auto url = resolve_reference(*parse_url("http://a/b", &error), "https://a/", &error);
  ASSERT_TRUE(url) << error;
  EXPECT_EQ(url->port, 443) << "the new scheme's default port";
}

TEST(UrlReference, ASchemeRelativeReferenceKeepsTheScheme) {
  EXPECT_EQ(resolved("https://a/b", "//c.test/d"), "https://c.test/d");
  EXPECT_EQ(resolved("http://a/b", "//[::1]:8080/x"), "http://[::1]:8080/x");
}

TEST(UrlReference, TheBaseQueryStaysOnlyForAnEmptyPathWithoutQuery) {
  EXPECT_EQ(resolved("http://a/b?q", "#f"), "http://a/b?q");
  EXPECT_EQ(resolved("http://a/b?q", "?r"), "http://a/b?r");
  EXPECT_EQ(resolved("http://a/b?q", "c"), "http://a/c");
  EXPECT_EQ(resolved("http://a/b/?q", "/"), "http://a/");
}

TEST(UrlReference, SpacesAndNonAsciiArePercentEncodedAsBrowsersDo) {
  EXPECT_EQ(resolved("http://a/b", "/a b"), "http://a/a%20b");
  EXPECT_EQ(resolved("http://a/b", "/caf\xc3\xa9"), "http://a/caf%C3%A9");
}

TEST(UrlReference, WhatIsNotAnHttpUrlIsRefusedSayingWhy) {
  EXPECT_EQ(resolved("http://a/b", ""), "error: empty reference");
  EXPECT_EQ(resolved("http://a/b", "ftp://a/x"), "error: scheme \"ftp\" is not http or https");
  EXPECT_EQ(resolved("http://a/b", "javascript:alert(1)"), "error: scheme \"javascript\" is not http or https");
  EXPECT_EQ(resolved("http://a/b", "g:h"), "error: scheme \"g\" is not http or https");
  EXPECT_EQ(resolved("http://a/b", "http:g"), "error: \"http:g\" has no host (expected http://host/...)");
  EXPECT_EQ(resolved("http://a/b", "http://"), "error: missing host");
  EXPECT_EQ(resolved("http://a/b", "http://user@a/"),
            "error: credentials in the URL are not supported (use a header)");
  EXPECT_EQ(resolved("http://a/b", "/x\r\nSet-Cookie: a=b"),
            "error: the path contains a space or control character (percent-encode it)");
  EXPECT_EQ(resolved("http://a/b", "//bad host/"), "error: host \"bad%20host\" contains '%', which no host name has");
}

TEST(UrlReference, DotSegmentsAreRemovedFromAbsolutePaths) {
  EXPECT_EQ(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
  EXPECT_EQ(remove_dot_segments("mid/content=5/../6"), "mid/6");
  EXPECT_EQ(remove_dot_segments("/.."), "/");
  EXPECT_EQ(remove_dot_segments("/a/"), "/a/");
}

}  // namespace
}  // namespace vantage
