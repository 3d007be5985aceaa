// The lab edge's own response reader (tools/lab/response_reader.h): every
// outcome the fake edge decides its 52x by, in one piece and byte by byte,
// and its limits at and just past the edge.

#include "tools/lab/response_reader.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace vantage::lab {
namespace {

// How the connection ends after the bytes.
enum class End { kOpen, kFin, kReset, kTimeout };

ReaderLimits small_limits() {
  ReaderLimits limits;
  limits.max_header_bytes = 200;
  limits.max_header_count = 4;
  limits.max_body_bytes = 10;
  return limits;
}

void end(ResponseReader& reader, End how) {
  switch (how) {
    case End::kOpen: break;
    case End::kFin: reader.closed(); break;
    case End::kReset: reader.reset(); break;
    case End::kTimeout: reader.timed_out(); break;
  }
}

ResponseReader whole(std::string_view bytes, End how, ReaderLimits limits = {}, bool head = false) {
  ResponseReader reader(limits, head);
  reader.feed(bytes);
  end(reader, how);
  return reader;
}

ResponseReader byte_by_byte(std::string_view bytes, End how, ReaderLimits limits = {}, bool head = false) {
  ResponseReader reader(limits, head);
  for (char c : bytes) reader.feed(std::string_view(&c, 1));
  end(reader, how);
  return reader;
}

struct Case {
  std::string name;
  std::string bytes;
  End end;
  ReadOutcome expected;
  ReaderLimits limits = {};
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Outcomes : public testing::TestWithParam<Case> {};

TEST_P(Outcomes, SameInOnePieceAndByteByByte) {
  const auto& c = GetParam();
  const auto one = whole(c.bytes, c.end, c.limits);
  EXPECT_EQ(read_outcome_name(one.outcome()), read_outcome_name(c.expected)) << one.error();
  const auto split = byte_by_byte(c.bytes, c.end, c.limits);
  EXPECT_EQ(read_outcome_name(split.outcome()), read_outcome_name(c.expected)) << split.error();
  if (c.expected == ReadOutcome::kComplete) {
    EXPECT_EQ(one.body(), split.body());
    EXPECT_EQ(one.headers(), split.headers());
  } else if (c.expected != ReadOutcome::kReading) {
    EXPECT_FALSE(one.error().empty());
    EXPECT_FALSE(split.error().empty());
  }
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

INSTANTIATE_TEST_SUITE_P(
    LabReader, Outcomes,
    testing::Values(
        Case{"content_length", kOk, End::kOpen, ReadOutcome::kComplete},
        Case{"waits_for_the_body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", End::kOpen, ReadOutcome::kReading},
        Case{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", End::kOpen,
             ReadOutcome::kComplete},
        Case{"close_delimited_ends_at_fin", "HTTP/1.0 200 OK\r\n\r\nsome body", End::kFin, ReadOutcome::kComplete},
        Case{"close_delimited_waits_for_fin", "HTTP/1.0 200 OK\r\n\r\nsome body", End::kOpen, ReadOutcome::kReading},
        Case{"non_chunked_coding_is_close_delimited", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
             End::kFin, ReadOutcome::kComplete},
        Case{"equal_length_list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", End::kOpen,
             ReadOutcome::kComplete},
        Case{"no_reason", "HTTP/1.1 204\r\n\r\n", End::kOpen, ReadOutcome::kComplete},
        Case{"obs_text_in_a_value", "HTTP/1.1 200 OK\r\nServer: \xff\xfe\xc3(\r\nContent-Length: 0\r\n\r\n",
             End::kOpen, ReadOutcome::kComplete},

        Case{"empty_reply", "", End::kFin, ReadOutcome::kEmptyReply},
        Case{"reset_before_a_byte", "", End::kReset, ReadOutcome::kReset},
        Case{"reset_mid_body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxxxx", End::kReset, ReadOutcome::kReset},
        Case{"reset_in_a_close_delimited_body", "HTTP/1.0 200 OK\r\n\r\nxx", End::kReset, ReadOutcome::kReset},

        Case{"four_digit_status", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", End::kFin,
             ReadOutcome::kMalformedStatusLine},
        Case{"status_over_599", "HTTP/1.1 600 Odd\r\n\r\n", End::kFin, ReadOutcome::kMalformedStatusLine},
        Case{"banner_fails_without_a_close", "SSH-2.0-OpenSSH_9.2", End::kOpen, ReadOutcome::kMalformedStatusLine},
        Case{"http09_body", "<html><body>ok</body></html>\n", End::kFin, ReadOutcome::kMalformedStatusLine},
        Case{"http2", "HTTP/2 200 OK\r\n\r\n", End::kOpen, ReadOutcome::kMalformedStatusLine},
        Case{"no_space_after_the_code", "HTTP/1.1 200OK\r\n\r\n", End::kOpen, ReadOutcome::kMalformedStatusLine},
        Case{"bare_lf_status_line", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", End::kOpen,
             ReadOutcome::kMalformedStatusLine},
        Case{"control_in_reason", std::string("HTTP/1.1 200 O\x01K\r\n\r\n"), End::kOpen,
             ReadOutcome::kMalformedStatusLine},

        Case{"header_without_colon", "HTTP/1.1 200 OK\r\nBroken header\r\nContent-Length: 2\r\n\r\nok", End::kFin,
             ReadOutcome::kMalformedHeader},
        Case{"space_before_colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", End::kOpen,
             ReadOutcome::kMalformedHeader},
        Case{"line_folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\n\r\n", End::kOpen, ReadOutcome::kMalformedHeader},
        Case{"empty_name", "HTTP/1.1 200 OK\r\n: v\r\n\r\n", End::kOpen, ReadOutcome::kMalformedHeader},
        Case{"control_in_value", std::string("HTTP/1.1 200 OK\r\nX-A: a") + '\0' + "z\r\n\r\n", End::kOpen,
             ReadOutcome::kMalformedHeader},
        Case{"bare_lf_header", "HTTP/1.1 200 OK\r\nX-A: 1\n\r\n", End::kOpen, ReadOutcome::kMalformedHeader},

        Case{"conflicting_length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", End::kFin,
             ReadOutcome::kBadFraming},
        Case{"length_and_chunked",
             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
             End::kFin, ReadOutcome::kBadFraming},
        Case{"length_not_a_number", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", End::kOpen,
             ReadOutcome::kBadFraming},
        Case{"chunk_size_not_hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\n\r\n0\r\n\r\n",
             End::kFin, ReadOutcome::kBadFraming},
        Case{"chunk_longer_than_its_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n",
             End::kOpen, ReadOutcome::kBadFraming},
        Case{"chunked_not_last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", End::kOpen,
             ReadOutcome::kBadFraming},
        Case{"encoding_names_nothing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", End::kOpen,
             ReadOutcome::kBadFraming},
        Case{"bad_trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", End::kOpen,
             ReadOutcome::kBadFraming},

        Case{"partial_head", "HTTP/1.1 200 OK\r\nContent-Ty", End::kFin, ReadOutcome::kTruncatedHead},
        Case{"partial_status_line", "HTTP/1.", End::kFin, ReadOutcome::kTruncatedHead},
        Case{"truncated_length_body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x'),
             End::kFin, ReadOutcome::kTruncatedBody},
        Case{"truncated_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok", End::kFin,
             ReadOutcome::kTruncatedBody},
        Case{"no_last_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", End::kFin,
             ReadOutcome::kTruncatedBody},

        Case{"timeout_before_a_byte", "", End::kTimeout, ReadOutcome::kHeadTimeout},
        Case{"timeout_inside_the_head", "HTTP/1.1 200 OK\r\nContent-Le", End::kTimeout, ReadOutcome::kHeadTimeout},
        Case{"timeout_after_a_1xx", "HTTP/1.1 100 Continue\r\n\r\n", End::kTimeout, ReadOutcome::kHeadTimeout},
        Case{"timeout_in_the_body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", End::kTimeout,
             ReadOutcome::kBodyTimeout},
        Case{"events_after_the_end_change_nothing", kOk, End::kReset, ReadOutcome::kComplete},

        // small_limits(): head 200 bytes, 4 fields, body 10 bytes.
        Case{"four_fields", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n", End::kOpen,
             ReadOutcome::kComplete, small_limits()},
        Case{"five_fields", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nContent-Length: 0\r\n\r\n",
             End::kOpen, ReadOutcome::kHeadersTooLarge, small_limits()},
        Case{"endless_header_line", "HTTP/1.1 200 OK\r\nX-Long: " + std::string(300, 'a'), End::kOpen,
             ReadOutcome::kHeadersTooLarge, small_limits()},
        Case{"endless_status_line", "HTTP/1.1 200 " + std::string(300, 'a'), End::kOpen,
             ReadOutcome::kHeadersTooLarge, small_limits()},
        Case{"length_at_the_body_limit", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", End::kOpen,
             ReadOutcome::kComplete, small_limits()},
        Case{"length_over_the_body_limit", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", End::kOpen,
             ReadOutcome::kBodyTooLarge, small_limits()},
        Case{"close_delimited_at_the_body_limit", "HTTP/1.1 200 OK\r\n\r\n0123456789", End::kFin,
             ReadOutcome::kComplete, small_limits()},
        Case{"close_delimited_over_the_body_limit", "HTTP/1.1 200 OK\r\n\r\n0123456789a", End::kOpen,
             ReadOutcome::kBodyTooLarge, small_limits()},
        Case{"chunks_over_the_body_limit",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n", End::kOpen,
             ReadOutcome::kBodyTooLarge, small_limits()},
        Case{"endless_chunk_extension",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(5000, 'x'), End::kOpen,
             ReadOutcome::kBadFraming, small_limits()}),
    [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

// A head of exactly the limit is whole; one byte more is too large, and is
// known as soon as that byte arrives.
TEST(LabReader, HeaderByteLimitIsExact) {
  const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  ReaderLimits limits;
  limits.max_header_bytes = 100;
  const std::string exact = start + std::string(100 - start.size() - end.size(), 'p') + end;
  ASSERT_EQ(exact.size(), 100u);
  EXPECT_EQ(whole(exact, End::kOpen, limits).outcome(), ReadOutcome::kComplete);
  EXPECT_EQ(byte_by_byte(exact, End::kOpen, limits).outcome(), ReadOutcome::kComplete);

  const std::string over = start + std::string(101 - start.size() - end.size(), 'p') + end;
  EXPECT_EQ(whole(over, End::kOpen, limits).outcome(), ReadOutcome::kHeadersTooLarge);
  ResponseReader reader(limits);
  reader.feed(std::string_view(over).substr(0, 100));
  EXPECT_EQ(reader.outcome(), ReadOutcome::kReading);
  reader.feed(std::string_view(over).substr(100, 1));
  EXPECT_EQ(reader.outcome(), ReadOutcome::kHeadersTooLarge);
}

TEST(LabReader, KeepsStatusVersionReasonHeadersAndBody) {
  const auto reader = whole(
      "HTTP/1.0 503 Service Unavailable\r\nX-A:  spaced \t\r\nx-b: 2\r\nContent-Length: 4\r\n\r\ndown", End::kOpen);
  ASSERT_EQ(reader.outcome(), ReadOutcome::kComplete) << reader.error();
  EXPECT_TRUE(reader.head_complete());
  EXPECT_EQ(reader.status(), 503);
  EXPECT_EQ(reader.http_version(), "1.0");
  EXPECT_EQ(reader.reason(), "Service Unavailable");
  ASSERT_EQ(reader.headers().size(), 3u);
  EXPECT_EQ(reader.headers()[0], (std::pair<std::string, std::string>{"X-A", "spaced"}));
  EXPECT_EQ(reader.header("X-B"), "2");
  EXPECT_EQ(reader.header("missing"), std::nullopt);
  EXPECT_EQ(reader.body(), "down");
  EXPECT_EQ(reader.extra_bytes(), 0u);
}

// Interim heads are skipped; the final head is the one kept, and the limits
// apply to it alone.
TEST(LabReader, SkipsInterimResponses) {
  const std::string bytes =
      "HTTP/1.1 100 Continue\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 2\r\n\r\nok";
  const auto limits = small_limits();
  for (const auto& reader : {whole(bytes, End::kOpen, limits), byte_by_byte(bytes, End::kOpen, limits)}) {
    ASSERT_EQ(reader.outcome(), ReadOutcome::kComplete) << reader.error();
    EXPECT_EQ(reader.status(), 200);
    EXPECT_EQ(reader.headers().size(), 3u);
    EXPECT_EQ(reader.header("link"), std::nullopt);
    EXPECT_EQ(reader.body(), "ok");
  }
}

TEST(LabReader, NoBodyForHeadRequests204And304And101) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  const auto reader = whole(head, End::kOpen, {}, /*head=*/true);
  EXPECT_EQ(reader.outcome(), ReadOutcome::kComplete);
  EXPECT_EQ(reader.header("content-length"), "1000");
  EXPECT_EQ(whole(head, End::kOpen).outcome(), ReadOutcome::kReading);  // the same head for a GET
  for (const char* status : {"204 No Content", "304 Not Modified", "101 Switching Protocols"}) {
    const auto r = whole(std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 5\r\n\r\n", End::kOpen);
    EXPECT_EQ(r.outcome(), ReadOutcome::kComplete) << status;
    EXPECT_TRUE(r.body().empty()) << status;
  }
}

// Broken framing headers are broken even where no body follows.
TEST(LabReader, JudgesFramingInHeadsWithoutABody) {
  const std::string conflicting = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n";
  EXPECT_EQ(whole(conflicting, End::kOpen, {}, /*head=*/true).outcome(), ReadOutcome::kBadFraming);
  EXPECT_EQ(whole("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", End::kOpen)
                .outcome(),
            ReadOutcome::kBadFraming);
  EXPECT_EQ(whole("HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\n" + kOk, End::kOpen).outcome(),
            ReadOutcome::kBadFraming);
}

TEST(LabReader, DechunksWithExtensionsAndTrailers) {
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
      "3;name=value\r\nabc\r\nA \t;x\r\n0123456789\r\n0\r\nX-Checksum: 1\r\n\r\n";
  for (const auto& reader : {whole(bytes, End::kOpen), byte_by_byte(bytes, End::kOpen)}) {
    ASSERT_EQ(reader.outcome(), ReadOutcome::kComplete) << reader.error();
    EXPECT_EQ(reader.body(), "abc0123456789");
    EXPECT_EQ(reader.header("x-checksum"), std::nullopt);  // trailers are not head fields
  }
}

// Bytes after the response (a second response, garbage) are not part of
// it, whether they came in the same read or later: the edge then does not
// reuse the connection.
TEST(LabReader, CountsBytesAfterTheResponse) {
  auto reader = whole(kOk + "HTTP/1.1 200 OK\r\n", End::kOpen);
  EXPECT_EQ(reader.outcome(), ReadOutcome::kComplete);
  EXPECT_EQ(reader.body(), "ok");
  EXPECT_EQ(reader.extra_bytes(), 17u);
  reader.feed("xyz");
  EXPECT_EQ(reader.extra_bytes(), 20u);
  EXPECT_EQ(reader.closed(), ReadOutcome::kComplete);
}

// Every split of one response into two reads gives the same result as one read.
TEST(LabReader, EveryTwoWaySplitReadsTheSame) {
  const std::string bytes =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
      "4;e=1\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n";
  for (size_t at = 0; at <= bytes.size(); ++at) {
    ResponseReader reader(ReaderLimits{});
    reader.feed(std::string_view(bytes).substr(0, at));
    reader.feed(std::string_view(bytes).substr(at));
    ASSERT_EQ(reader.outcome(), ReadOutcome::kComplete) << "split at " << at << ": " << reader.error();
    EXPECT_EQ(reader.body(), "wikipedia") << "split at " << at;
    EXPECT_EQ(reader.header("x-a"), "b") << "split at " << at;
    EXPECT_EQ(reader.extra_bytes(), 0u) << "split at " << at;
  }
}

// A big head in the edge's default limits, fed in reads like the edge's,
// ends exactly where the lab origin's /fault/headers says it should.
TEST(LabReader, DefaultLimitIs128KiBOfHead) {
  // Fields of 1000 bytes, the last one padded to make the head `size` bytes.
  auto head_of = [](size_t size) {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
    for (int i = 0; size - head.size() - 2 > 2000; ++i) {
      const std::string name = "X-F" + std::to_string(i) + ": ";
      head += name + std::string(1000 - name.size() - 2, 'a') + "\r\n";
    }
    const std::string last = "X-Last: ";
    head += last + std::string(size - head.size() - 2 - last.size() - 2, 'a') + "\r\n";
    return head + "\r\n";
  };
  const std::string exact = head_of(128 * 1024);
  const std::string over = head_of(128 * 1024 + 1);
  ASSERT_EQ(exact.size(), 128u * 1024);
  ASSERT_EQ(over.size(), 128u * 1024 + 1);
  const std::vector<std::pair<std::string, ReadOutcome>> cases = {{exact, ReadOutcome::kComplete},
                                                                   {over, ReadOutcome::kHeadersTooLarge}};
  for (const auto& [bytes, expected] : cases) {
    ResponseReader reader(ReaderLimits{});
    for (size_t at = 0; at < bytes.size(); at += 64 * 1024) reader.feed(std::string_view(bytes).substr(at, 64 * 1024));
    EXPECT_EQ(reader.outcome(), expected) << bytes.size() << ": " << reader.error();
  }
}

}  // namespace
}  // namespace vantage::lab
