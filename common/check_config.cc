#include "common/check_config.h"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <re2/re2.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "common/text.h"
#include "common/url.h"

namespace vantage {

using namespace check_limits;

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultInterval{60'000};
constexpr milliseconds kDefaultTimeout{10'000};
// parse_duration's ceiling: far above every limit, far below what overflows
// milliseconds (and the nanoseconds of a steady_clock time point).
constexpr milliseconds kLongestParsed = std::chrono::hours(24 * 366 * 100);
// A file with more problems than this is reported in part.
constexpr size_t kMaxReported = 50;

struct Range {
  milliseconds min, max;
};
constexpr Range kIntervalRange{kMinInterval, kMaxInterval};
constexpr Range kTimeoutRange{kMinTimeout, kMaxTimeout};
constexpr Range kCorrelationRange{kMinCorrelationDuration, kMaxCorrelationDuration};

// In the units parse_duration reads: "1h", "1m30s", "500ms".
std::string format_duration(milliseconds ms) {
  struct Unit {
    long long ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  if (ms.count() == 0) return "0s";
  std::string out;
  long long rest = ms.count();
  for (const auto& unit : kUnits) {
    if (rest >= unit.ms) {
      out += fmt::format("{}{}", rest / unit.ms, unit.name);
      rest %= unit.ms;
    }
  }
  return out;
}

std::string range_text(Range r) { return fmt::format("{} to {}", format_duration(r.min), format_duration(r.max)); }

// Parses like parse_duration; `too_long` tells a well-formed duration past
// kLongestParsed from a malformed one.
std::optional<milliseconds> parse_bounded_duration(std::string_view text, bool* too_long) {
  *too_long = false;
  if (text.empty()) return std::nullopt;
  milliseconds total{0};
  bool over = false;  // the rest is still read: malformed wins over too long
  while (!text.empty()) {
    unsigned long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() && ec != std::errc::result_out_of_range) return std::nullopt;
    over = over || ec == std::errc::result_out_of_range;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    long long unit_ms = 0;
    if (text.starts_with("ms")) {
      unit_ms = 1;
      text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      unit_ms = 1000;
      text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      unit_ms = 60'000;
      text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      unit_ms = 3'600'000;
      text.remove_prefix(1);
    } else {
      return std::nullopt;  // a unit is required: "30" is ambiguous
    }
    // Compared before multiplying: nothing here can overflow.
    over = over || value > static_cast<unsigned long long>((kLongestParsed - total).count() / unit_ms);
    if (!over) total += milliseconds(static_cast<long long>(value) * unit_ms);
  }
  *too_long = over;
  if (over) return std::nullopt;
  return total;
}

// --- validation of one check ------------------------------------------------

// What is wrong with a text field, or empty: too long, not UTF-8, or a
// control character (tab only where `tab_ok`).
std::string text_problem(std::string_view value, size_t max_bytes, bool tab_ok = false) {
  if (value.size() > max_bytes) return fmt::format("is {} bytes long, over the limit of {}", value.size(), max_bytes);
  if (auto bad = first_invalid_utf8(value); bad != std::string_view::npos) {
    return fmt::format("is not valid UTF-8 (byte 0x{:02x} at offset {})", static_cast<unsigned char>(value[bad]), bad);
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const auto byte = static_cast<unsigned char>(value[i]);
    if ((byte < 0x20 && !(tab_ok && byte == '\t')) || byte == 0x7f) {
      return fmt::format("contains the control character 0x{:02x} at offset {}", byte, i);
    }
  }
  return {};
}

// RFC 9110 section 5.6.2: token = 1*tchar.
bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char ch : text) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && std::strchr("!#$%&'*+-.^_`|~", ch) == nullptr) return false;
  }
  return true;
}

// The path of a map entry's field, e.g. "headers.X-Api-Key"; its key
// made printable, as it ends up in a one-line message.
std::string key_path(std::string_view map, std::string_view key) {
  return fmt::format("{}.{}", map, safe_text(key, 80));
}

class Problems {
 public:
  void add(std::string field, std::string message) { list_.push_back({std::move(field), std::move(message)}); }
  // Adds a problem when `message` is not empty.
  void add_if(std::string field, std::string message) {
    if (!message.empty()) add(std::move(field), std::move(message));
  }
  // The duration when it is valid and within `range`, else a problem.
  std::optional<milliseconds> duration(const std::string& field, const google::protobuf::Duration& d, Range range) {
    if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1'000'000'000) {
      add(field, fmt::format("is negative or not a valid duration; the range is {}", range_text(range)));
      return std::nullopt;
    }
    // Seconds compared first: milliseconds of a huge value would overflow.
    if (d.seconds() > std::chrono::duration_cast<std::chrono::seconds>(kLongestParsed).count()) {
      add(field, fmt::format("{}s is outside the range {}", d.seconds(), range_text(range)));
      return std::nullopt;
    }
    const auto ms = to_millis(d);
    if (ms < range.min || ms > range.max) {
      add(field, fmt::format("{} is outside the range {}", format_duration(ms), range_text(range)));
      return std::nullopt;
    }
    return ms;
  }
  std::vector<CheckProblem> take() { return std::move(list_); }

 private:
  std::vector<CheckProblem> list_;
};

void validate_headers(const v1::Check& check, Problems& problems) {
  if (static_cast<size_t>(check.headers_size()) > kMaxHeaders) {
    problems.add("headers", fmt::format("{} headers, over the limit of {}", check.headers_size(), kMaxHeaders));
    return;
  }
  std::map<std::string, std::string> seen;  // lower-case name -> as written
  for (const auto& [name, value] : check.headers()) {
    const auto field = key_path("headers", name);
    if (name.size() > kMaxHeaderNameBytes) {
      problems.add(field, fmt::format("the name is {} bytes long, over the limit of {}", name.size(),
                                      kMaxHeaderNameBytes));
      continue;
    }
    if (!is_token(name)) {
      problems.add(field, "the name is not an HTTP field name (letters, digits and !#$%&'*+-.^_`|~ only, "
                          "no spaces or control characters; RFC 9110 section 5.1)");
      continue;
    }
    if (auto [it, fresh] = seen.emplace(ascii_lower(name), name); !fresh) {
      problems.add(field, fmt::format("the same header as \"{}\" (names are case-insensitive)", it->second));
    }
    if (auto p = text_problem(value, kMaxHeaderValueBytes, /*tab_ok=*/true); !p.empty()) {
      problems.add(field, "the value " + p + " (CR, LF and NUL would split or end the request)");
      continue;
    }
    const auto key = ascii_lower(name);
    if (key == "host") {
      std::string error;
      if (!parse_host_port(value, 1, &error)) problems.add(field, "the value is not a host[:port]: " + error);
    } else if (key == "content-length" || key == "transfer-encoding") {
      problems.add(field, "the probe sends no body: a stated length or encoding would desynchronise the connection");
    }
  }
}

