#include "probe/http_parser.h"

#include <algorithm>
#include <limits>

#include "common/text.h"

namespace vantage::probe {
namespace {

constexpr std::string_view kVersionPrefix = "HTTP/1.";
// A chunk-size line is a size and extensions; nothing legitimate comes close
// to this, and without a bound an endless extension would never fail.
constexpr uint32_t kMaxChunkLineBytes = 4096;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 tchar: the characters allowed in a field name.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Control characters other than HTAB are never allowed in a field value or
// reason phrase; obs-text (0x80-0xFF) is.
bool is_forbidden_ctl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t leading_ows(std::string_view s) { return std::min(s.find_first_not_of(" \t"), s.size()); }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Bytes from the wire quoted for a message: a banner or garbage must not put
// control characters (or megabytes) into logs.
std::string quoted(std::string_view bytes, size_t max_bytes = 64) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    const auto u = static_cast<unsigned char>(bytes[i]);
    if (u < 0x20 || u >= 0x7f || bytes[i] == '"' || bytes[i] == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += bytes[i];
    }
  }
  if (bytes.size() > max_bytes) out += "...";
  out += "\"";
  return out;
}

std::string byte_name(char c) { return quoted(std::string_view(&c, 1)); }

}  // namespace

ResponseParser::ResponseParser(HttpParserLimits limits, bool head_request)
    : limits_(limits), head_request_(head_request) {}

std::optional<std::string_view> ResponseParser::header(std::string_view name) const {
  for (const auto& [field_name, value] : headers_) {
    if (iequals_ascii(field_name, name)) return value;
  }
  return std::nullopt;
}

ResponseParser::State ResponseParser::feed(std::string_view bytes) {
  while (!bytes.empty() && (state_ == State::kHead || state_ == State::kBody)) {
    const size_t used = step(bytes);
    bytes_received_ += used;
    bytes.remove_prefix(used);
  }
  return state_;
}

ResponseParser::State ResponseParser::finish_eof() {
  if (state_ == State::kComplete || state_ == State::kError) return state_;
  if (bytes_received_ == 0) {
    fail_here(v1::FAILURE_CLASS_EMPTY_REPLY, "connection closed before any byte of the response");
    return state_;
  }
  switch (phase_) {
    case Phase::kStatusLine:
    case Phase::kFieldLine:
      fail_here(v1::FAILURE_CLASS_INCOMPLETE_HEAD, "connection closed inside the response head, after " +
                                                       std::to_string(header_bytes_) + " bytes of it");
      break;
    case Phase::kCloseBody:
      complete();
      break;
    case Phase::kFixedBody:
      fail_here(v1::FAILURE_CLASS_TRUNCATED_BODY,
                "connection closed after " + std::to_string(body_.size()) + " of " +
                    std::to_string(content_length_.value_or(0)) + " body bytes (Content-Length)");
      break;
    case Phase::kChunkData:
      fail_here(v1::FAILURE_CLASS_TRUNCATED_BODY, "connection closed inside a chunk, " +
                                                      std::to_string(frame_remaining_) + " bytes short");
      break;
    case Phase::kTrailerLine:
      fail_here(v1::FAILURE_CLASS_TRUNCATED_BODY, "connection closed inside the trailers of a chunked body");
      break;
    default:
      fail_here(v1::FAILURE_CLASS_TRUNCATED_BODY,
                "connection closed inside a chunked body, before the last chunk");
      break;
  }
  return state_;
}

size_t ResponseParser::step(std::string_view bytes) {
  const char c = bytes.front();
  switch (phase_) {
    case Phase::kStatusLine:
    case Phase::kFieldLine:
      // Counted before the syntax is judged, so an endless head fails at the
      // limit whatever it contains, and the buffer never outgrows the limit.
      if (++header_bytes_ > limits_.max_header_bytes) {
        largest_header_bytes_ = std::max<uint32_t>(largest_header_bytes_, line_.size());
        fail_here(v1::FAILURE_CLASS_HEADERS_TOO_LARGE,
                  "response head is larger than the limit of " + std::to_string(limits_.max_header_bytes) +
                      " bytes (" + std::to_string(header_count_) + " fields so far)");
        return 1;
      }
      if (phase_ == Phase::kStatusLine) {
        status_line_byte(c);
      } else {
        field_line_byte(c, /*trailer=*/false);
      }
      return 1;
    case Phase::kTrailerLine:
      if (++trailer_bytes_ > limits_.max_header_bytes) {
        fail_here(v1::FAILURE_CLASS_BAD_FRAMING, "trailer section of the chunked body is larger than " +
                                                     std::to_string(limits_.max_header_bytes) + " bytes");
        return 1;
      }
      field_line_byte(c, /*trailer=*/true);
      return 1;
    case Phase::kFixedBody:
    case Phase::kChunkData:
      return take_body(bytes, frame_remaining_);
    case Phase::kCloseBody:
      return take_body(bytes, std::numeric_limits<uint64_t>::max());
    case Phase::kChunkSize:
    case Phase::kChunkSizeSpace:
    case Phase::kChunkExt:
    case Phase::kChunkSizeLf:
    case Phase::kChunkDataCr:
    case Phase::kChunkDataLf:
      chunk_byte(c);
      return 1;
  }
  return 1;
}

