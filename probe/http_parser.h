#pragma once
// A strict, incremental, bounded parser for one HTTP/1.1 response (RFC 9112).
//
// Why strict: a lenient client such as curl reports a clean 200 for a response
// cut in the middle of its headers, which hides exactly the origin faults the
// probe exists to find (see docs/diagnosis.md, sections 1 and 3).
// Every way a response can be wrong ends in one failure class, a message that
// names what was wrong, and the byte offset where it went wrong.
//
// Why incremental and bounded: bytes arrive in any split, even one at a time,
// and the peer may send an endless head or a 10 GB body. The parser keeps a
// scan position (linear in its input), buffers at most about
// `max_header_bytes` of head, keeps at most `max_body_bytes` of body and
// declares the parse complete when that cap is reached, so the prober can
// stop reading.
//
// Errors are values: nothing here throws.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

struct HttpParserLimits {
  uint32_t max_header_bytes = 128 * 1024;  // whole header block incl. status line; also bounds trailers
  uint32_t max_header_count = 300;         // more fields than this -> headers_too_large
  uint64_t max_body_bytes = 1024 * 1024;   // body kept at most this; reaching it completes the parse
};

class ResponseParser {
 public:
  // `head_request`: the request was HEAD, so the response has no body
  // whatever its Content-Length says.
  explicit ResponseParser(HttpParserLimits limits = {}, bool head_request = false);

  enum class State { kHead, kBody, kComplete, kError };

  // Feeds bytes as they arrive. Returns the state after them. Bytes fed after
  // the response is complete (or failed) are ignored.
  State feed(std::string_view bytes);
  // The peer closed the connection (FIN). No bytes -> empty_reply; inside
  // the head -> incomplete_head; inside a Content-Length or chunked body ->
  // truncated_body; a body delimited by close -> complete.
  State finish_eof();

  State state() const { return state_; }
  // FAILURE_CLASS_UNSPECIFIED while nothing is wrong.
  v1::FailureClass failure_class() const { return failure_class_; }
  // What is wrong, for a person (names the header, the byte, the limit).
  const std::string& error() const { return error_; }
  // Offset in the stream of the byte where parsing failed (for EOF failures:
  // the number of bytes received, where more were expected).
  uint64_t error_offset() const { return error_offset_; }

  // Facts about the final (non-1xx) head; valid once head_complete().
  bool head_complete() const { return head_complete_; }
  uint32_t status() const { return status_; }
  const std::string& http_version() const { return http_version_; }  // "1.0" or "1.1"
  const std::string& reason() const { return reason_; }
  // In order, names as sent, values without surrounding whitespace.
  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  // The first field named `name` (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;

  // Counters of the current head (the final one once head_complete()). When
  // the head fails they describe it up to the failing byte, so a
  // headers_too_large failure reports how big it got.
  uint32_t header_bytes() const { return header_bytes_; }  // status line, field lines, CRLFs, final CRLF
  uint32_t header_count() const { return header_count_; }
  uint32_t largest_header_bytes() const { return largest_header_bytes_; }  // longest "name: value" line, no CRLF
  uint32_t set_cookie_count() const { return set_cookie_count_; }

  const std::string& body() const { return body_; }  // decoded (de-chunked), at most max_body_bytes
  uint64_t body_bytes() const { return body_.size(); }
  // The cap was reached before the body was known to be complete.
  bool body_capped() const { return body_capped_; }

  // Bytes consumed: up to the end of the response, or up to and including
  // the byte that failed it.
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  // Where in the response the next byte belongs.
  enum class Phase {
    kStatusLine,
    kFieldLine,
    kFixedBody,       // Content-Length
    kCloseBody,       // until the connection closes
    kChunkSize,       // hex digits
    kChunkSizeSpace,  // whitespace after the size, before ";"
    kChunkExt,        // ";..." up to CR
    kChunkSizeLf,     // LF ending the chunk-size line
    kChunkData,
    kChunkDataCr,  // CRLF after the chunk data
    kChunkDataLf,
    kTrailerLine,
  };

  // Each consumes bytes from the front of `bytes` (at least one) and returns
  // how many. The byte at bytes[0] is at stream offset bytes_received_.
  size_t step(std::string_view bytes);
  void status_line_byte(char c);
  void field_line_byte(char c, bool trailer);
  void field_line_end(char c, bool trailer);
  bool field_name_byte(char c, bool trailer);
  static v1::FailureClass field_failure_class(bool trailer);
  std::string quoted_field_name() const;
  void field_line_complete();
  void head_complete_line();
  void chunk_byte(char c);
  void chunk_data_end_byte(char c);
  void chunk_size_byte(char c);
  void chunk_size_line_end(char c);
  size_t take_body(std::string_view bytes, uint64_t available_in_frame);

  // Framing headers are checked as each field line completes, so the error
  // points at the line that made the framing bad.
  void check_content_length(std::string_view value, uint64_t value_offset);
  void check_transfer_encoding(std::string_view value, uint64_t value_offset);

  void start_head();
  void start_body();
  void complete();
  void fail(v1::FailureClass failure_class, std::string message, uint64_t offset);
  void fail_here(v1::FailureClass failure_class, std::string message) {
    fail(failure_class, std::move(message), bytes_received_);
  }

  const HttpParserLimits limits_;
  const bool head_request_;

  State state_ = State::kHead;
  Phase phase_ = Phase::kStatusLine;
  v1::FailureClass failure_class_ = v1::FAILURE_CLASS_UNSPECIFIED;
  std::string error_;
  uint64_t error_offset_ = 0;
  uint64_t bytes_received_ = 0;

  // The line being scanned (status, field or trailer line), without CRLF.
  std::string line_;
  uint64_t line_offset_ = 0;  // stream offset of line_[0]
  bool line_cr_ = false;      // saw the CR, the LF must follow
  bool line_colon_ = false;   // field line: the name has ended

  bool head_complete_ = false;
  uint32_t status_ = 0;
  std::string http_version_;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  uint32_t header_bytes_ = 0;
  uint32_t header_count_ = 0;
  uint32_t largest_header_bytes_ = 0;
  uint32_t set_cookie_count_ = 0;
  uint32_t trailer_bytes_ = 0;

  // Framing learned from the head.
  std::optional<uint64_t> content_length_;
  bool has_transfer_encoding_ = false;
  std::string final_coding_;  // last transfer coding, lower case

  uint64_t frame_remaining_ = 0;  // of the Content-Length body, or of the current chunk
  uint64_t chunk_size_ = 0;
  uint32_t chunk_size_digits_ = 0;
  uint32_t chunk_line_bytes_ = 0;

  std::string body_;
  bool body_capped_ = false;
};

}  // namespace vantage::probe