void validate_origin(const v1::Check& check, Problems& problems) {
  if (!check.has_origin()) return;
  const auto& origin = check.origin();
  std::string error;
  if (origin.address().empty()) {
    if (!origin.host().empty() || !origin.sni().empty() || !origin.scheme().empty() || origin.has_interval()) {
      problems.add("origin.address", "missing (an IP or host, with an optional :port)");
    }
    return;
  }
  if (!parse_host_port(origin.address(), 1, &error)) problems.add("origin.address", error);
  if (!origin.host().empty() && !parse_host_port(origin.host(), 1, &error)) {
    problems.add("origin.host", "not a host[:port] for the Host header: " + error);
  }
  if (!origin.sni().empty() && !valid_host(origin.sni(), &error)) {
    problems.add("origin.sni", "not a TLS server name: " + error);
  }
  const auto& scheme = origin.scheme();
  if (!scheme.empty() && scheme != "http" && scheme != "https") {
    problems.add("origin.scheme", fmt::format("\"{}\" is not http or https", safe_text(scheme, 16)));
  }
  // Zero: only on failing edge attempts.
  if (origin.has_interval() && (origin.interval().seconds() != 0 || origin.interval().nanos() != 0)) {
    problems.duration("origin.interval", origin.interval(), kIntervalRange);
  }
}

void validate_correlation(const v1::Check& check, Problems& problems) {
  if (!check.has_correlation()) return;
  const auto& c = check.correlation();
  auto count = [&](const char* key, bool has, uint32_t n) {
    if (has && (n < 1 || n > kMaxCount)) {
      problems.add(fmt::format("correlation.{}", key), fmt::format("{} is not a whole number from 1 to {}", n, kMaxCount));
    }
  };
  count("confirm_consecutive", c.has_confirm_consecutive(), c.confirm_consecutive());
  count("resolve_consecutive", c.has_resolve_consecutive(), c.resolve_consecutive());
  count("global_quorum", c.has_global_quorum(), c.global_quorum());
  count("recurring_min", c.has_recurring_min(), c.recurring_min());
  // Zero would read as "unset" and silently mean the default: in range or absent.
  auto duration = [&](const char* key, bool has, const google::protobuf::Duration& d) {
    if (has) problems.duration(fmt::format("correlation.{}", key), d, kCorrelationRange);
  };
  duration("stale_after", c.has_stale_after(), c.stale_after());
  duration("reopen_within", c.has_reopen_within(), c.reopen_within());
  duration("recurring_window", c.has_recurring_window(), c.recurring_window());
  duration("recheck_min_interval", c.has_recheck_min_interval(), c.recheck_min_interval());
}

void validate_assertions(const v1::Check& check, Problems& problems) {
  if (static_cast<size_t>(check.assertions_size()) > kMaxAssertions) {
    problems.add("assertions", fmt::format("{} assertions, over the limit of {}", check.assertions_size(), kMaxAssertions));
    return;
  }
  for (int i = 0; i < check.assertions_size(); ++i) {
    const auto& a = check.assertions(i);
    const auto field = fmt::format("assertions[{}]", i);
    if (a.target() != v1::Assertion::TARGET_BODY && a.target() != v1::Assertion::TARGET_HEADER) {
      problems.add(field + ".target", "must be body or header");
    }
    if (a.target() == v1::Assertion::TARGET_HEADER &&
        (a.header_name().size() > kMaxHeaderNameBytes || !is_token(a.header_name()))) {
      problems.add(field + ".header_name", fmt::format("\"{}\" is not an HTTP field name (letters, digits and "
                                                       "!#$%&'*+-.^_`|~ only; RFC 9110 section 5.1)",
                                                       safe_text(a.header_name(), 80)));
    }
    if (a.target() == v1::Assertion::TARGET_BODY && !a.header_name().empty()) {
      problems.add(field + ".header_name", "is only for a header assertion");
    }
    if (a.pattern().empty()) {
      problems.add(field + ".pattern", "is empty");
    } else if (auto p = text_problem(a.pattern(), kMaxPatternBytes, /*tab_ok=*/true); !p.empty()) {
      problems.add(field + ".pattern", p);
    } else {
      // Compiled as the probe compiles it (probe/assertions.cc): what passes here runs there.
      re2::RE2::Options options;
      options.set_log_errors(false);
      const re2::RE2 re(a.pattern(), options);
      if (!re.ok()) {
        problems.add(field + ".pattern",
                     fmt::format("is not an RE2 regular expression: {}", safe_text(re.error(), 200)));
      }
    }
  }
}

// What is wrong with PEM text of trusted CA certificates, or empty.
std::string ca_pem_problem(const std::string& pem) {
  if (pem.size() > kMaxCaPemBytes) {
    return fmt::format("is {} bytes long, over the limit of {}", pem.size(), kMaxCaPemBytes);
  }
  if (auto bad = first_invalid_utf8(pem); bad != std::string_view::npos) {
    return fmt::format("is not PEM text (byte 0x{:02x} at offset {}; a DER file converts with "
                       "`openssl x509 -inform der`)",
                       static_cast<unsigned char>(pem[bad]), bad);
  }
  for (size_t i = 0; i < pem.size(); ++i) {
    const auto byte = static_cast<unsigned char>(pem[i]);
    if ((byte < 0x20 && byte != '\t' && byte != '\r' && byte != '\n') || byte == 0x7f) {
      return fmt::format("contains the control character 0x{:02x} at offset {}", byte, i);
    }
  }
  // PEM_read_bio_X509 skips blocks of other kinds: a key would travel to every probe unnoticed.
  if (pem.find("PRIVATE KEY-----") != std::string::npos) {
    return "holds a private key: only the CA certificates are needed (and it would be sent to every probe)";
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return "cannot be read (out of memory)";
  ERR_clear_error();
  int certificates = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++certificates;
  }
  BIO_free(bio);
  // The loop ends at the first failure; "no start line" is the clean end of the text.
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const bool clean_end = ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  if (!clean_end) {
    const char* reason = ERR_reason_error_string(error);
    return fmt::format("certificate {} does not parse: {}", certificates + 1,
                       reason != nullptr ? reason : "unknown error");
  }
  if (certificates == 0) return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
  return {};
}