void ResponseParser::status_line_byte(char c) {
  constexpr auto kClass = v1::FAILURE_CLASS_MALFORMED_STATUS_LINE;
  const size_t position = line_.size();
  if (line_cr_) {
    if (c != '\n') {
      fail(kClass, "status line has a CR not followed by LF", bytes_received_ - 1);
      return;
    }
    http_version_ = line_.substr(5, 3);
    status_ = static_cast<uint32_t>((line_[9] - '0') * 100 + (line_[10] - '0') * 10 + (line_[11] - '0'));
    reason_ = line_.size() > 13 ? line_.substr(13) : std::string();
    line_.clear();
    line_cr_ = false;
    line_offset_ = bytes_received_ + 1;
    phase_ = Phase::kFieldLine;
    return;
  }
  if (c == '\n') {
    fail_here(kClass, "status line " + quoted(line_) + " ends with a bare LF; CRLF is required");
    return;
  }
  // Each position is judged as soon as its byte arrives, so a banner or an
  // HTTP/0.9 body fails on its first wrong byte instead of waiting for a
  // newline that may never come.
  std::string problem;
  if (position < kVersionPrefix.size()) {
    if (c != kVersionPrefix[position]) problem = "response does not start with \"HTTP/1.\"";
  } else if (position == 7) {
    if (c != '0' && c != '1') problem = "unsupported HTTP version (only HTTP/1.0 and HTTP/1.1)";
  } else if (position == 8) {
    if (c != ' ') problem = "expected a single space after the HTTP version";
  } else if (position == 9) {
    if (c < '1' || c > '5') problem = "status code must be three digits from 100 to 599";
  } else if (position <= 11) {
    if (!is_digit(c)) problem = "status code must be three digits from 100 to 599";
  } else if (position == 12) {
    if (is_digit(c)) {
      problem = "status code has more than three digits";
    } else if (c == '\r') {
      line_cr_ = true;  // no reason phrase at all is allowed
      return;
    } else if (c != ' ') {
      problem = "expected a space after the status code";
    }
  } else if (c == '\r') {
    line_cr_ = true;
    return;
  } else if (is_forbidden_ctl(c)) {
    problem = "control character in the reason phrase";
  }
  if (!problem.empty()) {
    line_.push_back(c);
    fail_here(kClass, problem + ": status line begins " + quoted(line_) + ", offending byte " + byte_name(c));
    return;
  }
  line_.push_back(c);
}

void ResponseParser::field_line_byte(char c, bool trailer) {
  if (line_cr_) {
    field_line_end(c, trailer);
    return;
  }
  const auto failure_class = field_failure_class(trailer);
  const std::string_view kind = trailer ? "trailer" : "header";
  if (c == '\n') {
    fail_here(failure_class,
              std::string(kind) + " line " + quoted_field_name() + " ends with a bare LF; CRLF is required");
    return;
  }
  if (c == '\r') {
    if (!line_.empty() && !line_colon_) {
      fail_here(failure_class, std::string(kind) + " line " + quoted(line_) + " has no colon");
      return;
    }
    line_cr_ = true;
    return;
  }
  if (line_.empty() && is_ows(c)) {
    const std::string previous = trailer || headers_.empty() ? std::string() : " (after " + quoted(headers_.back().first) + ")";
    fail_here(failure_class, std::string(kind) + " line starts with whitespace" + previous +
                                 ": obsolete line folding is not allowed");
    return;
  }
  if (!line_colon_) {
    if (!field_name_byte(c, trailer)) return;
  } else if (is_forbidden_ctl(c)) {
    fail_here(failure_class,
              "control character " + byte_name(c) + " in the value of " + std::string(kind) + " " + quoted_field_name());
    return;
  }
  line_.push_back(c);
}

