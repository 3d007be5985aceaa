#include "probe/edge.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/text.h"

namespace vantage::probe {
namespace {

namespace fs = std::filesystem;

// The repository root, found from this file's own path (tests/unit/edge_test.cc),
// so the test reads the real data files wherever the build directory is.
fs::path repo_root() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string sample(const std::string& name) {
  return read_file(repo_root() / "tests/unit/testdata/edge" / name);
}

constexpr std::string_view kRay = "8f1a2b3c4d5e6f70-FRA";

EdgeResponse through_edge(uint32_t status, std::string_view content_type, std::string_view body) {
  EdgeResponse response;
  response.status = status;
  response.content_type = content_type;
  response.body = body;
  response.cf_ray = kRay;
  response.server = "cloudflare";
  response.address_in_cloudflare = true;
  return response;
}

// --- Rule 1: JSON --------------------------------------------------------------

TEST(RecogniseEdge, Json520IsEdgeGenerated) {
  auto body = sample("json_520.json");
  std::optional<uint32_t> retry_after;
  auto e = recognise_edge(through_edge(520, "application/json; charset=utf-8", body), &retry_after);
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_JSON);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 520u);
  EXPECT_EQ(e.edge_error_code(), 0u);
  EXPECT_EQ(e.error_name(), "web_server_unknown_error");
  EXPECT_EQ(e.error_category(), "origin");
  EXPECT_EQ(e.ray_id(), "8f1a2b3c4d5e6f70");
  EXPECT_EQ(e.colo(), "FRA");
  EXPECT_TRUE(e.via_cloudflare());
  EXPECT_EQ(retry_after, 30u);
  EXPECT_EQ(classify_5xx(e, 520), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(RecogniseEdge, Json530With1016CarriesTheErrorCode) {
  auto body = sample("json_530_1016.json");
  std::optional<uint32_t> retry_after = 99;
  auto e = recognise_edge(through_edge(530, "application/problem+json; charset=utf-8", body),
                          &retry_after);
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_JSON);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 530u);
  EXPECT_EQ(e.edge_error_code(), 1016u);
  EXPECT_EQ(e.error_name(), "origin_dns_error");
  EXPECT_EQ(e.error_category(), "dns");
  EXPECT_FALSE(retry_after.has_value());  // not retryable: no retry_after
  EXPECT_EQ(classify_5xx(e, 530), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(RecogniseEdge, JsonRuleComesBeforeCompactText) {
  // json_520.json mentions "error code: 520" in a string; still rule 1.
  auto body = sample("json_520.json");
  ASSERT_NE(body.find("error code: 520"), std::string::npos);
  auto e = recognise_edge(through_edge(520, "application/json", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_JSON);
}

TEST(RecogniseEdge, JsonWithoutTheFlagOrMalformedDoesNotMatchRule1) {
  auto no_flag = recognise_edge(
      through_edge(503, "application/json", R"({"error":"maintenance","cloudflare_error":false})"));
  EXPECT_EQ(no_flag.rule(), v1::EDGE_RULE_ORIGIN_BODY);
  EXPECT_FALSE(no_flag.edge_generated());

  auto malformed = recognise_edge(
      through_edge(520, "application/json", R"({"cloudflare_error": true, "error_code": 52)"));
  EXPECT_EQ(malformed.rule(), v1::EDGE_RULE_NO_MARKERS);

  // The right body with the wrong content type is not rule 1 either.
  auto body = sample("json_520.json");
  auto wrong_type = recognise_edge(through_edge(520, "text/plain", body));
  EXPECT_NE(wrong_type.rule(), v1::EDGE_RULE_JSON);
}

TEST(RecogniseEdge, JsonErrorCodeAsStringIsRead) {
  auto e = recognise_edge(through_edge(
      522, "application/json",
      R"({"cloudflare_error":true,"error_code":"522","error_name":"connection_timed_out"})"));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_JSON);
  EXPECT_EQ(e.edge_code(), 522u);
  EXPECT_EQ(e.error_name(), "connection_timed_out");
}

// --- Rule 2: HTML template ---------------------------------------------------------

TEST(RecogniseEdge, Template520WithCloudflareBoxIsEdge) {
  auto body = sample("template_520_cloudflare.html");
  auto e = recognise_edge(through_edge(520, "text/html; charset=UTF-8", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 520u);
  EXPECT_EQ(e.error_source(), v1::ERROR_SOURCE_CLOUDFLARE);
  EXPECT_EQ(classify_5xx(e, 520), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(RecogniseEdge, Template502WithHostBoxIsTheOrigin) {
  auto body = sample("template_502_host.html");
  auto e = recognise_edge(through_edge(502, "text/html; charset=UTF-8", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_FALSE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 502u);
  EXPECT_EQ(e.error_source(), v1::ERROR_SOURCE_HOST);
  EXPECT_EQ(classify_5xx(e, 502), v1::FAILURE_CLASS_ORIGIN_5XX);
}

TEST(RecogniseEdge, Template522WithHostBoxIsStillEdge) {
  auto body = sample("template_522_host.html");
  auto e = recognise_edge(through_edge(522, "text/html; charset=UTF-8", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 522u);
  EXPECT_EQ(e.error_source(), v1::ERROR_SOURCE_HOST);
  EXPECT_EQ(classify_5xx(e, 522), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(RecogniseEdge, TemplateErrorSourceIsReadFromTheBoxNotTheStyleSheet) {
  // The sample's inline <style> names both .cf-error-source and #cf-host-status;
  // neither may make the host box look in error.
  auto body = sample("template_520_cloudflare.html");
  ASSERT_NE(body.find("#cf-host-status"), std::string::npos);
  auto e = recognise_edge(through_edge(520, "text/html", body));
  EXPECT_EQ(e.error_source(), v1::ERROR_SOURCE_CLOUDFLARE);
}

TEST(RecogniseEdge, Template1xxxPageReadsCfErrorCode) {
  constexpr std::string_view body =
      R"(<div id="cf-wrapper"><div id="cf-error-details" class="cf-error-details-wrapper">)"
      R"(<h1><span class="cf-error-type" data-translate="error">Error</span> )"
      R"(<span class="cf-error-code">1016</span></h1>)"
      R"(<h2 class="cf-subheadline" data-translate="error_desc">Origin DNS error</h2></div></div>)";
  auto e = recognise_edge(through_edge(530, "text/html", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 530u);
  EXPECT_EQ(e.edge_error_code(), 1016u);
}

// --- Rule 3: compact -----------------------------------------------------------

TEST(RecogniseEdge, Compact520) {
  auto e = recognise_edge(through_edge(520, "text/plain; charset=UTF-8", "error code: 520"));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_COMPACT);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 520u);
  EXPECT_EQ(classify_5xx(e, 520), v1::FAILURE_CLASS_EDGE_ERROR);

  auto spaced = recognise_edge(through_edge(530, "text/plain", "\r\n  error code:  1016 \n"));
  EXPECT_EQ(spaced.rule(), v1::EDGE_RULE_COMPACT);
  EXPECT_EQ(spaced.edge_code(), 530u);
  EXPECT_EQ(spaced.edge_error_code(), 1016u);
}

TEST(RecogniseEdge, CompactMustBeTheWholeBody) {
  auto e = recognise_edge(
      through_edge(520, "text/plain", "error code: 520 while talking to upstream backend-3"));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_NO_MARKERS);
}

// --- Rule 4: unbranded -----------------------------------------------------------

TEST(RecogniseEdge, Unbranded502) {
  auto body = sample("unbranded_502.html");
  auto e = recognise_edge(through_edge(502, "text/html", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_UNBRANDED);
  EXPECT_TRUE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 502u);
  EXPECT_EQ(classify_5xx(e, 502), v1::FAILURE_CLASS_EDGE_ERROR);
}

// --- Rules 5 and 6 ---------------------------------------------------------------

TEST(RecogniseEdge, CustomPage520WithRayHasNoMarkers) {
  auto body = sample("custom_520.html");
  auto e = recognise_edge(through_edge(520, "text/html", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_NO_MARKERS);
  EXPECT_FALSE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 520u);
  EXPECT_EQ(e.ray_id(), "8f1a2b3c4d5e6f70");
  // Our choice: a 52x is Cloudflare's code, so it stays an edge error; the
  // rule tells the diagnosis that the origin leg decides.
  EXPECT_EQ(classify_5xx(e, 520), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(RecogniseEdge, Origin503BodyIsPassedThrough) {
  auto body = sample("origin_503.html");
  auto e = recognise_edge(through_edge(503, "text/html; charset=iso-8859-1", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_ORIGIN_BODY);
  EXPECT_FALSE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 503u);
  EXPECT_EQ(classify_5xx(e, 503), v1::FAILURE_CLASS_ORIGIN_5XX);
}

TEST(RecogniseEdge, A520WithoutCfRayIsTheOriginBody) {
  EdgeResponse response = through_edge(520, "text/html", "<h1>oops</h1>");
  response.cf_ray.reset();
  response.address_in_cloudflare = false;
  auto e = recognise_edge(response);
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_ORIGIN_BODY);
  EXPECT_FALSE(e.via_cloudflare());
  EXPECT_EQ(classify_5xx(e, 520), v1::FAILURE_CLASS_ORIGIN_5XX);
}

TEST(RecogniseEdge, NonErrorResponseOnlyRecordsTheEdge) {
  auto body = sample("template_520_cloudflare.html");  // markers must be ignored
  auto e = recognise_edge(through_edge(200, "text/html", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_UNSPECIFIED);
  EXPECT_FALSE(e.edge_generated());
  EXPECT_EQ(e.edge_code(), 0u);
  EXPECT_EQ(e.error_source(), v1::ERROR_SOURCE_UNSPECIFIED);
  EXPECT_EQ(e.ray_id(), "8f1a2b3c4d5e6f70");
  EXPECT_EQ(e.colo(), "FRA");
  EXPECT_TRUE(e.via_cloudflare());
  EXPECT_EQ(classify_5xx(e, 200), v1::FAILURE_CLASS_UNSPECIFIED);
}

TEST(RecogniseEdge, ViaCloudflareFromAddressAlone) {
  EdgeResponse response = through_edge(200, "text/html", "ok");
  response.cf_ray.reset();
  EXPECT_TRUE(recognise_edge(response).via_cloudflare());
  response.address_in_cloudflare = false;
  EXPECT_FALSE(recognise_edge(response).via_cloudflare());
}

TEST(RecogniseEdge, HugeBinaryBodyIsHandled) {
  std::string body(4 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131) & 0xff);
  auto e = recognise_edge(through_edge(500, "application/json", body));
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_ORIGIN_BODY);
  // A marker beyond the scan limit is not looked for.
  body.replace(body.size() - 64, 27, "<center>cloudflare</center>");
  EXPECT_EQ(recognise_edge(through_edge(502, "text/html", body)).rule(),
            v1::EDGE_RULE_ORIGIN_BODY);
}

// --- cf-ray ----------------------------------------------------------------------

TEST(CfRay, Normal) {
  auto ray = parse_cf_ray("8f1a2b3c4d5e6f70-FRA");
  ASSERT_TRUE(ray);
  EXPECT_EQ(ray->ray_id, "8f1a2b3c4d5e6f70");
  EXPECT_EQ(ray->colo, "FRA");
}

TEST(CfRay, OtherLengthsAndWhitespaceAreTolerated) {
  auto short_id = parse_cf_ray(" 4a5b6c7d-SJC ");
  ASSERT_TRUE(short_id);
  EXPECT_EQ(short_id->ray_id, "4a5b6c7d");
  EXPECT_EQ(short_id->colo, "SJC");
  auto long_colo = parse_cf_ray("8f1a2b3c4d5e6f70aa-SJCA");
  ASSERT_TRUE(long_colo);
  EXPECT_EQ(long_colo->colo, "SJCA");
  auto upper_hex = parse_cf_ray("8F1A2B3C4D5E6F70-AMS");
  ASSERT_TRUE(upper_hex);
  EXPECT_EQ(upper_hex->ray_id, "8f1a2b3c4d5e6f70");
}

TEST(CfRay, MalformedIsRejected) {
  EXPECT_FALSE(parse_cf_ray("8f1a2b3c4d5e6f70"));       // missing dash
  EXPECT_FALSE(parse_cf_ray("-FRA"));                   // no id
  EXPECT_FALSE(parse_cf_ray("8f1a2b3c4d5e6f70-"));      // no colo
  EXPECT_FALSE(parse_cf_ray("8f1a2b3c4d5e6f70-FR"));    // colo too short
  EXPECT_FALSE(parse_cf_ray("xyz-FRA"));                // id not hex
  EXPECT_FALSE(parse_cf_ray(""));
  // Lower-case colo: rejected by choice (Cloudflare sends upper case; the colo
  // becomes a metric label, so an imitation must not add label values).
  EXPECT_FALSE(parse_cf_ray("8f1a2b3c4d5e6f70-fra"));
}

TEST(CfRay, UnparsableHeaderStillMeansViaCloudflare) {
  EdgeResponse response = through_edge(520, "text/html", "<p>custom</p>");
  response.cf_ray = "garbage";
  response.address_in_cloudflare = false;
  auto e = recognise_edge(response);
  EXPECT_TRUE(e.via_cloudflare());
  EXPECT_TRUE(e.ray_id().empty());
  EXPECT_TRUE(e.colo().empty());
  EXPECT_EQ(e.rule(), v1::EDGE_RULE_NO_MARKERS);
}

// --- AddressRanges ---------------------------------------------------------------

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

TEST(AddressRanges, RealCloudflareFiles) {
  std::string error;
  auto v4 = AddressRanges::parse(read_file(repo_root() / "data/cloudflare/ips-v4.txt"), &error);
  ASSERT_TRUE(v4) << error;
  auto v6 = AddressRanges::parse(read_file(repo_root() / "data/cloudflare/ips-v6.txt"), &error);
  ASSERT_TRUE(v6) << error;
  AddressRanges all = *v4;
  all.add(*v6);
  EXPECT_EQ(all.size(), v4->size() + v6->size());
  EXPECT_GT(v4->size(), 5u);

  EXPECT_TRUE(all.contains(ip("104.16.0.1")));
  EXPECT_TRUE(all.contains(ip("2606:4700::1")));
  EXPECT_TRUE(all.contains(ip("::ffff:104.16.0.1")));  // v4-mapped
  EXPECT_FALSE(all.contains(ip("8.8.8.8")));
  EXPECT_FALSE(all.contains(ip("2001:db8::1")));
  EXPECT_FALSE(all.contains(ip("::ffff:8.8.8.8")));
  EXPECT_FALSE(v6->contains(ip("104.16.0.1")));
}

TEST(AddressRanges, CommentsBlankLinesAndPrefixEdges) {
  std::string error;
  auto ranges = AddressRanges::parse(
      "# test ranges\n\n10.0.0.0/8  # private\r\n2001:db8:80::/41\n192.0.2.7/32\n", &error);
  ASSERT_TRUE(ranges) << error;
  EXPECT_TRUE(ranges->contains(ip("10.255.255.255")));
  EXPECT_FALSE(ranges->contains(ip("11.0.0.0")));
  EXPECT_TRUE(ranges->contains(ip("2001:db8:ff::1")));   // within /41
  EXPECT_FALSE(ranges->contains(ip("2001:db8:7f::1")));  // just below
  EXPECT_TRUE(ranges->contains(ip("192.0.2.7")));
  EXPECT_FALSE(ranges->contains(ip("192.0.2.8")));

  auto everything = AddressRanges::parse("0.0.0.0/0\n", &error);
  ASSERT_TRUE(everything);
  EXPECT_TRUE(everything->contains(ip("203.0.113.1")));
}

TEST(AddressRanges, BadLineIsReportedWithItsNumber) {
  std::string error;
  EXPECT_FALSE(AddressRanges::parse("173.245.48.0/20\n\n104.16.0.0/33\n", &error));
  EXPECT_EQ(error.rfind("line 3: ", 0), 0u) << error;

  EXPECT_FALSE(AddressRanges::parse("# header\n104.16.0.0\n", &error));
  EXPECT_EQ(error.rfind("line 2: ", 0), 0u) << error;

  EXPECT_FALSE(AddressRanges::parse("104.16.0.0/13\nnot-an-address/8\n", &error));
  EXPECT_EQ(error.rfind("line 2: ", 0), 0u) << error;

  EXPECT_FALSE(AddressRanges::parse("104.16.0.1/13\n", &error));  // host bits set
  EXPECT_EQ(error.rfind("line 1: ", 0), 0u) << error;

  EXPECT_FALSE(AddressRanges::parse("2606:4700::/-1\n", nullptr));  // no error string: fine
}

// --- /cdn-cgi/trace --------------------------------------------------------------

TEST(Trace, RealisticBody) {
  auto trace = parse_trace(sample("trace.txt"));
  ASSERT_TRUE(trace);
  EXPECT_EQ(trace->colo, "FRA");
  EXPECT_EQ(trace->loc, "DE");
  EXPECT_EQ(trace->http, "http/1.1");
  EXPECT_EQ(trace->tls, "TLSv1.3");
  EXPECT_EQ(trace->fields.at("h"), "shop.example.com");
  EXPECT_EQ(trace->fields.at("kex"), "X25519");  // unknown keys are kept
  EXPECT_EQ(trace->fields.at("uag"), "Vantage/0.1 (+https://vantage.example/probe)");

  v1::EdgeEvidence evidence;
  apply_trace(*trace, &evidence);
  EXPECT_EQ(evidence.trace_colo(), "FRA");
  EXPECT_EQ(evidence.trace_loc(), "DE");
}

TEST(Trace, JunkLinesAreSkippedAndColoIsRequired) {
  auto trace = parse_trace("garbage\r\n=novalue\r\nbad key=x\r\ncolo=LHR\r\nloc=GB\r\n\x01\x02\r\n");
  ASSERT_TRUE(trace);
  EXPECT_EQ(trace->colo, "LHR");
  EXPECT_EQ(trace->loc, "GB");
  EXPECT_EQ(trace->fields.size(), 2u);

  EXPECT_FALSE(parse_trace("fl=466f12\nh=shop.example.com\n"));
  EXPECT_FALSE(parse_trace("colo=\n"));
  EXPECT_FALSE(parse_trace("<html><body>Not Found</body></html>"));
  EXPECT_FALSE(parse_trace(""));
}

// --- What a hostile site can make of the evidence ----------------------------------

TEST(HostileEdge, AColoCloudflareDoesNotHaveIsOther) {
  auto response = through_edge(520, "text/plain", "error code: 520");
  for (const char* ray : {"8f1a2b3c4d5e6f70-QQX", "8f1a2b3c4d5e6f70-ABCDEFGH", "8f1a2b3c4d5e6f70-ZZZZ"}) {
    response.cf_ray = ray;
    const auto e = recognise_edge(response);
    EXPECT_EQ(e.colo(), "other") << ray;
    EXPECT_EQ(e.ray_id(), "8f1a2b3c4d5e6f70") << ray;
  }
  response.cf_ray = "8f1a2b3c4d5e6f70-AMS";
  EXPECT_EQ(recognise_edge(response).colo(), "AMS");
}

TEST(HostileEdge, ARayIdOutsideItsHexFormatIsDropped) {
  auto response = through_edge(520, "text/plain", "error code: 520");
  for (std::string ray : {std::string("8f1a\0b3c-FRA", 12), std::string("zz1a2b3c-FRA"), std::string(65, 'a') + "-FRA",
                          std::string("8f1a\xff-FRA")}) {
    response.cf_ray = ray;
    const auto e = recognise_edge(response);
    EXPECT_EQ(e.ray_id(), "");
    EXPECT_EQ(e.colo(), "");
  }
}

TEST(HostileEdge, JsonTextIsValidUtf8WithoutControlsAndBounded) {
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "\xc3\xa9";
  const std::string body = R"({"cloudflare_error":true,"error_code":520,"error_name":"a\u0000b\r\nX: y)" + long_text +
                           R"(","error_category":"\u001b[2J","ray_id":"ABC\u0000"})";
  const auto e = recognise_edge(through_edge(520, "application/json", body));
  ASSERT_EQ(e.rule(), v1::EDGE_RULE_JSON);
  EXPECT_TRUE(e.error_name().starts_with("a?b??X: y")) << e.error_name();
  EXPECT_LE(e.error_name().size(), 128u);
  EXPECT_TRUE(is_valid_utf8(e.error_name()));
  EXPECT_EQ(e.error_category(), "?[2J");
  EXPECT_EQ(e.ray_id(), "8f1a2b3c4d5e6f70") << "the header's; the body's is not hex";
}

TEST(HostileEdge, TraceColoIsAKnownColoOrOtherAndLocIsBounded) {
  auto trace = parse_trace("colo=QQX\nloc=" + std::string(100, 'Z') + "\n");
  ASSERT_TRUE(trace);
  v1::EdgeEvidence evidence;
  apply_trace(*trace, &evidence);
  EXPECT_EQ(evidence.trace_colo(), "other");
  EXPECT_LE(evidence.trace_loc().size(), 16u);
  trace = parse_trace("colo=FRA\nloc=D\xff\n");
  ASSERT_TRUE(trace);
  apply_trace(*trace, &evidence);
  EXPECT_EQ(evidence.trace_colo(), "FRA");
  EXPECT_EQ(evidence.trace_loc(), "") << "not printable: dropped";
}

}  // namespace
}  // namespace vantage::probe