void validate_tls(const v1::Check& check, Problems& problems) {
  if (!check.has_tls() || check.tls().ca_pem().empty()) return;  // empty: the system's trust store
  problems.add_if("tls.ca_pem", ca_pem_problem(check.tls().ca_pem()));
}

// RFC 3986 unreserved characters: the name goes into the query unescaped.
bool valid_query_param(std::string_view name) {
  if (name.empty() || name.size() > kMaxQueryParamBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '~' || c == '-';
  });
}

// 4 or 6 for an IPv4 or IPv6 literal (IPv4-mapped IPv6 is IPv4, as the probe
// connects), 0 for a name.
int literal_family(const std::string& host) {
  in6_addr v6{};
  if (in_addr v4{}; inet_pton(AF_INET, host.c_str(), &v4) == 1) return 4;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_V4MAPPED(&v6) ? 4 : 6;
  return 0;
}

// An ip_family of one family only beside an address literal of the other (in
// the URL or the origin address): the check could never run.
void validate_family_literals(const v1::Check& check, Problems& problems) {
  const int only = check.ip_family() == v1::IP_FAMILY_ONLY_V4 ? 4 : check.ip_family() == v1::IP_FAMILY_ONLY_V6 ? 6 : 0;
  if (only == 0) return;
  auto refuse = [&](const char* field, const std::string& host) {
    if (const int family = literal_family(host); family != 0 && family != only) {
      problems.add(field, fmt::format("{} is an IPv{} address and ip_family is {}", safe_text(host, 64), family,
                                      ip_family_name(check.ip_family())));
    }
  };
  std::string error;
  if (auto url = parse_url(check.url(), &error)) refuse("url", url->host);
  if (check.has_origin()) {
    if (auto target = parse_host_port(check.origin().address(), 1, &error)) refuse("origin.address", target->host);
  }
}

// body_limit_bytes, follow_redirects, ip_family, cache_busting_param.
void validate_fetch_options(const v1::Check& check, Problems& problems) {
  if (const auto n = check.body_limit_bytes(); n != 0 && (n < kMinBodyLimitBytes || n > kMaxBodyLimitBytes)) {
    problems.add("body_limit_bytes", fmt::format("{} bytes is outside the range {} (1KiB) to {} (16MiB); 0: the "
                                                 "probe's own limit",
                                                 n, kMinBodyLimitBytes, kMaxBodyLimitBytes));
  }
  if (check.follow_redirects() > kMaxFollowRedirects) {
    problems.add("follow_redirects", fmt::format("{} is outside the range 0 to {}", check.follow_redirects(),
                                                 kMaxFollowRedirects));
  }
  if (!v1::IpFamily_IsValid(check.ip_family())) {
    problems.add("ip_family", fmt::format("{} is not an IpFamily (0 to 4: any, prefer IPv4, prefer IPv6, IPv4 "
                                          "only, IPv6 only)",
                                          static_cast<int>(check.ip_family())));
  }
  validate_family_literals(check, problems);
  if (const auto& param = check.cache_busting_param(); !param.empty() && !valid_query_param(param)) {
    problems.add("cache_busting_param", fmt::format("\"{}\" is not a query parameter name (1 to {} of "
                                                    "A-Z, a-z, 0-9 and ._~-)",
                                                    safe_text(param, 80), kMaxQueryParamBytes));
  }
}

// The URL and the method (GET when unset).
void validate_request(v1::Check& check, Problems& problems) {
  std::string url_error;
  if (auto p = text_problem(check.url(), kMaxUrlBytes); !p.empty()) {
    problems.add("url", p);
  } else if (!parse_url(check.url(), &url_error)) {
    problems.add("url", fmt::format("\"{}\": {}", check.url(), url_error));
  }

  if (check.method().empty()) check.set_method("GET");
  static const std::set<std::string> kMethods{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
  if (!kMethods.contains(check.method())) {
    problems.add("method", fmt::format("\"{}\" is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
                                       safe_text(check.method(), 16)));
  }
}

// The interval and the timeout (defaults filled in), the timeout within the interval.
void validate_timing(v1::Check& check, Problems& problems) {
  if (!check.has_interval()) *check.mutable_interval() = to_duration(kDefaultInterval);
  const auto interval = problems.duration("interval", check.interval(), kIntervalRange);
  if (!check.has_timeout()) {
    *check.mutable_timeout() = to_duration(std::min(kDefaultTimeout, interval.value_or(kDefaultTimeout)));
  }
  const auto timeout = problems.duration("timeout", check.timeout(), kTimeoutRange);
  if (interval && timeout && *timeout > *interval) {
    problems.add("timeout", fmt::format("{} is longer than the interval {}", format_duration(*timeout),
                                        format_duration(*interval)));
  }
}

// 200-399 when none is given.
void validate_expected_status(v1::Check& check, Problems& problems) {
  if (check.expected_status_size() == 0) {
    auto* range = check.add_expected_status();
    range->set_min(200);
    range->set_max(399);
  }
  if (static_cast<size_t>(check.expected_status_size()) > kMaxStatusRanges) {
    problems.add("expected_status", fmt::format("{} ranges, over the limit of {}", check.expected_status_size(),
                                                kMaxStatusRanges));
  }
  for (int i = 0; i < check.expected_status_size(); ++i) {
    const auto& r = check.expected_status(i);
    if (r.min() < 100 || r.max() > 599 || r.min() > r.max()) {
      problems.add(fmt::format("expected_status[{}]", i),
                   fmt::format("{}-{} is not a status code or range from 100 to 599", r.min(), r.max()));
    }
  }
}

void validate_regions(const v1::Check& check, Problems& problems) {
  if (static_cast<size_t>(check.regions_size()) > kMaxRegions) {
    problems.add("regions", fmt::format("{} regions, over the limit of {}", check.regions_size(), kMaxRegions));
  }
  for (int i = 0; i < check.regions_size(); ++i) {
    const auto& region = check.regions(i);
    const auto field = fmt::format("regions[{}]", i);
    if (region.empty()) {
      problems.add(field, "an empty region name");
    } else if (auto p = text_problem(region, kMaxRegionBytes); !p.empty()) {
      problems.add(field, p);
    } else if (region.find(' ') != std::string::npos) {
      problems.add(field, fmt::format("\"{}\" contains a space", region));
    }
  }
}

void validate_labels(const v1::Check& check, Problems& problems) {
  if (static_cast<size_t>(check.labels_size()) > kMaxLabels) {
    problems.add("labels", fmt::format("{} labels, over the limit of {}", check.labels_size(), kMaxLabels));
  }
  for (const auto& [key, value] : check.labels()) {
    const auto field = key_path("labels", key);
    if (key.empty()) problems.add(field, "an empty label name");
    if (auto p = text_problem(key, kMaxLabelKeyBytes); !p.empty()) problems.add(field, "the name " + p);
    if (auto p = text_problem(value, kMaxLabelValueBytes); !p.empty()) problems.add(field, "the value " + p);
  }
}

// --- the checks file -----------------------------------------------------------

// "checks.yaml:12:7" (1-based; columns count bytes, as yaml-cpp's do).
std::string where(std::string_view origin, const YAML::Mark& mark) {
  if (mark.line < 0) return std::string(origin);
  return fmt::format("{}:{}:{}", origin, mark.line + 1, mark.column + 1);
}

std::string where(std::string_view origin, const YAML::Node& node) { return where(origin, node.Mark()); }

[[noreturn]] void fail(std::string_view origin, const YAML::Node& node, std::string_view what) {
  throw ConfigError(fmt::format("{}: {}", where(origin, node), what));
}

// The line and column of a byte offset, counted as yaml-cpp counts them.
YAML::Mark mark_at(std::string_view text, size_t offset) {
  YAML::Mark mark = YAML::Mark::null_mark();
  mark.pos = static_cast<int>(offset);
  mark.line = 0;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++mark.line;
      line_start = i + 1;
    }
  }
  mark.column = static_cast<int>(offset - line_start);
  return mark;
}