// Trailers share the field syntax, but a bad trailer means the chunked
// framing is broken, not the head.
v1::FailureClass ResponseParser::field_failure_class(bool trailer) {
  return trailer ? v1::FAILURE_CLASS_BAD_FRAMING : v1::FAILURE_CLASS_MALFORMED_HEADER;
}

// The field line's name as far as it goes, quoted for a message.
std::string ResponseParser::quoted_field_name() const {
  const auto colon = line_.find(':');
  return quoted(colon == std::string::npos ? std::string_view(line_) : std::string_view(line_).substr(0, colon));
}

// The LF after a field line's CR: the end of the line, or of the head (or
// trailers) when the line is empty.
void ResponseParser::field_line_end(char c, bool trailer) {
  if (c != '\n') {
    fail(field_failure_class(trailer),
         std::string(trailer ? "trailer" : "header") + " line " + quoted_field_name() + " has a CR not followed by LF",
         bytes_received_ - 1);
    return;
  }
  if (!line_.empty()) {
    field_line_complete();
  } else if (trailer) {
    complete();
  } else {
    head_complete_line();
  }
}

// A byte of a field name (before the colon). False when it failed the parse.
bool ResponseParser::field_name_byte(char c, bool trailer) {
  const auto failure_class = field_failure_class(trailer);
  const std::string_view kind = trailer ? "trailer" : "header";
  if (c == ':') {
    if (line_.empty()) {
      fail_here(failure_class, std::string(kind) + " line has an empty field name");
      return false;
    }
    line_colon_ = true;
  } else if (is_ows(c)) {
    fail_here(failure_class, "whitespace between " + std::string(kind) + " name " + quoted(line_) + " and its colon");
    return false;
  } else if (!is_tchar(c)) {
    fail_here(failure_class, "invalid byte " + byte_name(c) + " in " + std::string(kind) + " name " + quoted(line_));
    return false;
  }
  return true;
}

void ResponseParser::field_line_complete() {
  const bool trailer = phase_ == Phase::kTrailerLine;
  const size_t colon = line_.find(':');
  const std::string_view raw_value = std::string_view(line_).substr(colon + 1);
  const std::string_view value = trim_ows(raw_value);
  const uint64_t value_offset = line_offset_ + colon + 1 + leading_ows(raw_value);
  if (!trailer) {
    ++header_count_;
    largest_header_bytes_ = std::max<uint32_t>(largest_header_bytes_, line_.size());
    if (header_count_ > limits_.max_header_count) {
      fail(v1::FAILURE_CLASS_HEADERS_TOO_LARGE,
           "response has more than " + std::to_string(limits_.max_header_count) + " header fields",
           line_offset_);
      return;
    }
    const std::string_view name = std::string_view(line_).substr(0, colon);
    if (iequals_ascii(name, "set-cookie")) ++set_cookie_count_;
    if (iequals_ascii(name, "content-length")) check_content_length(value, value_offset);
    if (iequals_ascii(name, "transfer-encoding")) check_transfer_encoding(value, value_offset);
    if (state_ == State::kError) return;
    headers_.emplace_back(std::string(name), std::string(value));
  }
  line_.clear();
  line_cr_ = false;
  line_colon_ = false;
  line_offset_ = bytes_received_ + 1;
}

void ResponseParser::check_content_length(std::string_view value, uint64_t value_offset) {
  constexpr auto kClass = v1::FAILURE_CLASS_BAD_FRAMING;
  if (has_transfer_encoding_) {
    fail(kClass, "Content-Length " + quoted(value) + " together with Transfer-Encoding", line_offset_);
    return;
  }
  // A list ("5, 5") is tolerated only when every element is the same number.
  size_t start = 0;
  while (true) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string_view raw = value.substr(start, comma - start);
    const std::string_view element = trim_ows(raw);
    const uint64_t element_offset = value_offset + start + leading_ows(raw);
    if (element.empty()) {
      fail(kClass, "empty Content-Length value in " + quoted(value), element_offset);
      return;
    }
    uint64_t length = 0;
    for (size_t i = 0; i < element.size(); ++i) {
      if (!is_digit(element[i])) {
        fail(kClass, "Content-Length " + quoted(value) + " is not a number (byte " + byte_name(element[i]) + ")",
             element_offset + i);
        return;
      }
      // 18 digits is far beyond any real body and cannot overflow.
      if (i >= 18) {
        fail(kClass, "Content-Length " + quoted(value) + " is absurdly large", element_offset + i);
        return;
      }
      length = length * 10 + static_cast<uint64_t>(element[i] - '0');
    }
    if (content_length_ && *content_length_ != length) {
      fail(kClass,
           "conflicting Content-Length values " + std::to_string(*content_length_) + " and " + std::to_string(length),
           element_offset);
      return;
    }
    content_length_ = length;
    if (comma == value.size()) return;
    start = comma + 1;
  }
}

