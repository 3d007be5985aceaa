#include "probe/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vantage::probe {
namespace {

using namespace std::string_literals;
using State = ResponseParser::State;

// Everything a caller can observe, so "fed whole" and "fed byte by byte"
// can be compared in one assertion.
struct Outcome {
  State state = State::kHead;
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  std::string error;
  uint64_t error_offset = 0;
  bool head_complete = false;
  uint32_t status = 0;
  std::string http_version;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t header_bytes = 0;
  uint32_t header_count = 0;
  uint32_t largest_header_bytes = 0;
  uint32_t set_cookie_count = 0;
  std::string body;
  bool body_capped = false;
  uint64_t bytes_received = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome observe(const ResponseParser& p) {
  return Outcome{p.state(),         p.failure_class(),        p.error(),        p.error_offset(), p.head_complete(),
                 p.status(),        p.http_version(),         p.reason(),       p.headers(),      p.header_bytes(),
                 p.header_count(),  p.largest_header_bytes(), p.set_cookie_count(), p.body(),     p.body_capped(),
                 p.bytes_received()};
}

enum class Feeding { kWhole, kByteByByte };

struct Run {
  std::string input;
  bool eof = false;
  bool head_request = false;
  HttpParserLimits limits = {};
};

Outcome run(const Run& r, Feeding feeding) {
  ResponseParser parser(r.limits, r.head_request);
  if (feeding == Feeding::kWhole) {
    parser.feed(r.input);
  } else {
    for (char c : r.input) parser.feed(std::string_view(&c, 1));
  }
  if (r.eof) parser.finish_eof();
  return observe(parser);
}

// Runs both ways, insists they agree, and returns the outcome.
Outcome run_both(const Run& r) {
  const Outcome whole = run(r, Feeding::kWhole);
  const Outcome bytewise = run(r, Feeding::kByteByByte);
  EXPECT_EQ(whole, bytewise) << "whole: " << whole.error << " | byte by byte: " << bytewise.error;
  return whole;
}

constexpr int64_t kAnyOffset = -1;

struct Case {
  std::string name;
  std::string input;
  bool eof = false;
  bool head_request = false;
  State state = State::kComplete;
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  uint32_t status = 0;  // 0: not checked
  std::string body;
  int64_t error_offset = kAnyOffset;
};

const std::string kOk = "HTTP/1.1 200 OK\r\n";  // 17 bytes

std::vector<Case> cases() {
  using v1::FailureClass;
  const auto fail = [](std::string name, std::string input, bool eof, FailureClass failure_class,
                       int64_t offset = kAnyOffset) {
    Case c;
    c.name = std::move(name);
    c.input = std::move(input);
    c.eof = eof;
    c.state = State::kError;
    c.failure_class = failure_class;
    c.error_offset = offset;
    return c;
  };
  const auto ok = [](std::string name, std::string input, bool eof, uint32_t status, std::string body,
                     bool head_request = false) {
    Case c;
    c.name = std::move(name);
    c.input = std::move(input);
    c.eof = eof;
    c.head_request = head_request;
    c.status = status;
    c.body = std::move(body);
    return c;
  };
  const std::string chunked_head = kOk + "Transfer-Encoding: chunked\r\n\r\n";  // 47 bytes

  return {
      // Responses that are fine.
      ok("ContentLength", kOk + "Content-Length: 5\r\nServer: test\r\n\r\nhelloIGNORED", false, 200, "hello"),
      ok("ChunkedWithExtensionsAndTrailers",
         kOk + "Transfer-Encoding: gzip, Chunked\r\n\r\n5;name=value\r\nhello\r\n6 ; ext\r\n world\r\n"
               "0\r\nExpires: never\r\nX-Trailer: 1\r\n\r\nIGNORED",
         false, 200, "hello world"),
      ok("ReadUntilClose", "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it", true, 200, "all of it"),
      ok("NonChunkedTransferEncodingReadsUntilClose", kOk + "Transfer-Encoding: gzip\r\n\r\nzz", true, 200, "zz"),
      ok("HeadRequestIgnoresContentLength", kOk + "Content-Length: 1000\r\n\r\n", false, 200, "", true),
      ok("NoContent204", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, 204, ""),
      ok("NotModified304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", false, 304, ""),
      ok("ContinueAndEarlyHintsThen200",
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + kOk +
             "Content-Length: 2\r\n\r\nhi",
         false, 200, "hi"),
      ok("EmptyReasonPhrase", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", false, 200, ""),
      ok("NoReasonPhrase", "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", false, 503, ""),
      ok("IdenticalContentLengths", kOk + "Content-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc", false, 200, "abc"),
      ok("ObsTextInValue", kOk + "X-Name: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", false, 200, ""),

      // Transport endings.
      fail("EmptyReply", "", true, v1::FAILURE_CLASS_EMPTY_REPLY, 0),
      fail("CutMidStatusLine", "HTTP/1.1 20", true, v1::FAILURE_CLASS_INCOMPLETE_HEAD, 11),
      fail("CutMidHead", kOk + "Content-Ty", true, v1::FAILURE_CLASS_INCOMPLETE_HEAD, 27),
      fail("CutBeforeFinalCrlf", kOk + "Content-Length: 0\r\n", true, v1::FAILURE_CLASS_INCOMPLETE_HEAD),
      fail("CutAfterInterimHead", "HTTP/1.1 100 Continue\r\n\r\n", true, v1::FAILURE_CLASS_INCOMPLETE_HEAD),
      fail("CutMidBody", kOk + "Content-Length: 10\r\n\r\nhello", true, v1::FAILURE_CLASS_TRUNCATED_BODY, 44),
      fail("CutMidChunk", chunked_head + "5\r\nhel", true, v1::FAILURE_CLASS_TRUNCATED_BODY, 53),
      fail("CutBeforeLastChunk", chunked_head + "5\r\nhello\r\n", true, v1::FAILURE_CLASS_TRUNCATED_BODY),
      fail("CutInTrailers", chunked_head + "0\r\nX-T: 1\r\n", true, v1::FAILURE_CLASS_TRUNCATED_BODY),

      // Not an HTTP/1.x status line: fails on the first byte that proves it.
      fail("SshBanner", "SSH-2.0-OpenSSH_9.2p1", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 0),
      fail("Http09Body", "<html><body>hi</body></html>", true, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 0),
      fail("FourDigitStatus", "HTTP/1.1 2000 OK\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 12),
      fail("TwoDigitStatus", "HTTP/1.1 20 OK\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 11),
      fail("StatusBelow100", "HTTP/1.1 099 OK\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 9),
      fail("LowerCaseVersion", "http/1.1 200 OK\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 0),
      fail("Http2", "HTTP/2 200\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 5),
      fail("Http12", "HTTP/1.2 200 OK\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 7),
      fail("StatusLineBareLf", "HTTP/1.1 200 OK\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 15),
      fail("StatusLineBareCr", "HTTP/1.1 200 OK\rX", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, 15),

      // Header syntax.
      fail("HeaderWithoutColon", kOk + "NoColonHere\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 28),
      fail("SpaceBeforeColon", kOk + "Content-Length : 5\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 31),
      fail("EmptyHeaderName", kOk + ": x\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 17),
      fail("ObsFold", kOk + "X-A: 1\r\n  continued\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 25),
      fail("NulInValue", kOk + "X-A: a\0b\r\n\r\n"s, false, v1::FAILURE_CLASS_MALFORMED_HEADER, 23),
      fail("HeaderBareLf", kOk + "X-A: 1\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 23),
      fail("HeaderBareCr", kOk + "X-A: 1\rX-B: 2\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 23),
      fail("HeadEndsWithBareLf", kOk + "X-A: 1\r\n\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER, 25),

      // Framing.
      fail("ContentLengthAndChunked", kOk + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false,
           v1::FAILURE_CLASS_BAD_FRAMING, 36),
      fail("ChunkedAndContentLength", kOk + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false,
           v1::FAILURE_CLASS_BAD_FRAMING, 45),
      fail("ConflictingContentLengths", kOk + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", false,
           v1::FAILURE_CLASS_BAD_FRAMING, 52),
      fail("ConflictingContentLengthList", kOk + "Content-Length: 5, 6\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING,
           36),
      fail("ContentLengthNotANumber", kOk + "Content-Length: 12a\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 35),
      fail("ContentLengthNegative", kOk + "Content-Length: -1\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 33),
      fail("ContentLengthEmpty", kOk + "Content-Length:\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING),
      fail("ContentLengthAbsurd", kOk + "Content-Length: 99999999999999999999999\r\n\r\n", false,
           v1::FAILURE_CLASS_BAD_FRAMING),
      fail("ChunkedNotLast", kOk + "Transfer-Encoding: chunked, gzip\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING),
      fail("BadChunkSize", chunked_head + "zz\r\nhello\r\n0\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 47),
      fail("EmptyChunkSize", chunked_head + "\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 47),
      fail("ChunkSizeOverflows", chunked_head + "fffffffffffffffff\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 63),
      fail("ChunkSizeTrailingGarbage", chunked_head + "5x\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 48),
      fail("MissingCrlfAfterChunkData", chunked_head + "5\r\nhelloX\r\n0\r\n\r\n", false,
           v1::FAILURE_CLASS_BAD_FRAMING, 55),
      fail("ChunkSizeLineBareLf", chunked_head + "5\nhello\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING, 48),
      fail("TrailerWithoutColon", chunked_head + "0\r\nbroken\r\n\r\n", false, v1::FAILURE_CLASS_BAD_FRAMING),
  };
}

class ResponseTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(ResponseTableTest, SameOutcomeWholeAndByteByByte) {
  const Case& c = GetParam();
  const Outcome out = run_both({c.input, c.eof, c.head_request});
  EXPECT_EQ(out.state, c.state) << out.error;
  EXPECT_EQ(v1::FailureClass_Name(out.failure_class), v1::FailureClass_Name(c.failure_class)) << out.error;
  if (c.state == State::kError) {
    EXPECT_FALSE(out.error.empty());
  } else {
    EXPECT_TRUE(out.error.empty()) << out.error;
    EXPECT_TRUE(out.head_complete);
    EXPECT_EQ(out.body, c.body);
    EXPECT_FALSE(out.body_capped);
  }
  if (c.status != 0) {
    EXPECT_EQ(out.status, c.status);
  }
  if (c.error_offset != kAnyOffset) {
    EXPECT_EQ(out.error_offset, static_cast<uint64_t>(c.error_offset)) << out.error;
  }
}

// Any split into two pieces must give the same result as one piece.
TEST_P(ResponseTableTest, SameOutcomeAtEverySplit) {
  const Case& c = GetParam();
  const Outcome whole = run({c.input, c.eof, c.head_request}, Feeding::kWhole);
  for (size_t split = 0; split <= c.input.size(); ++split) {
    ResponseParser parser({}, c.head_request);
    parser.feed(std::string_view(c.input).substr(0, split));
    parser.feed(std::string_view(c.input).substr(split));
    if (c.eof) parser.finish_eof();
    ASSERT_EQ(observe(parser), whole) << "split at " << split;
  }
}

INSTANTIATE_TEST_SUITE_P(Responses, ResponseTableTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// A head of exactly `total_bytes` (status line through the final CRLF),
// padded with filler fields of about 1 KB.
std::string head_of_size(size_t total_bytes) {
  const std::string start = kOk + "Content-Length: 0\r\n";
  std::string head = start;
  int n = 0;
  while (head.size() + 2 < total_bytes) {
    const std::string name = "X-Fill-" + std::to_string(n++) + ": ";
    const size_t left = total_bytes - head.size() - 2;  // before the final CRLF
    size_t value_bytes = std::min<size_t>(1000, left - std::min(left, name.size() + 2));
    // Never leave a remainder too small to hold another field.
    if (left - (name.size() + value_bytes + 2) < 40) value_bytes = left - name.size() - 2;
    head += name + std::string(value_bytes, 'a') + "\r\n";
  }
  head += "\r\n";
  return head;
}

TEST(ResponseParserLimits, HeaderBlocksUpToTheDefaultLimitPass) {
  for (size_t kb : {16, 32, 64}) {
    const std::string head = head_of_size(kb * 1024);
    ASSERT_EQ(head.size(), kb * 1024);
    const Outcome out = run_both({head});
    EXPECT_EQ(out.state, State::kComplete) << kb << " KB: " << out.error;
    EXPECT_EQ(out.header_bytes, kb * 1024);
  }
}

TEST(ResponseParserLimits, HeaderBlockExactlyAtLimitPasses) {
  const Outcome out = run_both({head_of_size(128 * 1024)});
  EXPECT_EQ(out.state, State::kComplete) << out.error;
  EXPECT_EQ(out.header_bytes, 128u * 1024);
}

TEST(ResponseParserLimits, HeaderBlockOf140KbIsTooLarge) {
  const std::string head = head_of_size(140 * 1024);
  const Outcome out = run_both({head});
  EXPECT_EQ(out.state, State::kError);
  EXPECT_EQ(out.failure_class, v1::FAILURE_CLASS_HEADERS_TOO_LARGE);
  EXPECT_EQ(out.error_offset, 128u * 1024);  // the first byte over the limit
  EXPECT_EQ(out.header_bytes, 128u * 1024 + 1);
  EXPECT_EQ(out.bytes_received, 128u * 1024 + 1);
  EXPECT_GT(out.header_count, 100u);
  EXPECT_GE(out.largest_header_bytes, 1000u);
  EXPECT_FALSE(out.head_complete);
}

// 204 so the head alone is a complete response.
std::string head_with_fields(int count) {
  std::string head = "HTTP/1.1 204 No Content\r\n";
  for (int i = 0; i < count; ++i) head += "X-F" + std::to_string(i) + ": v\r\n";
  return head + "\r\n";
}

TEST(ResponseParserLimits, ThreeHundredFieldsPassThreeHundredOneFail) {
  HttpParserLimits limits;
  limits.max_header_count = 300;
  const Outcome at_limit = run_both({head_with_fields(300), false, false, limits});
  EXPECT_EQ(at_limit.state, State::kComplete) << at_limit.error;
  EXPECT_EQ(at_limit.header_count, 300u);

  const Outcome over = run_both({head_with_fields(301), false, false, limits});
  EXPECT_EQ(over.failure_class, v1::FAILURE_CLASS_HEADERS_TOO_LARGE);
  EXPECT_EQ(over.header_count, 301u);
  EXPECT_EQ(over.error_offset, head_with_fields(300).size() - 2);  // where the 301st field starts
}

TEST(ResponseParserLimits, EndlessHeaderStreamFailsAtTheLimit) {
  ResponseParser parser;
  parser.feed(kOk);
  std::string piece;
  for (int i = 0; piece.size() < 4096; ++i) piece += "X-Endless-" + std::to_string(i) + ": " + std::string(1000, 'a') + "\r\n";
  piece.resize(4096);
  size_t fed = kOk.size();
  int pieces_until_error = 0;
  for (int i = 0; i < 256; ++i) {  // 1 MB
    parser.feed(piece);
    fed += piece.size();
    if (parser.state() == State::kError && pieces_until_error == 0) pieces_until_error = i + 1;
  }
  EXPECT_EQ(parser.failure_class(), v1::FAILURE_CLASS_HEADERS_TOO_LARGE);
  EXPECT_EQ(pieces_until_error, 32);  // 17 + 32 * 4096 > 128 KB, 17 + 31 * 4096 is not
  EXPECT_EQ(parser.error_offset(), 128u * 1024);
  EXPECT_EQ(parser.bytes_received(), 128u * 1024 + 1);  // nothing consumed after the failure
  EXPECT_LT(fed, 2u << 20);
}

TEST(ResponseParserLimits, SmallConfiguredHeaderLimit) {
  HttpParserLimits limits;
  limits.max_header_bytes = 8 * 1024;
  const Outcome out = run_both({head_of_size(16 * 1024), false, false, limits});
  EXPECT_EQ(out.failure_class, v1::FAILURE_CLASS_HEADERS_TOO_LARGE);
  EXPECT_EQ(out.error_offset, 8u * 1024);
}

TEST(ResponseParserBody, ContentLengthBodyIsCapped) {
  HttpParserLimits limits;
  limits.max_body_bytes = 10;
  const std::string head = kOk + "Content-Length: 10000000000\r\n\r\n";
  const Outcome out = run_both({head + std::string(100, 'b'), false, false, limits});
  EXPECT_EQ(out.state, State::kComplete);
  EXPECT_TRUE(out.body_capped);
  EXPECT_EQ(out.body, std::string(10, 'b'));
  EXPECT_EQ(out.bytes_received, head.size() + 10);  // the rest is left unread
}

TEST(ResponseParserBody, BodyExactlyAtCapIsNotCapped) {
  HttpParserLimits limits;
  limits.max_body_bytes = 5;
  const Outcome out = run_both({kOk + "Content-Length: 5\r\n\r\nhello", false, false, limits});
  EXPECT_EQ(out.state, State::kComplete);
  EXPECT_FALSE(out.body_capped);
  EXPECT_EQ(out.body, "hello");
}

TEST(ResponseParserBody, ChunkedAndCloseDelimitedBodiesAreCapped) {
  HttpParserLimits limits;
  limits.max_body_bytes = 4;
  const Outcome chunked =
      run_both({kOk + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", false, false, limits});
  EXPECT_EQ(chunked.state, State::kComplete);
  EXPECT_TRUE(chunked.body_capped);
  EXPECT_EQ(chunked.body, "abcd");

  const Outcome close_delimited = run_both({kOk + "\r\n" + std::string(50, 'x'), false, false, limits});
  EXPECT_EQ(close_delimited.state, State::kComplete);
  EXPECT_TRUE(close_delimited.body_capped);
  EXPECT_EQ(close_delimited.body, "xxxx");
}

TEST(ResponseParserBody, ChunkedBodyFillingTheCapExactlyStillReadsTheLastChunk) {
  HttpParserLimits limits;
  limits.max_body_bytes = 3;
  const Outcome out = run_both({kOk + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false, false, limits});
  EXPECT_EQ(out.state, State::kComplete);
  EXPECT_FALSE(out.body_capped);
  EXPECT_EQ(out.body, "abc");
}

TEST(ResponseParserBody, BytesAfterCompleteResponseAreIgnored) {
  ResponseParser parser;
  const std::string response = kOk + "Content-Length: 2\r\n\r\nhi";
  EXPECT_EQ(parser.feed(response + "HTTP/1.1 500 Next\r\n"), State::kComplete);
  EXPECT_EQ(parser.feed("more"), State::kComplete);
  EXPECT_EQ(parser.finish_eof(), State::kComplete);
  EXPECT_EQ(parser.body(), "hi");
  EXPECT_EQ(parser.bytes_received(), response.size());
}

TEST(ResponseParserHead, CountersAndHeaderLookup) {
  const std::string head = kOk +                          // 17
                           "Content-Length: 0\r\n" +      // 19
                           "Set-Cookie: a=1\r\n" +        // 17
                           "set-cookie: b=2\r\n" +        // 17
                           "X-Padded: \t  spaced  \t\r\n" +  // 24, longest line is 22
                           "SET-COOKIE: c=3\r\n" +        // 17
                           "\r\n";                        // 2
  const Outcome out = run_both({head});
  ASSERT_EQ(out.state, State::kComplete) << out.error;
  EXPECT_EQ(out.header_bytes, head.size());
  EXPECT_EQ(out.header_bytes, 113u);
  EXPECT_EQ(out.header_count, 5u);
  EXPECT_EQ(out.largest_header_bytes, 22u);
  EXPECT_EQ(out.set_cookie_count, 3u);
  EXPECT_EQ(out.http_version, "1.1");
  EXPECT_EQ(out.reason, "OK");
  ASSERT_EQ(out.headers.size(), 5u);
  EXPECT_EQ(out.headers[1], (std::pair<std::string, std::string>{"Set-Cookie", "a=1"}));
  EXPECT_EQ(out.headers[2].first, "set-cookie");  // names as sent
  EXPECT_EQ(out.headers[3].second, "spaced");     // OWS trimmed

  ResponseParser parser;
  parser.feed(head);
  EXPECT_EQ(parser.header("SET-COOKIE"), "a=1");  // first of several
  EXPECT_EQ(parser.header("x-padded"), "spaced");
  EXPECT_EQ(parser.header("cf-ray"), std::nullopt);
}

TEST(ResponseParserHead, CountersDescribeTheFinalHeadAfterInterimResponses) {
  const std::string final_head = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  const Outcome out = run_both({"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nSet-Cookie: x=1\r\n\r\n" + final_head});
  ASSERT_EQ(out.state, State::kComplete) << out.error;
  EXPECT_EQ(out.status, 404u);
  EXPECT_EQ(out.http_version, "1.0");
  EXPECT_EQ(out.reason, "Not Found");
  EXPECT_EQ(out.header_bytes, final_head.size());
  EXPECT_EQ(out.header_count, 1u);
  EXPECT_EQ(out.set_cookie_count, 0u);
}

TEST(ResponseParserHead, StatesAsBytesArrive) {
  ResponseParser parser;
  EXPECT_EQ(parser.state(), State::kHead);
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"), State::kHead);
  EXPECT_FALSE(parser.head_complete());
  EXPECT_EQ(parser.feed("\r\nab"), State::kBody);
  EXPECT_TRUE(parser.head_complete());
  EXPECT_EQ(parser.failure_class(), v1::FAILURE_CLASS_UNSPECIFIED);
  EXPECT_EQ(parser.feed("cd"), State::kComplete);
  EXPECT_EQ(parser.body_bytes(), 4u);
}

TEST(ResponseParserErrors, MessagesNameWhatIsWrong) {
  ResponseParser banner;
  banner.feed("SSH-2.0-OpenSSH_9.2p1");
  EXPECT_NE(banner.error().find("HTTP/1."), std::string::npos) << banner.error();
  EXPECT_EQ(banner.bytes_received(), 1u);  // decided on the first byte

  ResponseParser bad_length;
  bad_length.feed(kOk + "Content-Length: 12a\r\n");
  EXPECT_NE(bad_length.error().find("Content-Length"), std::string::npos) << bad_length.error();
  EXPECT_NE(bad_length.error().find("12a"), std::string::npos) << bad_length.error();

  ResponseParser nul;
  nul.feed(kOk + "X-Thing: a\0b\r\n"s);
  EXPECT_NE(nul.error().find("X-Thing"), std::string::npos) << nul.error();
  EXPECT_NE(nul.error().find("\\x00"), std::string::npos) << nul.error();
}

}  // namespace
}  // namespace vantage::probe