// The raw bytes, before yaml-cpp sees them: it drops bytes that are not
// UTF-8 without a word and keeps NULs that PostgreSQL then refuses.
std::vector<std::string> byte_problems(std::string_view text, std::string_view origin) {
  std::vector<std::string> out;
  auto report = [&](size_t offset, std::string what) {
    out.push_back(fmt::format("{}: {}", where(origin, mark_at(text, offset)), what));
  };
  size_t i = 0;
  while (i < text.size() && out.size() < kMaxReported) {
    const size_t bad = first_invalid_utf8(text.substr(i));
    const size_t end = bad == std::string_view::npos ? text.size() : i + bad;
    // In well-formed UTF-8 a byte below 0x80 is always a character of its own.
    for (size_t j = i; j < end && out.size() < kMaxReported; ++j) {
      const auto byte = static_cast<unsigned char>(text[j]);
      if ((byte < 0x20 && byte != '\t' && byte != '\n' && byte != '\r') || byte == 0x7f) {
        report(j, fmt::format("the control character 0x{:02x} is not allowed in a checks file", byte));
      }
    }
    if (end == text.size()) break;
    report(end, fmt::format("byte 0x{:02x} is not valid UTF-8 (the checks file must be UTF-8)",
                            static_cast<unsigned char>(text[end])));
    i = end + 1;
    while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;  // the same broken character
  }
  return out;
}

// Keys repeated in one mapping, from the parser's events (yaml-cpp's nodes
// keep only one of them, and walking nodes would expand aliases).
class RepeatedKeys : public YAML::EventHandler {
 public:
  explicit RepeatedKeys(std::string_view origin) : origin_(origin) {}
  std::vector<std::string> problems;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark, nullptr); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark, nullptr); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string& value) override {
    node(mark, &value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark, nullptr);
    stack_.push_back(Frame{false, true, {}});
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark, nullptr);
    stack_.push_back(Frame{true, true, {}});
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  struct Frame {
    bool map;
    bool next_is_key;
    std::map<std::string, YAML::Mark> keys;
  };
  // Every node starts here; in a mapping, nodes alternate key and value.
  void node(const YAML::Mark& mark, const std::string* scalar) {
    if (stack_.empty() || !stack_.back().map) return;
    auto& frame = stack_.back();
    if (frame.next_is_key && scalar != nullptr && problems.size() < kMaxReported) {
      auto [first, fresh] = frame.keys.emplace(*scalar, mark);
      if (!fresh) {
        problems.push_back(fmt::format("{}: \"{}\" is repeated in this mapping (first at line {}, column {}); "
                                       "a key may appear once",
                                       where(origin_, mark), safe_text(*scalar, 64), first->second.line + 1,
                                       first->second.column + 1));
      }
    }
    frame.next_is_key = !frame.next_is_key;
  }
  std::string_view origin_;
  std::vector<Frame> stack_;
};

std::string scalar(std::string_view origin, const YAML::Node& node, std::string_view field) {
  if (!node.IsScalar()) fail(origin, node, fmt::format("{} must be a single value", field));
  return node.Scalar();
}

milliseconds duration_field(std::string_view origin, const YAML::Node& node, std::string_view field, Range range) {
  auto text = scalar(origin, node, field);
  bool too_long = false;
  auto d = parse_bounded_duration(text, &too_long);
  if (too_long) {
    fail(origin, node, fmt::format("{}: \"{}\" is outside the range {}", field, safe_text(text, 64), range_text(range)));
  }
  if (!d) {
    fail(origin, node,
         fmt::format("{}: \"{}\" is not a duration (use e.g. 500ms, 30s, 5m)", field, safe_text(text, 64)));
  }
  return *d;
}

// A mapping or list field's size, refused before its items are copied (an
// alias may repeat a large one in every check).
void bounded(std::string_view origin, const YAML::Node& node, std::string_view field, size_t limit) {
  if (node.size() > limit) {
    fail(origin, node, fmt::format("{}: {} entries, over the limit of {}", field, node.size(), limit));
  }
}

// A check as read, with where each of its fields was written, so that
// validate_check's problems can name a line.
struct ReadCheck {
  v1::Check check;
  std::map<std::string, YAML::Mark> marks;  // field path -> position
  std::string ca_file;  // the path tls.ca_pem was read from, if it was
};

// What reading a file needs beyond its text: where a relative tls.ca_file
// is, and the CA files read so far (each read once, however many checks name it).
struct FileContext {
  std::string base_dir;
  std::map<std::string, std::string> ca_files;  // path -> contents
};