void ResponseParser::check_transfer_encoding(std::string_view value, uint64_t value_offset) {
  constexpr auto kClass = v1::FAILURE_CLASS_BAD_FRAMING;
  if (content_length_) {
    fail(kClass, "Transfer-Encoding " + quoted(value) + " together with Content-Length", line_offset_);
    return;
  }
  has_transfer_encoding_ = true;
  bool any_coding = false;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = std::min(value.find(',', start), value.size());
    std::string_view coding = value.substr(start, comma - start);
    coding = trim_ows(coding.substr(0, coding.find(';')));  // parameters do not change the coding
    if (!coding.empty()) {
      // chunked must be applied last and only once, or the body's end is
      // ambiguous.
      if (final_coding_ == "chunked") {
        fail(kClass, "Transfer-Encoding " + quoted(value) + " applies a coding after chunked", value_offset + start);
        return;
      }
      final_coding_.clear();
      for (char c : coding) final_coding_ += ascii_lower(c);
      any_coding = true;
    }
    start = comma + 1;
  }
  if (!any_coding) fail(kClass, "Transfer-Encoding names no coding", value_offset);
}

void ResponseParser::head_complete_line() {
  // 1xx responses (100 Continue, 103 Early Hints) are interim: the real
  // response follows, and the counters must describe that one. 101 ends
  // HTTP on this connection, so it is final.
  if (status_ >= 100 && status_ < 200 && status_ != 101) {
    start_head();
    return;
  }
  head_complete_ = true;
  start_body();
}

void ResponseParser::start_head() {
  line_.clear();
  line_cr_ = false;
  line_colon_ = false;
  line_offset_ = bytes_received_ + 1;
  status_ = 0;
  http_version_.clear();
  reason_.clear();
  headers_.clear();
  header_bytes_ = 0;
  header_count_ = 0;
  largest_header_bytes_ = 0;
  set_cookie_count_ = 0;
  content_length_.reset();
  has_transfer_encoding_ = false;
  final_coding_.clear();
  phase_ = Phase::kStatusLine;
}

void ResponseParser::start_body() {
  state_ = State::kBody;
  line_.clear();
  line_.shrink_to_fit();  // the head buffer may have been large
  if (head_request_ || status_ < 200 || status_ == 204 || status_ == 304) {
    complete();
    return;
  }
  if (has_transfer_encoding_) {
    // A response whose final coding is not chunked is delimited by close
    // (RFC 9112 section 6.3).
    phase_ = final_coding_ == "chunked" ? Phase::kChunkSize : Phase::kCloseBody;
  } else if (content_length_) {
    if (*content_length_ == 0) {
      complete();
      return;
    }
    frame_remaining_ = *content_length_;
    phase_ = Phase::kFixedBody;
  } else {
    phase_ = Phase::kCloseBody;
  }
  if (phase_ != Phase::kChunkSize && limits_.max_body_bytes == 0) {
    body_capped_ = true;
    complete();
  }
}

size_t ResponseParser::take_body(std::string_view bytes, uint64_t available_in_frame) {
  const uint64_t room = limits_.max_body_bytes - body_.size();
  const size_t kept = static_cast<size_t>(std::min<uint64_t>({bytes.size(), available_in_frame, room}));
  body_.append(bytes.data(), kept);
  if (phase_ != Phase::kCloseBody) frame_remaining_ -= kept;

  if (phase_ == Phase::kFixedBody && frame_remaining_ == 0) {
    complete();
  } else if (phase_ == Phase::kChunkData && frame_remaining_ == 0) {
    phase_ = Phase::kChunkDataCr;
  } else if (body_.size() >= limits_.max_body_bytes) {
    // More body is coming and we keep no more: the prober stops reading here.
    body_capped_ = true;
    complete();
  }
  return kept;
}

