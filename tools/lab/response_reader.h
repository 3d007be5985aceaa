#pragma once
// The fake edge's own reader for one HTTP/1.1 response from the origin.
//
// The lab is the oracle the probe is tested against, so it must not share the
// probe's parser (probe/http_parser): a bug there would be a bug here too and
// the tests would agree with it. This one is written separately and kept
// deliberately plain: the head is taken a whole line at a time, the body by
// its framing, and the first thing wrong ends the read with an outcome that
// says what it was. It is not fast; it does not need to be.
//
// What it accepts (RFC 9112, as strictly as the edge needs):
// - a status line "HTTP/1.0 " or "HTTP/1.1 ", three digits from 100 to 599,
//   then nothing or a space and a reason without control characters;
// - field lines "name: value", the name a token, no space before the colon,
//   no line folding, no control characters but tab in the value;
// - every line ends in CRLF; the head (status line to the blank line, CRLFs
//   included) at most `max_header_bytes`, at most `max_header_count` fields;
// - interim 1xx heads (not 101) are skipped: the final head follows;
// - the body: none for HEAD, 1xx, 204 and 304; else chunked when the last
//   Transfer-Encoding is chunked, delimited by close for another coding,
//   Content-Length bytes (a list of equal values allowed) or, without either,
//   until the close. Both headers at once, Content-Lengths that differ, or
//   "chunked" that is not last is bad framing, in any head, even one without
//   a body. At most `max_body_bytes`: a longer body fails when its length,
//   chunk or bytes first say so.
//
// Bytes come in through feed() in any split, one at a time included; how the
// connection ended comes through closed(), reset() and timed_out(). Nothing
// here throws, and nothing is kept beyond the limits.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vantage::lab {

struct ReaderLimits {
  uint32_t max_header_bytes = 128 * 1024;
  uint32_t max_header_count = 300;
  uint64_t max_body_bytes = 64ull * 1024 * 1024;
};

enum class ReadOutcome {
  kReading,              // not over yet: more bytes are needed
  kComplete,             // a whole response
  kEmptyReply,           // closed before any byte
  kReset,                // reset (or otherwise failed) before the response was whole
  kMalformedStatusLine,  // the first line is not an HTTP/1.x status line
  kMalformedHeader,      // a field line of the head is not valid
  kBadFraming,           // where the body ends is unclear or broken (lengths, chunks, trailers)
  kHeadersTooLarge,      // the head is over max_header_bytes or max_header_count
  kBodyTooLarge,         // the body is over max_body_bytes
  kTruncatedHead,        // closed inside the head
  kTruncatedBody,        // closed before the end of the body
  kHeadTimeout,          // no whole head before the read timed out (the edge's 524)
  kBodyTimeout,          // the body stalled after the head (the edge's 520)
};

std::string_view read_outcome_name(ReadOutcome outcome);

class ResponseReader {
 public:
  // `head_request`: the request was HEAD, so the response has no body.
  explicit ResponseReader(ReaderLimits limits, bool head_request = false);

  // Bytes as they arrive. Bytes after the end of the response are not part
  // of it: they are counted in extra_bytes().
  ReadOutcome feed(std::string_view bytes);
  // How the connection ended; each settles a read still going and is
  // ignored once the outcome is known.
  ReadOutcome closed();     // the origin closed its side (FIN)
  ReadOutcome reset();      // the connection was reset or failed
  ReadOutcome timed_out();  // the read timeout passed

  ReadOutcome outcome() const { return outcome_; }
  // What went wrong, for a person; empty while nothing has.
  const std::string& error() const { return error_; }

  // The final head; valid once head_complete().
  bool head_complete() const { return head_complete_; }
  int status() const { return status_; }
  const std::string& http_version() const { return version_; }  // "1.0" or "1.1"
  const std::string& reason() const { return reason_; }
  // In order, names as sent, values without surrounding whitespace.
  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  // The first field named `name`, in any case.
  std::optional<std::string_view> header(std::string_view name) const;

  const std::string& body() const { return body_; }  // de-chunked
  // Bytes received after the response ended (a connection with any is not reused).
  uint64_t extra_bytes() const { return extra_bytes_; }

 private:
  enum class Part { kHead, kFixedBody, kCloseBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };

  // Each takes what it can from pending_ and returns false when it needs more bytes.
  bool read_head_line();
  bool read_fixed_body();
  bool read_close_body();
  bool read_chunk_size();
  bool read_chunk_data();
  bool read_chunk_data_end();
  bool read_trailer_line();

  // The next line of pending_ without its CRLF, or nullopt when it has not
  // all arrived (or the read failed: a line without CRLF, or over `limit`).
  std::optional<std::string> take_line(uint64_t limit, ReadOutcome too_long, ReadOutcome bad_ending);
  void status_line(std::string_view line);
  void field_line(std::string_view line);
  // Where the body ends, as the head says.
  struct Framing {
    enum Kind { kLength, kChunked, kClose } kind;
    uint64_t length;  // kLength
  };
  void end_of_head();
  // The head's framing, or nullopt after failing the read when it is bad.
  std::optional<Framing> body_framing();
  bool keep_body(std::string_view bytes);
  void finish();
  void fail(ReadOutcome outcome, std::string error);

  const ReaderLimits limits_;
  const bool head_request_;

  ReadOutcome outcome_ = ReadOutcome::kReading;
  std::string error_;
  Part part_ = Part::kHead;
  std::string pending_;  // received, not yet taken
  size_t scanned_ = 0;   // how much of pending_ is known to hold no LF
  uint64_t received_ = 0;

  uint64_t head_bytes_ = 0;  // of the current head, lines taken so far
  bool status_seen_ = false;
  bool head_complete_ = false;
  int status_ = 0;
  std::string version_;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;

  uint64_t remaining_ = 0;  // of the Content-Length body, or of the current chunk
  uint64_t trailer_bytes_ = 0;
  std::string body_;
  uint64_t extra_bytes_ = 0;
};

}  // namespace vantage::lab