// A duration field of the file ("30s") into its proto field, remembering where it was written.
void read_duration(std::string_view origin, const YAML::Node& node, const std::string& field, Range range,
                   google::protobuf::Duration* out, ReadCheck& read) {
  *out = to_duration(duration_field(origin, node, field, range));
  read.marks[field] = node.Mark();
}

void string_map(std::string_view origin, const YAML::Node& node, std::string_view field, size_t limit,
                google::protobuf::Map<std::string, std::string>& out, ReadCheck& read) {
  if (!node.IsMap()) fail(origin, node, fmt::format("{} must be a mapping of names to values", field));
  bounded(origin, node, field, limit);
  for (const auto& kv : node) {
    auto key = scalar(origin, kv.first, field);
    out[key] = scalar(origin, kv.second, field);
    read.marks[key_path(field, key)] = kv.first.Mark();
  }
}

void status_ranges(std::string_view origin, const YAML::Node& node, v1::Check& check) {
  if (!node.IsSequence()) {
    fail(origin, node, "expected_status must be a list of codes or ranges, e.g. [200, \"300-399\"]");
  }
  bounded(origin, node, "expected_status", kMaxStatusRanges);
  for (const auto& item : node) {
    auto text = scalar(origin, item, "expected_status");
    unsigned lo = 0, hi = 0;
    auto dash = text.find('-');
    auto number = [](std::string_view s, unsigned* v) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
      return ec == std::errc() && end == s.data() + s.size();
    };
    bool ok = dash == std::string::npos
                  ? number(text, &lo) && (hi = lo, true)
                  : number(std::string_view(text).substr(0, dash), &lo) &&
                        number(std::string_view(text).substr(dash + 1), &hi);
    if (!ok || lo < 100 || hi > 599 || lo > hi) {
      fail(origin, item, fmt::format("expected_status: \"{}\" is not a status code or range from 100 to 599",
                                     safe_text(text, 64)));
    }
    auto* range = check.add_expected_status();
    range->set_min(lo);
    range->set_max(hi);
  }
}

void reject_unknown_keys(std::string_view origin, const YAML::Node& node,
                         const std::set<std::string>& known, std::string_view what) {
  for (const auto& kv : node) {
    auto key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("(not a name)");
    if (!known.contains(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(origin, kv.first, fmt::format("unknown field \"{}\" in {} (known: {})", safe_text(key, 64), what, list));
    }
  }
}

// correlation: {confirm_consecutive: 3, stale_after: 5m, ...} (correlation.md).
// Keys left out keep what is already set (from the defaults block), else the
// coordinator's defaults. Ranges: validate_check.
void correlation_block(std::string_view origin, const YAML::Node& node, ReadCheck& read) {
  static const std::set<std::string> kKeys{"confirm_consecutive", "resolve_consecutive", "stale_after",
                                           "global_quorum",       "reopen_within",       "recurring_min",
                                           "recurring_window",    "recheck_min_interval"};
  if (!node.IsMap()) {
    std::string list;
    for (const auto& k : kKeys) list += (list.empty() ? "" : ", ") + k;
    fail(origin, node, fmt::format("correlation must be a mapping ({})", list));
  }
  reject_unknown_keys(origin, node, kKeys, "correlation");
  read.marks["correlation"] = node.Mark();
  auto& out = *read.check.mutable_correlation();
  auto count = [&](const char* key, auto set) {
    const auto value = node[key];
    if (!value) return;
    const auto field = fmt::format("correlation.{}", key);
    const auto text = scalar(origin, value, field);
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > kMaxCount) {
      fail(origin, value,
           fmt::format("{}: \"{}\" is not a whole number from 1 to {}", field, safe_text(text, 64), kMaxCount));
    }
    read.marks[field] = value.Mark();
    set(n);
  };
  auto duration = [&](const char* key, auto target) {
    if (const auto value = node[key]) {
      read_duration(origin, value, fmt::format("correlation.{}", key), kCorrelationRange, target(), read);
    }
  };
  count("confirm_consecutive", [&](uint32_t n) { out.set_confirm_consecutive(n); });
  count("resolve_consecutive", [&](uint32_t n) { out.set_resolve_consecutive(n); });
  count("global_quorum", [&](uint32_t n) { out.set_global_quorum(n); });
  count("recurring_min", [&](uint32_t n) { out.set_recurring_min(n); });
  duration("stale_after", [&] { return out.mutable_stale_after(); });
  duration("reopen_within", [&] { return out.mutable_reopen_within(); });
  duration("recurring_window", [&] { return out.mutable_recurring_window(); });
  duration("recheck_min_interval", [&] { return out.mutable_recheck_min_interval(); });
}

bool boolean(std::string_view origin, const YAML::Node& node, std::string_view field) {
  const auto text = scalar(origin, node, field);
  if (text != "true" && text != "false") fail(origin, node, fmt::format("{} must be true or false", field));
  return text == "true";
}

// A whole number for a field whose range validate_check knows; `hint` says it.
uint32_t whole_number(std::string_view origin, const YAML::Node& node, std::string_view field, std::string_view hint) {
  const auto text = scalar(origin, node, field);
  const auto n = parse_whole_number(text);
  if (!n) fail(origin, node, fmt::format("{}: \"{}\" is not a whole number {}", field, safe_text(text, 64), hint));
  return *n;
}

// "65536", "64KiB", "1MiB". The range: validate_check.
uint32_t byte_size(std::string_view origin, const YAML::Node& node, std::string_view field) {
  const auto text = scalar(origin, node, field);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  const uint64_t scale = unit.empty() ? 1 : unit == "KiB" ? 1024 : unit == "MiB" ? 1024 * 1024 : 0;
  if ((ec != std::errc() && ec != std::errc::result_out_of_range) || end == text.data() || scale == 0) {
    fail(origin, node, fmt::format("{}: \"{}\" is not a size in bytes (e.g. 65536, 64KiB, 1MiB)", field,
                                   safe_text(text, 64)));
  }
  if (ec == std::errc::result_out_of_range || value > std::numeric_limits<uint32_t>::max() / scale) {
    fail(origin, node, fmt::format("{}: \"{}\" is outside the range 1KiB to 16MiB", field, safe_text(text, 64)));
  }
  return static_cast<uint32_t>(value * scale);
}

