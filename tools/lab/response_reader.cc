#include "tools/lab/response_reader.h"

#include <algorithm>

#include "tools/lab/ascii.h"

namespace vantage::lab {
namespace {

// A chunk-size line is a size and maybe extensions; nothing real comes near this.
constexpr uint64_t kMaxChunkLineBytes = 4096;
// 16 hex digits fill 64 bits; a longer size is refused rather than overflowed.
constexpr size_t kMaxChunkSizeDigits = 16;
// 18 decimal digits cannot overflow 64 bits, and are far past any body limit.
constexpr size_t kMaxLengthDigits = 18;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_digit(char c) {
  if (is_digit(c)) return c - '0';
  const char l = ascii_lower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

// RFC 9110 token characters: what a field name is made of.
bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Control characters other than tab; bytes 0x80-0xff (obs-text) are allowed.
bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

bool has_control(std::string_view s) { return std::any_of(s.begin(), s.end(), is_control); }

// Why `line` is not a valid "name: value" field line, or empty when it is.
std::string field_line_problem(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return "a line starts with whitespace (line folding)";
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return "a line has no colon";
  const auto name = line.substr(0, colon);
  if (name.empty()) return "a field has an empty name";
  if (!std::all_of(name.begin(), name.end(), is_token_char)) {
    return "field name \"" + std::string(name.substr(0, 64)) + "\" is not a token";
  }
  if (has_control(line.substr(colon + 1))) {
    return "the value of \"" + std::string(name.substr(0, 64)) + "\" has a control character";
  }
  return {};
}

// Every value of `name` in `headers`, split at commas and trimmed.
std::vector<std::string_view> list_values(const std::vector<std::pair<std::string, std::string>>& headers,
                                          std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& [field, value] : headers) {
    if (!iequals(field, name)) continue;
    std::string_view rest = value;
    for (;;) {
      const auto comma = rest.find(',');
      out.push_back(trim_ows(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

}  // namespace

std::string_view read_outcome_name(ReadOutcome outcome) {
  switch (outcome) {
    case ReadOutcome::kReading: return "reading";
    case ReadOutcome::kComplete: return "complete";
    case ReadOutcome::kEmptyReply: return "empty_reply";
    case ReadOutcome::kReset: return "reset";
    case ReadOutcome::kMalformedStatusLine: return "malformed_status_line";
    case ReadOutcome::kMalformedHeader: return "malformed_header";
    case ReadOutcome::kBadFraming: return "bad_framing";
    case ReadOutcome::kHeadersTooLarge: return "headers_too_large";
    case ReadOutcome::kBodyTooLarge: return "body_too_large";
    case ReadOutcome::kTruncatedHead: return "truncated_head";
    case ReadOutcome::kTruncatedBody: return "truncated_body";
    case ReadOutcome::kHeadTimeout: return "head_timeout";
    case ReadOutcome::kBodyTimeout: return "body_timeout";
  }
  return "unknown";
}

ResponseReader::ResponseReader(ReaderLimits limits, bool head_request) : limits_(limits), head_request_(head_request) {}

std::optional<std::string_view> ResponseReader::header(std::string_view name) const {
  for (const auto& [field, value] : headers_) {
    if (iequals(field, name)) return value;
  }
  return std::nullopt;
}

ReadOutcome ResponseReader::feed(std::string_view bytes) {
  if (outcome_ != ReadOutcome::kReading) {
    if (outcome_ == ReadOutcome::kComplete) extra_bytes_ += bytes.size();
    return outcome_;
  }
  received_ += bytes.size();
  pending_.append(bytes);
  for (bool more = true; more && outcome_ == ReadOutcome::kReading;) {
    switch (part_) {
      case Part::kHead: more = read_head_line(); break;
      case Part::kFixedBody: more = read_fixed_body(); break;
      case Part::kCloseBody: more = read_close_body(); break;
      case Part::kChunkSize: more = read_chunk_size(); break;
      case Part::kChunkData: more = read_chunk_data(); break;
      case Part::kChunkDataEnd: more = read_chunk_data_end(); break;
      case Part::kTrailers: more = read_trailer_line(); break;
      case Part::kDone: more = false; break;
    }
  }
  return outcome_;
}

ReadOutcome ResponseReader::closed() {
  if (outcome_ != ReadOutcome::kReading) return outcome_;
  if (received_ == 0) {
    fail(ReadOutcome::kEmptyReply, "closed before any byte of a response");
  } else if (part_ == Part::kHead) {
    fail(ReadOutcome::kTruncatedHead, "closed inside the response head");
  } else if (part_ == Part::kCloseBody) {
    finish();  // the close is how this body ends
  } else {
    fail(ReadOutcome::kTruncatedBody, "closed before the end of the body");
  }
  return outcome_;
}

ReadOutcome ResponseReader::reset() {
  if (outcome_ == ReadOutcome::kReading) fail(ReadOutcome::kReset, "connection reset before the response was whole");
  return outcome_;
}

ReadOutcome ResponseReader::timed_out() {
  if (outcome_ != ReadOutcome::kReading) return outcome_;
  if (head_complete_) {
    fail(ReadOutcome::kBodyTimeout, "the body stalled");
  } else {
    fail(ReadOutcome::kHeadTimeout, "no whole response head in time");
  }
  return outcome_;
}

std::optional<std::string> ResponseReader::take_line(uint64_t limit, ReadOutcome too_long, ReadOutcome bad_ending) {
  const auto lf = pending_.find('\n', scanned_);
  if (lf == std::string::npos) {
    scanned_ = pending_.size();
    if (pending_.size() > limit) fail(too_long, "a line goes past the limit of " + std::to_string(limit) + " bytes");
    return std::nullopt;
  }
  if (lf + 1 > limit) {
    fail(too_long, "a line goes past the limit of " + std::to_string(limit) + " bytes");
    return std::nullopt;
  }
  if (lf == 0 || pending_[lf - 1] != '\r') {
    fail(bad_ending, "a line ends with a bare LF; CRLF is required");
    return std::nullopt;
  }
  std::string line = pending_.substr(0, lf - 1);
  pending_.erase(0, lf + 1);
  scanned_ = 0;
  return line;
}

bool ResponseReader::read_head_line() {
  const uint64_t room = limits_.max_header_bytes - std::min<uint64_t>(head_bytes_, limits_.max_header_bytes);
  const auto bad_ending = status_seen_ ? ReadOutcome::kMalformedHeader : ReadOutcome::kMalformedStatusLine;
  const auto line = take_line(room, ReadOutcome::kHeadersTooLarge, bad_ending);
  if (!line) {
    // A banner or an HTTP/0.9 body is refused at its first byte, not after a
    // line end that may never come.
    constexpr std::string_view kStart = "HTTP/1.";
    const size_t n = std::min(pending_.size(), kStart.size());
    if (outcome_ == ReadOutcome::kReading && !status_seen_ && pending_.compare(0, n, kStart.substr(0, n)) != 0) {
      fail(ReadOutcome::kMalformedStatusLine, "the response does not start with \"HTTP/1.\"");
    }
    return false;
  }
  head_bytes_ += line->size() + 2;
  if (!status_seen_) {
    status_line(*line);
  } else if (line->empty()) {
    end_of_head();
  } else {
    field_line(*line);
  }
  return true;
}

void ResponseReader::status_line(std::string_view line) {
  // "HTTP/1.1 200" is 12 bytes; a reason follows after one space.
  const bool valid = line.size() >= 12 && line.starts_with("HTTP/1.") && (line[7] == '0' || line[7] == '1') &&
                     line[8] == ' ' && line[9] >= '1' && line[9] <= '5' && is_digit(line[10]) && is_digit(line[11]) &&
                     (line.size() == 12 || line[12] == ' ') && !has_control(line.substr(12));
  if (!valid) {
    fail(ReadOutcome::kMalformedStatusLine, "not a status line: \"" + std::string(line.substr(0, 64)) + "\"");
    return;
  }
  status_seen_ = true;
  version_ = std::string(line.substr(5, 3));
  status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  reason_ = line.size() > 13 ? std::string(line.substr(13)) : std::string();
}

void ResponseReader::field_line(std::string_view line) {
  if (auto problem = field_line_problem(line); !problem.empty()) {
    fail(ReadOutcome::kMalformedHeader, problem);
    return;
  }
  if (headers_.size() + 1 > limits_.max_header_count) {
    fail(ReadOutcome::kHeadersTooLarge, "more than " + std::to_string(limits_.max_header_count) + " header fields");
    return;
  }
  const auto colon = line.find(':');
  headers_.emplace_back(std::string(line.substr(0, colon)), std::string(trim_ows(line.substr(colon + 1))));
}

void ResponseReader::end_of_head() {
  // Framing headers are judged in every head, even one that has no body.
  const auto framing = body_framing();
  if (!framing) return;
  // An interim response (100 Continue, 103 Early Hints): the real one follows.
  // 101 is final: HTTP ends on this connection.
  if (status_ < 200 && status_ != 101) {
    head_bytes_ = 0;
    status_seen_ = false;
    status_ = 0;
    version_.clear();
    reason_.clear();
    headers_.clear();
    return;
  }
  head_complete_ = true;
  if (head_request_ || status_ < 200 || status_ == 204 || status_ == 304) {
    finish();
    return;
  }
  switch (framing->kind) {
    case Framing::kChunked: part_ = Part::kChunkSize; break;
    case Framing::kClose: part_ = Part::kCloseBody; break;
    case Framing::kLength:
      if (framing->length > limits_.max_body_bytes) {
        fail(ReadOutcome::kBodyTooLarge, "Content-Length is over the body limit of " +
                                             std::to_string(limits_.max_body_bytes) + " bytes");
        return;
      }
      remaining_ = framing->length;
      part_ = Part::kFixedBody;
      if (remaining_ == 0) finish();
      break;
  }
}

std::optional<ResponseReader::Framing> ResponseReader::body_framing() {
  const bool has_encoding = header("transfer-encoding").has_value();
  const bool has_length = header("content-length").has_value();
  if (has_encoding && has_length) {
    fail(ReadOutcome::kBadFraming, "both Transfer-Encoding and Content-Length");
    return std::nullopt;
  }
  if (has_encoding) {
    std::vector<std::string> codings;
    for (auto coding : list_values(headers_, "transfer-encoding")) {
      coding = trim_ows(coding.substr(0, coding.find(';')));  // parameters do not change the coding
      if (coding.empty()) continue;
      std::string lower;
      for (char c : coding) lower += ascii_lower(c);
      codings.push_back(std::move(lower));
    }
    if (codings.empty()) {
      fail(ReadOutcome::kBadFraming, "Transfer-Encoding names no coding");
      return std::nullopt;
    }
    // chunked must come last, and once: otherwise the end of the body is unclear.
    if (std::find(codings.begin(), codings.end() - 1, "chunked") != codings.end() - 1) {
      fail(ReadOutcome::kBadFraming, "Transfer-Encoding applies a coding after chunked");
      return std::nullopt;
    }
    // Another coding last: the body ends when the connection does (RFC 9112 6.3).
    return Framing{codings.back() == "chunked" ? Framing::kChunked : Framing::kClose, 0};
  }
  if (has_length) {
    std::optional<uint64_t> length;
    for (const auto value : list_values(headers_, "content-length")) {
      if (value.empty() || value.size() > kMaxLengthDigits || !std::all_of(value.begin(), value.end(), is_digit)) {
        fail(ReadOutcome::kBadFraming, "Content-Length \"" + std::string(value.substr(0, 64)) + "\" is not a length");
        return std::nullopt;
      }
      uint64_t n = 0;
      for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
      if (length && *length != n) {
        fail(ReadOutcome::kBadFraming, "Content-Length values differ");
        return std::nullopt;
      }
      length = n;
    }
    return Framing{Framing::kLength, *length};
  }
  return Framing{Framing::kClose, 0};
}

bool ResponseReader::keep_body(std::string_view bytes) {
  if (body_.size() + bytes.size() > limits_.max_body_bytes) {
    fail(ReadOutcome::kBodyTooLarge,
         "the body is over the limit of " + std::to_string(limits_.max_body_bytes) + " bytes");
    return false;
  }
  body_.append(bytes);
  return true;
}

bool ResponseReader::read_fixed_body() {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, pending_.size()));
  body_.append(pending_, 0, n);  // the length was checked against the limit
  pending_.erase(0, n);
  remaining_ -= n;
  if (remaining_ == 0) finish();
  return false;
}

bool ResponseReader::read_close_body() {
  if (keep_body(pending_)) pending_.clear();
  return false;
}

bool ResponseReader::read_chunk_size() {
  const auto line = take_line(kMaxChunkLineBytes, ReadOutcome::kBadFraming, ReadOutcome::kBadFraming);
  if (!line) return false;
  const std::string_view text = *line;
  size_t digits = 0;
  uint64_t size = 0;
  for (; digits < text.size() && hex_digit(text[digits]) >= 0; ++digits) {
    if (digits == kMaxChunkSizeDigits) {
      fail(ReadOutcome::kBadFraming, "chunk size has more than 16 hex digits");
      return false;
    }
    size = size * 16 + static_cast<uint64_t>(hex_digit(text[digits]));
  }
  // After the size: nothing, or extensions (";name=value"), maybe after whitespace.
  const std::string_view rest = trim_ows(text.substr(digits));
  const bool valid = digits > 0 && (text.size() == digits || (rest.starts_with(';') && !has_control(rest)));
  if (!valid) {
    fail(ReadOutcome::kBadFraming, "invalid chunk-size line \"" + std::string(text.substr(0, 64)) + "\"");
    return false;
  }
  if (size == 0) {
    part_ = Part::kTrailers;
    return true;
  }
  if (size > limits_.max_body_bytes - body_.size()) {
    fail(ReadOutcome::kBodyTooLarge, "a chunk takes the body over the limit");
    return false;
  }
  remaining_ = size;
  part_ = Part::kChunkData;
  return true;
}

bool ResponseReader::read_chunk_data() {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, pending_.size()));
  body_.append(pending_, 0, n);  // the chunk's size was checked against the limit
  pending_.erase(0, n);
  remaining_ -= n;
  if (remaining_ > 0) return false;
  part_ = Part::kChunkDataEnd;
  return true;
}

bool ResponseReader::read_chunk_data_end() {
  constexpr std::string_view kCrlf = "\r\n";
  const size_t n = std::min(pending_.size(), kCrlf.size());
  if (pending_.compare(0, n, kCrlf.substr(0, n)) != 0) {
    fail(ReadOutcome::kBadFraming, "chunk data is not followed by CRLF: the chunk is longer than its size");
    return false;
  }
  if (n < kCrlf.size()) return false;
  pending_.erase(0, kCrlf.size());
  part_ = Part::kChunkSize;
  return true;
}

bool ResponseReader::read_trailer_line() {
  // Trailers share the field syntax and the head's size limit; a bad one
  // breaks the chunked framing.
  const uint64_t room = limits_.max_header_bytes - std::min<uint64_t>(trailer_bytes_, limits_.max_header_bytes);
  const auto line = take_line(room, ReadOutcome::kBadFraming, ReadOutcome::kBadFraming);
  if (!line) return false;
  trailer_bytes_ += line->size() + 2;
  if (line->empty()) {
    finish();
    return false;
  }
  if (auto problem = field_line_problem(*line); !problem.empty()) {
    fail(ReadOutcome::kBadFraming, "trailer: " + problem);
    return false;
  }
  return true;
}

void ResponseReader::finish() {
  outcome_ = ReadOutcome::kComplete;
  part_ = Part::kDone;
  extra_bytes_ += pending_.size();
  pending_.clear();
}

void ResponseReader::fail(ReadOutcome outcome, std::string error) {
  outcome_ = outcome;
  error_ = std::move(error);
  part_ = Part::kDone;
  pending_.clear();
}

}  // namespace vantage::lab