void ResponseParser::chunk_byte(char c) {
  if (phase_ == Phase::kChunkDataCr || phase_ == Phase::kChunkDataLf) {
    chunk_data_end_byte(c);
    return;
  }
  if (++chunk_line_bytes_ > kMaxChunkLineBytes) {
    fail_here(v1::FAILURE_CLASS_BAD_FRAMING,
              "chunk-size line is longer than " + std::to_string(kMaxChunkLineBytes) + " bytes");
    return;
  }
  switch (phase_) {
    case Phase::kChunkSize: chunk_size_byte(c); return;
    case Phase::kChunkSizeSpace:
      // Whitespace after the size is allowed only before an extension.
      if (c == ';') {
        phase_ = Phase::kChunkExt;
      } else if (!is_ows(c)) {
        fail_here(v1::FAILURE_CLASS_BAD_FRAMING, "invalid byte " + byte_name(c) + " after chunk size");
      }
      return;
    case Phase::kChunkExt:
      if (c == '\r') {
        phase_ = Phase::kChunkSizeLf;
      } else if (is_forbidden_ctl(c)) {
        fail_here(v1::FAILURE_CLASS_BAD_FRAMING, "control character " + byte_name(c) + " in a chunk extension");
      }
      return;
    case Phase::kChunkSizeLf: chunk_size_line_end(c); return;
    default: return;
  }
}

// The CRLF after a chunk's data.
void ResponseParser::chunk_data_end_byte(char c) {
  const char expected = phase_ == Phase::kChunkDataCr ? '\r' : '\n';
  if (c != expected) {
    fail_here(v1::FAILURE_CLASS_BAD_FRAMING, "chunk data is not followed by CRLF (got " + byte_name(c) +
                                                 "); the chunk is longer than its size says");
    return;
  }
  if (phase_ == Phase::kChunkDataCr) {
    phase_ = Phase::kChunkDataLf;
    return;
  }
  phase_ = Phase::kChunkSize;
  chunk_size_ = 0;
  chunk_size_digits_ = 0;
  chunk_line_bytes_ = 0;
}

void ResponseParser::chunk_size_byte(char c) {
  constexpr auto kClass = v1::FAILURE_CLASS_BAD_FRAMING;
  const int digit = hex_value(c);
  if (digit >= 0) {
    if (chunk_size_ > (std::numeric_limits<uint64_t>::max() >> 4)) {
      fail_here(kClass, "chunk size overflows 64 bits");
      return;
    }
    chunk_size_ = (chunk_size_ << 4) | static_cast<uint64_t>(digit);
    ++chunk_size_digits_;
  } else if (chunk_size_digits_ == 0) {
    fail_here(kClass, "chunk size must start with a hex digit, got " + byte_name(c));
  } else if (c == ';') {
    phase_ = Phase::kChunkExt;
  } else if (is_ows(c)) {
    phase_ = Phase::kChunkSizeSpace;
  } else if (c == '\r') {
    phase_ = Phase::kChunkSizeLf;
  } else {
    fail_here(kClass, "invalid byte " + byte_name(c) + " after chunk size");
  }
}

// The LF ending a chunk-size line: the chunk's data, or the trailers after
// the last chunk.
void ResponseParser::chunk_size_line_end(char c) {
  if (c != '\n') {
    fail(v1::FAILURE_CLASS_BAD_FRAMING, "chunk-size line has a CR not followed by LF", bytes_received_ - 1);
    return;
  }
  if (chunk_size_ == 0) {
    phase_ = Phase::kTrailerLine;
    line_.clear();
    line_cr_ = false;
    line_colon_ = false;
    line_offset_ = bytes_received_ + 1;
    trailer_bytes_ = 0;
    return;
  }
  frame_remaining_ = chunk_size_;
  phase_ = Phase::kChunkData;
  if (body_.size() >= limits_.max_body_bytes) {
    body_capped_ = true;
    complete();
  }
}

void ResponseParser::complete() { state_ = State::kComplete; }

void ResponseParser::fail(v1::FailureClass failure_class, std::string message, uint64_t offset) {
  state_ = State::kError;
  failure_class_ = failure_class;
  error_ = std::move(message);
  error_offset_ = offset;
}

}  // namespace vantage::probe