// assertions: [{body: PATTERN}, {header: NAME, pattern: PATTERN}, ...], each
// with an optional negate. Patterns and names: validate_check.
void assertion_list(std::string_view origin, const YAML::Node& node, ReadCheck& read) {
  constexpr std::string_view kShape = "{body: PATTERN} or {header: NAME, pattern: PATTERN}, with an optional negate: true";
  if (!node.IsSequence()) fail(origin, node, fmt::format("assertions must be a list of {}", kShape));
  bounded(origin, node, "assertions", kMaxAssertions);
  read.marks["assertions"] = node.Mark();
  for (const auto& item : node) {
    const auto field = fmt::format("assertions[{}]", read.check.assertions_size());
    if (!item.IsMap()) fail(origin, item, fmt::format("{} must be {}", field, kShape));
    reject_unknown_keys(origin, item, {"body", "header", "pattern", "negate"}, field);
    read.marks[field] = item.Mark();
    auto& assertion = *read.check.add_assertions();
    const auto body = item["body"];
    const auto header = item["header"];
    const auto pattern = item["pattern"];
    if (body && header) fail(origin, header, fmt::format("{}: body and header together; an assertion looks at one", field));
    if (body) {
      if (pattern) fail(origin, pattern, fmt::format("{}: a body assertion's pattern is the value of body:", field));
      assertion.set_target(v1::Assertion::TARGET_BODY);
      assertion.set_pattern(scalar(origin, body, field + ".body"));
      read.marks[field + ".pattern"] = body.Mark();
    } else if (header) {
      if (!pattern) fail(origin, item, fmt::format("{}: a header assertion needs a pattern", field));
      assertion.set_target(v1::Assertion::TARGET_HEADER);
      assertion.set_header_name(scalar(origin, header, field + ".header"));
      assertion.set_pattern(scalar(origin, pattern, field + ".pattern"));
      read.marks[field + ".header_name"] = header.Mark();
      read.marks[field + ".pattern"] = pattern.Mark();
    } else {
      fail(origin, item, fmt::format("{} needs body: or header: ({})", field, kShape));
    }
    if (auto n = item["negate"]) assertion.set_negate(boolean(origin, n, field + ".negate"));
  }
}

}  // namespace

std::optional<std::string> read_ca_pem_file(const std::string& path, std::string* problem) {
  const auto cannot = [&](int code) {
    *problem = fmt::format("\"{}\": cannot read it: {}", safe_text(path, 256), std::strerror(code));
    return std::nullopt;
  };
  std::error_code ignored;  // (a directory opens as a stream, then reads as empty)
  if (std::filesystem::is_directory(path, ignored)) return cannot(EISDIR);
  std::ifstream in(path, std::ios::binary);
  if (!in) return cannot(errno);
  std::string text(kMaxCaPemBytes + 1, '\0');  // a larger file is refused after one byte past the limit
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return cannot(errno);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxCaPemBytes) {
    *problem = fmt::format("\"{}\": the file is over the limit of {} bytes", safe_text(path, 256), kMaxCaPemBytes);
    return std::nullopt;
  }
  if (text.empty()) {
    *problem = fmt::format("\"{}\": the file is empty (expected PEM certificates)", safe_text(path, 256));
    return std::nullopt;
  }
  return text;
}

