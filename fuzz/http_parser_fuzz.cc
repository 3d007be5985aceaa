// libFuzzer target for vantage::probe::ResponseParser (probe/http_parser.h).
//
// Input layout (all optional; shorter inputs use defaults):
//   byte 0   flags: bit0 HEAD request, bit1 small limits, bit2 byte-at-a-time
//   byte 1   small max_header_bytes selector (16 + b*4)
//   byte 2   small max_body_bytes selector (0..255) and max_header_count (1 + b % 16)
//   byte 3   seed of the split points
//   rest     the response bytes as they arrive from the peer
//
// The response is parsed twice, once fed whole and once fed in pieces whose
// sizes derive from the seed, then finish_eof(); both runs must agree and
// satisfy the invariants documented in the header. Violations trap.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "probe/http_parser.h"

namespace {

using vantage::probe::HttpParserLimits;
using vantage::probe::ResponseParser;

constexpr size_t kPrefix = 4;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool terminal(ResponseParser::State s) {
  return s == ResponseParser::State::kComplete || s == ResponseParser::State::kError;
}

void check_final(const ResponseParser& p, const HttpParserLimits& limits, size_t input_size) {
  // finish_eof() always ends the parse.
  check(terminal(p.state()));
  // kError iff a failure class is set ("UNSPECIFIED while nothing is wrong").
  check((p.state() == ResponseParser::State::kError) ==
        (p.failure_class() != vantage::v1::FAILURE_CLASS_UNSPECIFIED));
  // Every failure names what went wrong; success carries no message.
  check((p.state() == ResponseParser::State::kError) == !p.error().empty());
  // The head counter is checked before each byte is judged: one byte of slack.
  check(p.header_bytes() <= static_cast<uint64_t>(limits.max_header_bytes) + 1);
  check(p.header_count() <= limits.max_header_count + 1);
  check(p.body().size() <= limits.max_body_bytes);
  check(p.body_bytes() == p.body().size());
  check(p.bytes_received() <= input_size);
  // The failing offset lies inside what was received (EOF: == received).
  if (p.state() == ResponseParser::State::kError) check(p.error_offset() <= p.bytes_received());
  // A capped body is exactly at the cap.
  if (p.body_capped()) check(p.body().size() == limits.max_body_bytes);
  // A completed parse has a complete final head with a sane status.
  if (p.state() == ResponseParser::State::kComplete) {
    check(p.head_complete());
    check(p.status() >= 100 && p.status() <= 999);
    check(p.http_version() == "1.0" || p.http_version() == "1.1");
  }
  check(p.headers().size() <= p.header_count());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t flags = 0, hdr_sel = 0, body_sel = 0, seed = 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (size >= kPrefix) {
    flags = data[0];
    hdr_sel = data[1];
    body_sel = data[2];
    seed = data[3];
    input.remove_prefix(kPrefix);
  }
  const bool head_request = (flags & 1) != 0;
  HttpParserLimits limits;
  if (flags & 2) {
    limits.max_header_bytes = 16 + static_cast<uint32_t>(hdr_sel) * 4;
    limits.max_body_bytes = body_sel;
    limits.max_header_count = 1 + body_sel % 16;
  }

  // Whole.
  ResponseParser whole(limits, head_request);
  const auto fed_state = whole.feed(input);
  check(whole.bytes_received() <= input.size());
  // If the parse ended before the input did, it consumed up to the end of
  // the response or the failing byte; if it did not end, it consumed all.
  if (!terminal(fed_state)) check(whole.bytes_received() == input.size());
  whole.finish_eof();
  check_final(whole, limits, input.size());
  // finish_eof() again and more bytes are no-ops.
  {
    const auto status_before = whole.state();
    const auto received_before = whole.bytes_received();
    check(whole.finish_eof() == status_before);
    check(whole.feed("HTTP/1.1 200 OK\r\n\r\n") == status_before);
    check(whole.bytes_received() == received_before);
  }

  // Split: piece sizes from a small LCG seeded by the prefix.
  ResponseParser split(limits, head_request);
  uint32_t rng = 0x9e3779b9u ^ (static_cast<uint32_t>(seed) * 2654435761u) ^ flags;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t piece;
    if (flags & 4) {
      piece = 1;
    } else {
      rng = rng * 1103515245u + 12345u;
      const uint32_t r = rng >> 16;
      piece = (r & 3) == 0 ? 1 : 1 + (r >> 2) % 64;  // many single bytes, some larger runs
      if ((r & 0xff) == 0xff) piece = input.size();  // occasionally the rest
    }
    piece = std::min(piece, input.size() - pos);
    split.feed(input.substr(pos, piece));
    // An empty feed is always harmless.
    split.feed(std::string_view());
    pos += piece;
  }
  split.finish_eof();
  check_final(split, limits, input.size());

  // Split vs whole: the parse must not depend on how the bytes arrived.
  check(split.state() == whole.state());
  check(split.failure_class() == whole.failure_class());
  check(split.error_offset() == whole.error_offset());
  check(split.body() == whole.body());
  check(split.body_capped() == whole.body_capped());
  check(split.bytes_received() == whole.bytes_received());
  check(split.head_complete() == whole.head_complete());
  check(split.status() == whole.status());
  check(split.headers() == whole.headers());
  check(split.header_bytes() == whole.header_bytes());
  check(split.header_count() == whole.header_count());
  return 0;
}
