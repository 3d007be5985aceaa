#include "probe/edge.h"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/colo.h"
#include "common/text.h"

namespace vantage::probe {
namespace {

// Marker searches look at most this much of a body. Cloudflare's own pages are
// a few KB; the cap keeps the work per response bounded even if the prober's
// own cap is raised.
constexpr size_t kScanLimit = 1 << 20;
// Cloudflare's JSON errors are well under 2 KB. Anything bigger is not one, and
// parsing it would only cost memory.
constexpr size_t kJsonLimit = 64 << 10;
// Strings copied from a body into the evidence (stored, shown to people).
constexpr size_t kTextLimit = 128;
// A trace's loc is a country code; a little room for what else may come.
constexpr size_t kLocBytes = 16;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// Digits only (no sign, no spaces), value <= max.
std::optional<uint32_t> parse_uint(std::string_view s, uint32_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value > max) return std::nullopt;
  return value;
}

// Leading run of at most `max_len` digits at the start of `s`, as a number.
std::optional<uint32_t> leading_number(std::string_view s, size_t min_len, size_t max_len) {
  size_t n = 0;
  while (n < s.size() && n <= max_len && is_digit(s[n])) ++n;
  if (n < min_len || n > max_len) return std::nullopt;
  return parse_uint(s.substr(0, n), 99'999);
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool is_5xx(uint32_t status) { return status >= 500 && status <= 599; }

// A code found in a body: a 5xx names the edge status, a 1xxx is Cloudflare's
// finer error (1016 behind a 530) and leaves the edge code at the HTTP status.
void set_codes(uint32_t code, uint32_t status, v1::EdgeEvidence* evidence) {
  if (is_5xx(code)) {
    evidence->set_edge_code(code);
  } else {
    evidence->set_edge_code(status);
    if (code >= 1000 && code <= 1999) evidence->set_edge_error_code(code);
  }
}

bool is_json_content_type(std::string_view content_type) {
  auto media = trim_ascii(content_type.substr(0, content_type.find(';')));
  return iequals_ascii(media, "application/json") || iequals_ascii(media, "application/problem+json");
}

// A JSON number or a string of digits (seen both ways in the wild).
std::optional<uint32_t> json_uint(const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    auto v = value.get<uint64_t>();
    if (v <= UINT32_MAX) return static_cast<uint32_t>(v);
  } else if (value.is_number_integer()) {
    auto v = value.get<int64_t>();
    if (v >= 0 && v <= INT32_MAX) return static_cast<uint32_t>(v);
  } else if (value.is_string()) {
    return parse_uint(trim_ascii(value.get_ref<const std::string&>()), UINT32_MAX);
  }
  return std::nullopt;
}

std::string json_text(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  // JSON escapes can carry NUL and other control characters.
  return safe_text(it->get_ref<const std::string&>(), kTextLimit);
}

// Rule 1: Cloudflare's structured error (RFC 9457 members plus its own).
bool match_json(const EdgeResponse& response, v1::EdgeEvidence* evidence,
                std::optional<uint32_t>* retry_after) {
  if (!is_json_content_type(response.content_type)) return false;
  if (response.body.size() > kJsonLimit) return false;
  // Cheap filter before building a DOM out of arbitrary JSON.
  if (response.body.find("cloudflare_error") == std::string_view::npos) return false;
  auto doc = nlohmann::json::parse(response.body.begin(), response.body.end(), nullptr,
                                   /*allow_exceptions=*/false);
  if (!doc.is_object()) return false;  // also covers a parse error (discarded)
  auto flag = doc.find("cloudflare_error");
  if (flag == doc.end() || !flag->is_boolean() || !flag->get<bool>()) return false;

  evidence->set_rule(v1::EDGE_RULE_JSON);
  evidence->set_edge_generated(true);
  std::optional<uint32_t> code;
  if (auto it = doc.find("error_code"); it != doc.end()) code = json_uint(*it);
  set_codes(code.value_or(response.status), response.status, evidence);
  evidence->set_error_name(json_text(doc, "error_name"));
  evidence->set_error_category(json_text(doc, "error_category"));
  if (evidence->ray_id().empty()) {
    // The body repeats the ray id; useful when a proxy in between ate the header.
    auto ray = json_text(doc, "ray_id");
    if (!ray.empty() && ray.size() <= 64 && std::all_of(ray.begin(), ray.end(), is_hex)) {
      evidence->set_ray_id(ray);
    }
  }
  if (retry_after != nullptr) {
    if (auto it = doc.find("retry_after"); it != doc.end()) *retry_after = json_uint(*it);
  }
  return true;
}

// The status box with `id` in Cloudflare's template is the one in error when
// its own tag carries the class cf-error-source. Looking inside the tag (not
// anywhere in the page) matters: the template's inline CSS also mentions
// .cf-error-source.
bool box_in_error(std::string_view html, std::string_view id) {
  constexpr size_t kMaxTag = 2048;
  for (size_t pos = html.find(id); pos != std::string_view::npos; pos = html.find(id, pos + 1)) {
    size_t open = html.rfind('<', pos);
    size_t close = html.find('>', pos);
    if (open == std::string_view::npos || close == std::string_view::npos) continue;
    if (close - open > kMaxTag) continue;
    // Inside one tag: no '>' between its '<' and the id (else it is text or CSS).
    if (html.substr(open, pos - open).find('>') != std::string_view::npos) continue;
    auto tag = html.substr(open, close - open);
    // Only the element whose id this is (not a link or a CSS rule naming it).
    if (tag.find("id=") == std::string_view::npos) continue;
    return tag.find("cf-error-source") != std::string_view::npos;
  }
  return false;
}

// "Error code 520" (5xx template), or the 1xxx template's
// <span class="cf-error-code">1016</span>.
std::optional<uint32_t> template_code(std::string_view html) {
  for (std::string_view marker : {std::string_view("Error code "), std::string_view("cf-error-code\">")}) {
    for (size_t pos = html.find(marker); pos != std::string_view::npos;
         pos = html.find(marker, pos + 1)) {
      if (auto code = leading_number(html.substr(pos + marker.size()), 3, 4)) return code;
    }
  }
  return std::nullopt;
}

// Rule 2: Cloudflare's branded HTML error page.
bool match_template(const EdgeResponse& response, std::string_view html,
                    v1::EdgeEvidence* evidence) {
  if (html.find("cf-error-details") == std::string_view::npos) return false;
  auto code = template_code(html);
  if (!code) return false;

  evidence->set_rule(v1::EDGE_RULE_HTML_TEMPLATE);
  set_codes(*code, response.status, evidence);
  if (box_in_error(html, "cf-browser-status")) {
    evidence->set_error_source(v1::ERROR_SOURCE_BROWSER);
  } else if (box_in_error(html, "cf-cloudflare-status")) {
    evidence->set_error_source(v1::ERROR_SOURCE_CLOUDFLARE);
  } else if (box_in_error(html, "cf-host-status")) {
    evidence->set_error_source(v1::ERROR_SOURCE_HOST);
  }
  // A branded 502/504 blaming the host is Cloudflare dressing up the origin's
  // own 502/504; a branded 52x is always the edge's verdict, whatever box.
  bool origin_answered = (evidence->edge_code() == 502 || evidence->edge_code() == 504) &&
                         evidence->error_source() == v1::ERROR_SOURCE_HOST;
  evidence->set_edge_generated(!origin_answered);
  return true;
}

// Rule 3: the whole body is "error code: NNN".
bool match_compact(const EdgeResponse& response, v1::EdgeEvidence* evidence) {
  constexpr std::string_view kPrefix = "error code:";
  auto body = trim_ascii(response.body);
  if (body.size() > kPrefix.size() + 16 || !body.starts_with(kPrefix)) return false;
  auto code = parse_uint(trim_ascii(body.substr(kPrefix.size())), 9'999);
  if (!code || *code < 100) return false;

  evidence->set_rule(v1::EDGE_RULE_COMPACT);
  evidence->set_edge_generated(true);
  set_codes(*code, response.status, evidence);
  return true;
}

// Rule 4: the bare nginx-style page Cloudflare's own proxies emit.
bool match_unbranded(const EdgeResponse& response, std::string_view html,
                     v1::EdgeEvidence* evidence) {
  if (html.find("<center>cloudflare</center>") == std::string_view::npos &&
      html.find("<center>cloudflare-nginx</center>") == std::string_view::npos) {
    return false;
  }
  evidence->set_rule(v1::EDGE_RULE_UNBRANDED);
  evidence->set_edge_generated(true);
  evidence->set_edge_code(response.status);
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// AddressRanges

std::optional<AddressRanges> AddressRanges::parse(std::string_view text, std::string* error) {
  AddressRanges ranges;
  auto fail = [&](size_t line_number, std::string_view line, const std::string& why) {
    if (error != nullptr) {
      *error = "line " + std::to_string(line_number) + ": " + why + " in '" +
               std::string(line.substr(0, 80)) + "'";
    }
    return std::nullopt;
  };

  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t eol = text.find('\n');
    auto raw = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto line = trim_ascii(raw.substr(0, raw.find('#')));
    if (line.empty()) continue;

    size_t slash = line.find('/');
    if (slash == std::string_view::npos) return fail(line_number, line, "expected address/prefix");
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(std::string(line.substr(0, slash)), ec);
    if (ec) return fail(line_number, line, "bad address");
    auto prefix = parse_uint(line.substr(slash + 1), address.is_v4() ? 32 : 128);
    if (!prefix) return fail(line_number, line, "bad prefix length");

    if (address.is_v4()) {
      V4 range;
      range.mask = *prefix == 0 ? 0 : ~uint32_t{0} << (32 - *prefix);
      range.network = address.to_v4().to_uint();
      if ((range.network & ~range.mask) != 0) return fail(line_number, line, "host bits set");
      ranges.v4_.push_back(range);
    } else {
      V6 range;
      range.network = address.to_v6().to_bytes();
      range.prefix = *prefix;
      for (unsigned bit = range.prefix; bit < 128; ++bit) {
        if (range.network[bit / 8] & (0x80u >> (bit % 8))) {
          return fail(line_number, line, "host bits set");
        }
      }
      ranges.v6_.push_back(range);
    }
  }
  return ranges;
}

void AddressRanges::add(const AddressRanges& other) {
  v4_.insert(v4_.end(), other.v4_.begin(), other.v4_.end());
  v6_.insert(v6_.end(), other.v6_.begin(), other.v6_.end());
}

bool AddressRanges::contains(const boost::asio::ip::address& address) const {
  std::optional<uint32_t> v4;
  if (address.is_v4()) {
    v4 = address.to_v4().to_uint();
  } else if (address.to_v6().is_v4_mapped()) {
    // Dual-stack sockets report v4 peers as ::ffff:a.b.c.d.
    auto b = address.to_v6().to_bytes();
    v4 = uint32_t{b[12]} << 24 | uint32_t{b[13]} << 16 | uint32_t{b[14]} << 8 | uint32_t{b[15]};
  }
  if (v4) {
    return std::any_of(v4_.begin(), v4_.end(),
                       [&](const V4& r) { return (*v4 & r.mask) == r.network; });
  }
  auto bytes = address.to_v6().to_bytes();
  return std::any_of(v6_.begin(), v6_.end(), [&](const V6& r) {
    unsigned full = r.prefix / 8;
    if (!std::equal(r.network.begin(), r.network.begin() + full, bytes.begin())) return false;
    unsigned rest = r.prefix % 8;
    if (rest == 0) return true;
    auto mask = static_cast<uint8_t>(0xFFu << (8 - rest));
    return (bytes[full] & mask) == r.network[full];
  });
}

// ---------------------------------------------------------------------------
// cf-ray

std::optional<CfRay> parse_cf_ray(std::string_view value) {
  value = trim_ascii(value);
  size_t dash = value.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto id = value.substr(0, dash);
  auto colo = value.substr(dash + 1);
  if (id.empty() || id.size() > 64 || !std::all_of(id.begin(), id.end(), is_hex)) {
    return std::nullopt;
  }
  if (colo.size() < 3 || colo.size() > 8 || !std::all_of(colo.begin(), colo.end(), is_upper)) {
    return std::nullopt;
  }
  return CfRay{ascii_lower(id), std::string(colo)};
}

// ---------------------------------------------------------------------------
// Edge or origin

v1::EdgeEvidence recognise_edge(const EdgeResponse& response) {
  return recognise_edge(response, nullptr);
}

v1::EdgeEvidence recognise_edge(const EdgeResponse& response,
                                std::optional<uint32_t>* retry_after_seconds) {
  v1::EdgeEvidence evidence;
  if (retry_after_seconds != nullptr) retry_after_seconds->reset();
  if (response.cf_ray) {
    if (auto ray = parse_cf_ray(*response.cf_ray)) {
      evidence.set_ray_id(ray->ray_id);
      evidence.set_colo(colo_or_other(ray->colo));  // a label: known colos only
    }
  }
  evidence.set_via_cloudflare(response.cf_ray.has_value() || response.address_in_cloudflare);
  if (!is_5xx(response.status)) return evidence;

  auto html = response.body.substr(0, kScanLimit);
  if (match_json(response, &evidence, retry_after_seconds)) return evidence;
  if (match_template(response, html, &evidence)) return evidence;
  if (match_compact(response, &evidence)) return evidence;
  if (match_unbranded(response, html, &evidence)) return evidence;

  // No marker: the code seen at the edge is still recorded, since it is what
  // the diagnosis table and the edge_code label key on.
  evidence.set_edge_code(response.status);
  evidence.set_edge_generated(false);
  bool cloudflare_code = response.status >= 520 && response.status <= 530;
  evidence.set_rule(cloudflare_code && response.cf_ray ? v1::EDGE_RULE_NO_MARKERS
                                                        : v1::EDGE_RULE_ORIGIN_BODY);
  return evidence;
}

bool apply_json_follow_up(const v1::EdgeEvidence& follow_up, uint32_t status, v1::EdgeEvidence* evidence) {
  if (follow_up.rule() != v1::EDGE_RULE_JSON || follow_up.edge_code() != status) return false;
  const auto rule = evidence->rule();
  if (rule == v1::EDGE_RULE_UNSPECIFIED || rule == v1::EDGE_RULE_NO_MARKERS || rule == v1::EDGE_RULE_ORIGIN_BODY) {
    evidence->set_rule(v1::EDGE_RULE_JSON);
    evidence->set_edge_generated(follow_up.edge_generated());
    evidence->set_edge_code(follow_up.edge_code());
  }
  if (evidence->edge_error_code() == 0) evidence->set_edge_error_code(follow_up.edge_error_code());
  if (evidence->error_name().empty()) evidence->set_error_name(follow_up.error_name());
  if (evidence->error_category().empty()) evidence->set_error_category(follow_up.error_category());
  if (evidence->ray_id().empty()) {
    evidence->set_ray_id(follow_up.ray_id());
    evidence->set_colo(follow_up.colo());
  }
  return true;
}

std::optional<uint32_t> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim_ascii(value);
  if (auto seconds = parse_uint(value, UINT32_MAX)) return seconds;
  if (value.empty() || value.size() > 64) return std::nullopt;
  const std::string text(value);
  // IMF-fixdate first (what senders must use), then the two obsolete forms.
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end == nullptr || *end != '\0') continue;
    const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
    const auto ahead = std::chrono::duration_cast<std::chrono::seconds>(at - now).count();
    return static_cast<uint32_t>(std::clamp<int64_t>(ahead, 0, UINT32_MAX));
  }
  return std::nullopt;
}