namespace {

std::string read_ca_file(std::string_view origin, const YAML::Node& node, const std::string& path) {
  std::string problem;
  auto text = read_ca_pem_file(path, &problem);
  if (!text) fail(origin, node, "tls.ca_file: " + problem);
  return std::move(*text);
}

// tls: {ca_file: PATH | ca_pem: TEXT, skip_verify: BOOL}. A check's block
// replaces the defaults' as a whole. The certificates: validate_check.
void tls_block(std::string_view origin, const YAML::Node& node, FileContext& context, ReadCheck& read) {
  if (!node.IsMap()) fail(origin, node, "tls must be a mapping (ca_file or ca_pem, skip_verify)");
  reject_unknown_keys(origin, node, {"ca_file", "ca_pem", "skip_verify"}, "tls");
  read.marks["tls"] = node.Mark();
  auto& tls = *read.check.mutable_tls();
  if (node["ca_file"] && node["ca_pem"]) {
    fail(origin, node["ca_pem"], "tls: ca_file and ca_pem together; give one (the file is read into ca_pem)");
  }
  if (auto n = node["ca_pem"]) {
    tls.set_ca_pem(scalar(origin, n, "tls.ca_pem"));
    read.marks["tls.ca_pem"] = n.Mark();
  }
  if (auto n = node["ca_file"]) {
    const auto written = scalar(origin, n, "tls.ca_file");
    if (written.empty()) fail(origin, n, "tls.ca_file: empty (a path, relative to the checks file's directory)");
    std::filesystem::path path(written);
    if (path.is_relative() && !context.base_dir.empty()) path = std::filesystem::path(context.base_dir) / path;
    read.ca_file = path.lexically_normal().string();
    auto it = context.ca_files.find(read.ca_file);
    if (it == context.ca_files.end()) it = context.ca_files.emplace(read.ca_file, read_ca_file(origin, n, read.ca_file)).first;
    tls.set_ca_pem(it->second);
    read.marks["tls.ca_pem"] = n.Mark();
  }
  if (auto n = node["skip_verify"]) {
    tls.set_skip_verify(boolean(origin, n, "tls.skip_verify"));
    read.marks["tls.skip_verify"] = n.Mark();
  }
}

v1::IpFamily ip_family(std::string_view origin, const YAML::Node& node) {
  const auto text = scalar(origin, node, "ip_family");
  if (const auto family = ip_family_from_name(text)) return *family;
  fail(origin, node, fmt::format("ip_family: \"{}\" is not one of any, prefer_ipv4, prefer_ipv6, ipv4, ipv6",
                                 safe_text(text, 64)));
}

// Reads one entry of `checks:` into a Check, without validating its values
// (validate_check does). Throws ConfigError when its shape is wrong.
// The `origin:` block of a check.
void origin_block(std::string_view origin, const YAML::Node& n, ReadCheck& read) {
  if (!n.IsMap()) fail(origin, n, "origin must be a mapping (address, host, sni, scheme, interval)");
  reject_unknown_keys(origin, n, {"address", "host", "sni", "scheme", "interval"}, "origin");
  read.marks["origin"] = n.Mark();
  auto* o = read.check.mutable_origin();
  if (!n["address"]) fail(origin, n, "origin needs an address (IP or host, with an optional :port)");
  auto text = [&](const char* key, auto set) {
    if (!n[key]) return;
    const auto path = fmt::format("origin.{}", key);
    set(scalar(origin, n[key], path));
    read.marks[path] = n[key].Mark();
  };
  text("address", [&](std::string v) { o->set_address(std::move(v)); });
  text("host", [&](std::string v) { o->set_host(std::move(v)); });
  text("sni", [&](std::string v) { o->set_sni(std::move(v)); });
  text("scheme", [&](std::string v) { o->set_scheme(std::move(v)); });
  if (n["interval"]) {
    read_duration(origin, n["interval"], "origin.interval", kIntervalRange, o->mutable_interval(), read);
  }
}

ReadCheck read_check(std::string_view origin, const YAML::Node& node, const YAML::Node& defaults,
                     FileContext& context) {
  if (!node.IsMap()) fail(origin, node, "each entry of checks must be a mapping");
  reject_unknown_keys(origin, node,
                      {"name", "url", "method", "interval", "timeout", "expected_status",
                       "regions", "headers", "labels", "origin", "follow_up_json",
                       "follow_up_trace", "correlation", "assertions", "body_limit", "follow_redirects", "tls",
                       "ip_family", "cache_busting_param"},
                      "a check");
  ReadCheck read;
  auto& check = read.check;
  check.set_source(v1::CHECK_SOURCE_FILE);
  // A field of the check, else of the defaults block; remembered for messages.
  // (Never assign to a YAML::Node that may be undefined: it would write into the document.)
  auto field = [&](const char* key) -> std::optional<YAML::Node> {
    std::optional<YAML::Node> found;
    if (node[key]) {
      found.emplace(node[key]);
    } else if (defaults && defaults[key]) {
      found.emplace(defaults[key]);
    }
    if (found) read.marks[key] = found->Mark();
    return found;
  };
  if (!node["name"]) fail(origin, node, "a check needs a name");
  check.set_name(scalar(origin, *field("name"), "name"));
  if (!node["url"]) fail(origin, node, fmt::format("check \"{}\" needs a url", safe_text(check.name(), 64)));
  check.set_url(scalar(origin, *field("url"), "url"));
  if (auto n = field("method")) check.set_method(scalar(origin, *n, "method"));
  if (auto n = field("interval")) read_duration(origin, *n, "interval", kIntervalRange, check.mutable_interval(), read);
  if (auto n = field("timeout")) read_duration(origin, *n, "timeout", kTimeoutRange, check.mutable_timeout(), read);
  if (auto n = field("expected_status")) status_ranges(origin, *n, check);
  if (auto n = field("regions")) {
    if (!n->IsSequence()) fail(origin, *n, "regions must be a list");
    bounded(origin, *n, "regions", kMaxRegions);
    for (const auto& item : *n) {
      read.marks[fmt::format("regions[{}]", check.regions_size())] = item.Mark();
      check.add_regions(scalar(origin, item, "regions"));
    }
  }
  // A check's own headers replace the defaults' (not merged).
  if (auto n = field("headers")) string_map(origin, *n, "headers", kMaxHeaders, *check.mutable_headers(), read);
  if (auto n = node["labels"]) string_map(origin, n, "labels", kMaxLabels, *check.mutable_labels(), read);
  if (auto n = node["origin"]) origin_block(origin, n, read);
  if (defaults && defaults["correlation"]) correlation_block(origin, defaults["correlation"], read);
  if (auto n = node["correlation"]) correlation_block(origin, n, read);
  for (const char* flag : {"follow_up_json", "follow_up_trace"}) {
    if (auto n = field(flag)) {
      const bool on = boolean(origin, *n, flag);
      (std::string_view(flag) == "follow_up_json" ? check.set_follow_up_json(on) : check.set_follow_up_trace(on));
    }
  }
  // A check's own assertions or tls replace the defaults' (not merged).
  if (auto n = field("assertions")) assertion_list(origin, *n, read);
  if (auto n = field("body_limit")) {
    check.set_body_limit_bytes(byte_size(origin, *n, "body_limit"));
    read.marks["body_limit_bytes"] = n->Mark();
  }
  if (auto n = field("follow_redirects")) {
    check.set_follow_redirects(whole_number(origin, *n, "follow_redirects", "from 0 to 20"));
  }
  if (auto n = field("tls")) tls_block(origin, *n, context, read);
  if (auto n = field("ip_family")) check.set_ip_family(ip_family(origin, *n));
  if (auto n = field("cache_busting_param")) check.set_cache_busting_param(scalar(origin, *n, "cache_busting_param"));
  return read;
}

// Where a field was written: the field itself, else the nearest enclosing
// one that was ("headers.X" -> "headers"), else the check.
YAML::Mark mark_of(const ReadCheck& read, std::string field, const YAML::Mark& check_mark) {
  while (!field.empty()) {
    if (auto it = read.marks.find(field); it != read.marks.end()) return it->second;
    const auto cut = field.find_last_of(".[");
    field.resize(cut == std::string::npos ? 0 : cut);
  }
  return check_mark;
}

// What the checks file's root and `defaults:` must be; throws ConfigError.
YAML::Node load_root(std::string_view text, std::string_view origin) {
  if (text.size() > kMaxFileBytes) {
    throw ConfigError(fmt::format("{}: the file is {} bytes, over the limit of {}", origin, text.size(), kMaxFileBytes));
  }
  if (auto problems = byte_problems(text, origin); !problems.empty()) throw ConfigError(std::move(problems));
  const std::string owned(text);
  try {
    std::istringstream in(owned);
    YAML::Parser parser(in);
    RepeatedKeys repeated(origin);
    if (parser.HandleNextDocument(repeated)) {
      RepeatedKeys rest(origin);
      if (parser.HandleNextDocument(rest)) {
        throw ConfigError(fmt::format("{}: more than one YAML document ('---'); a checks file is one", origin));
      }
    }
    if (!repeated.problems.empty()) throw ConfigError(std::move(repeated.problems));
    return YAML::Load(owned);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}: not valid YAML: {}", where(origin, e.mark), e.msg));
  }
}

// A problem as the file says it: the file's key where it differs from the
// Check's field, and a CA read from a file named by its path.
std::string describe_in_file(const ReadCheck& read, const CheckProblem& problem) {
  if (problem.field == "tls.ca_pem" && !read.ca_file.empty()) {
    return fmt::format("tls.ca_file: \"{}\": {}", read.ca_file, problem.message);
  }
  if (problem.field == "body_limit_bytes") return "body_limit: " + problem.message;
  constexpr std::string_view kHeaderName = ".header_name";
  if (problem.field.starts_with("assertions[") && problem.field.ends_with(kHeaderName)) {
    return fmt::format("{}.header: {}", problem.field.substr(0, problem.field.size() - kHeaderName.size()),
                       problem.message);
  }
  return problem.describe();
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += (out.empty() ? "" : "\n") + line;
  return out;
}

}  // namespace

std::string CheckProblem::describe() const { return field.empty() ? message : fmt::format("{}: {}", field, message); }

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

std::optional<milliseconds> parse_duration(std::string_view text) {
  bool too_long = false;
  return parse_bounded_duration(text, &too_long);
}

milliseconds to_millis(const google::protobuf::Duration& d) {
  return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

google::protobuf::Duration to_duration(milliseconds ms) {
  google::protobuf::Duration d;
  d.set_seconds(ms.count() / 1000);
  d.set_nanos(static_cast<int32_t>((ms.count() % 1000) * 1'000'000));
  return d;
}

std::string_view ip_family_name(v1::IpFamily family) {
  switch (family) {
    case v1::IP_FAMILY_PREFER_V4: return "prefer_ipv4";
    case v1::IP_FAMILY_PREFER_V6: return "prefer_ipv6";
    case v1::IP_FAMILY_ONLY_V4: return "ipv4";
    case v1::IP_FAMILY_ONLY_V6: return "ipv6";
    default: return "any";
  }
}

std::optional<v1::IpFamily> ip_family_from_name(std::string_view name) {
  for (int value = v1::IpFamily_MIN; value <= v1::IpFamily_MAX; ++value) {
    const auto family = static_cast<v1::IpFamily>(value);
    if (v1::IpFamily_IsValid(value) && ip_family_name(family) == name) return family;
  }
  return std::nullopt;
}

std::optional<uint32_t> parse_whole_number(std::string_view text) {
  uint32_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

bool valid_check_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::vector<CheckProblem> validate_check(v1::Check& check) {
  Problems problems;
  if (!valid_check_name(check.name())) {
    problems.add("name", fmt::format("\"{}\" must be 1 to 63 lower-case letters, digits or '-', starting with a "
                                     "letter or digit",
                                     safe_text(check.name(), 80)));
  }
  validate_request(check, problems);
  validate_timing(check, problems);
  validate_expected_status(check, problems);
  validate_regions(check, problems);
  validate_headers(check, problems);
  validate_labels(check, problems);
  validate_origin(check, problems);
  validate_correlation(check, problems);
  validate_assertions(check, problems);
  validate_fetch_options(check, problems);
  validate_tls(check, problems);

  if (const size_t size = check.ByteSizeLong(); size > kMaxCheckBytes) {
    problems.add("", fmt::format("the check is {} bytes encoded, over the limit of {} (a probe receives each "
                                 "check in one message)",
                                 size, kMaxCheckBytes));
  }
  return problems.take();
}

bool normalize_check(v1::Check& check, std::string* error) {
  const auto problems = validate_check(check);
  if (problems.empty()) return true;
  error->clear();
  for (const auto& problem : problems) *error += (error->empty() ? "" : "; ") + problem.describe();
  return false;
}

std::vector<v1::Check> parse_checks_yaml(std::string_view text, std::string_view origin, const std::string& base_dir) {
  YAML::Node root = load_root(text, origin);
  if (!root || root.IsNull()) throw ConfigError(fmt::format("{}: the file is empty (expected a 'checks:' list)", origin));
  if (!root.IsMap()) fail(origin, root, "expected a mapping with a 'checks:' list at the top");
  reject_unknown_keys(origin, root, {"defaults", "checks"}, "the top level");
  YAML::Node defaults = root["defaults"];
  if (defaults) {
    if (!defaults.IsMap()) fail(origin, defaults, "defaults must be a mapping");
    reject_unknown_keys(origin, defaults,
                        {"method", "interval", "timeout", "expected_status", "regions", "headers",
                         "follow_up_json", "follow_up_trace", "correlation", "assertions", "body_limit",
                         "follow_redirects", "tls", "ip_family", "cache_busting_param"},
                        "defaults");
  }
  auto list = root["checks"];
  if (!list) fail(origin, root, "missing 'checks:' list");
  if (!list.IsSequence()) fail(origin, list, "checks must be a list");
  if (list.size() > kMaxChecks) {
    fail(origin, list, fmt::format("checks: {} checks, over the limit of {} per file", list.size(), kMaxChecks));
  }

  // Every check is read and validated; the problems of all of them are reported.
  std::vector<v1::Check> checks;
  std::vector<std::string> problems;
  std::set<std::string> names;
  FileContext context{base_dir, {}};
  for (const auto& node : list) {
    if (problems.size() >= kMaxReported) {
      problems.push_back(fmt::format("{}: (more problems not shown)", origin));
      break;
    }
    try {
      auto read = read_check(origin, node, defaults, context);
      auto& check = read.check;
      const auto found = validate_check(check);
      for (const auto& problem : found) {
        problems.push_back(fmt::format("{}: check \"{}\": {}", where(origin, mark_of(read, problem.field, node.Mark())),
                                       safe_text(check.name(), 64), describe_in_file(read, problem)));
      }
      if (!names.insert(check.name()).second) {
        problems.push_back(
            fmt::format("{}: check name \"{}\" is used twice", where(origin, node), safe_text(check.name(), 64)));
      } else if (found.empty()) {
        checks.push_back(std::move(check));
      }
    } catch (const ConfigError& e) {
      problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    } catch (const YAML::Exception& e) {
      problems.push_back(fmt::format("{}: cannot read this check: {}", where(origin, node), e.msg));
    }
  }
  if (!problems.empty()) throw ConfigError(std::move(problems));
  return checks;
}

std::vector<v1::Check> load_checks_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot read the checks file: {}", path, std::strerror(errno)));
  // Read in pieces up to one past the limit: a huge file is refused, not read whole.
  std::string text;
  char piece[64 * 1024];
  while (text.size() <= kMaxFileBytes && in.read(piece, sizeof piece).gcount() > 0) {
    text.append(piece, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw ConfigError(fmt::format("{}: cannot read the checks file: {}", path, std::strerror(errno)));
  if (text.size() > kMaxFileBytes) {
    throw ConfigError(fmt::format("{}: the file is over the limit of {} bytes", path, kMaxFileBytes));
  }
  // A relative tls.ca_file is beside the checks file, wherever the coordinator runs.
  return parse_checks_yaml(text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace vantage