v1::FailureClass classify_5xx(const v1::EdgeEvidence& evidence, uint32_t status) {
  if (!is_5xx(status)) return v1::FAILURE_CLASS_UNSPECIFIED;
  if (evidence.edge_generated() || evidence.rule() == v1::EDGE_RULE_NO_MARKERS) {
    return v1::FAILURE_CLASS_EDGE_ERROR;
  }
  return v1::FAILURE_CLASS_ORIGIN_5XX;
}

// ---------------------------------------------------------------------------
// /cdn-cgi/trace

std::optional<Trace> parse_trace(std::string_view body) {
  // A real trace is about 300 bytes and 15 keys; the caps bound what a hostile
  // or mistaken body can make us keep.
  constexpr size_t kMaxFields = 64, kMaxKey = 64, kMaxValue = 512;
  body = body.substr(0, 64 << 10);
  Trace trace;
  while (!body.empty()) {
    size_t eol = body.find('\n');
    auto line = trim_ascii(body.substr(0, eol));
    body.remove_prefix(eol == std::string_view::npos ? body.size() : eol + 1);
    size_t eq = line.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq > kMaxKey) continue;
    auto key = line.substr(0, eq);
    auto value = line.substr(eq + 1);
    bool key_ok = std::all_of(key.begin(), key.end(), [](char c) {
      return is_digit(c) || (c >= 'a' && c <= 'z') || is_upper(c) || c == '_' || c == '-';
    });
    if (!key_ok || value.size() > kMaxValue) continue;
    if (trace.fields.size() >= kMaxFields) break;
    trace.fields.emplace(std::string(key), std::string(value));  // first one wins
  }
  // The named fields end up in proto strings and metric labels: printable only.
  auto named = [&](const char* key) -> std::string {
    auto it = trace.fields.find(key);
    if (it == trace.fields.end() || it->second.size() > kTextLimit || !printable_ascii(it->second)) {
      return {};
    }
    return it->second;
  };
  trace.colo = named("colo");
  if (trace.colo.empty()) return std::nullopt;
  trace.loc = named("loc");
  trace.http = named("http");
  trace.tls = named("tls");
  return trace;
}

void apply_trace(const Trace& trace, v1::EdgeEvidence* evidence) {
  evidence->set_trace_colo(colo_or_other(trace.colo));  // a label: known colos only
  evidence->set_trace_loc(safe_text(trace.loc, kLocBytes));
}

}  // namespace vantage::probe
