#pragma once
// Checks declared in YAML (the coordinator's --checks file, a ConfigMap in
// Kubernetes), and the validation shared with the API.
//
//   defaults:            # optional, applies to every check below
//     interval: 60s
//     timeout: 10s
//     correlation: {recurring_min: 4}   # merged key by key with a check's own
//   checks:
//     - name: shop-home                  # [a-z0-9][a-z0-9-]{0,62}, unique
//       url: https://shop.example.com/
//       method: GET                      # default GET
//       interval: 30s                    # default 60s; 1s to 24h
//       timeout: 10s                     # default 10s (at most the interval); 100ms to 5m, <= interval
//       expected_status: [200, 301, "200-299"]   # default 200-399
//       regions: [us, eu]                # default: every region
//       headers: {User-Agent: vantage}   # names: RFC 9110 tokens; values: no control characters but tab
//       labels: {team: shop}
//       origin: {address: "203.0.113.10:443", host: shop.example.com, sni: shop.example.com}
//                                        # origin.interval: 0 (only on failing attempts) or 1s to 24h
//       correlation:                     # optional, correlation.md; unset keys: coordinator defaults
//         confirm_consecutive: 2         # counts: whole numbers from 1 to 1000
//         resolve_consecutive: 2
//         global_quorum: 2
//         recurring_min: 3
//         stale_after: 150s              # durations: 1s to 168h (7 days)
//         reopen_within: 10m
//         recurring_window: 1h
//         recheck_min_interval: 30s
//       assertions:                      # at most 32; every one must hold (RE2 syntax, 1024 bytes each)
//         - body: "\"status\":\\s*\"ok\""  # the body read matches
//         - body: maintenance
//           negate: true                 # ... does NOT match
//         - header: Content-Type         # some value of this header matches
//           pattern: "^application/json"
//       body_limit: 64KiB                # bytes read (and matched); 1KiB to 16MiB, default: the probe's 1MiB
//       follow_redirects: 5              # 0 to 20, default 0 (the 3xx is the response)
//       tls:                             # replaces the defaults' tls block as a whole
//         ca_file: ca/internal.pem       # relative to this file's directory; or ca_pem: "-----BEGIN ..."
//         skip_verify: false             # true: record certificate problems, do not fail on them
//       ip_family: prefer_ipv6           # any (default), prefer_ipv4, prefer_ipv6, ipv4, ipv6 (only)
//       cache_busting_param: cb          # a fresh random ?cb=... per attempt; [A-Za-z0-9._~-]{1,64}
//
// Every key but name, url, labels and origin may also be set in defaults:
// a check's own value replaces the defaults' (correlation alone is merged).
// docs/checks.md is the reference.
//
// The file must be UTF-8 without control characters (tab, CR and LF aside),
// and no key may appear twice in one mapping. Every bound below is checked by
// validate_check(), the one validation of a check, whether it comes from the
// file (check-config and serve) or from the API; the file's errors name
// file:line:column and the field.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage {

// The bounds of a check. A check must fit in one assignment message to a
// probe (gRPC refuses messages over 4 MB) with room to spare, and every
// duration must be one std::chrono can add to a time point.
namespace check_limits {
using namespace std::chrono_literals;
inline constexpr std::chrono::milliseconds kMinInterval = 1s;
inline constexpr std::chrono::milliseconds kMaxInterval = 24h;
inline constexpr std::chrono::milliseconds kMinTimeout = 100ms;
inline constexpr std::chrono::milliseconds kMaxTimeout = 300s;  // past the edge's 125 s read timeout (a 524)
inline constexpr std::chrono::milliseconds kMinCorrelationDuration = 1s;
inline constexpr std::chrono::milliseconds kMaxCorrelationDuration = 7 * 24h;
inline constexpr uint32_t kMaxCount = 1000;  // correlation counts
inline constexpr size_t kMaxCheckBytes = 64 * 1024;  // serialized
inline constexpr size_t kMaxUrlBytes = 4096;
inline constexpr size_t kMaxHeaders = 64;
inline constexpr size_t kMaxHeaderNameBytes = 256;
inline constexpr size_t kMaxHeaderValueBytes = 8192;
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelKeyBytes = 128;
inline constexpr size_t kMaxLabelValueBytes = 1024;
inline constexpr size_t kMaxRegions = 64;
inline constexpr size_t kMaxRegionBytes = 64;
inline constexpr size_t kMaxStatusRanges = 64;
inline constexpr size_t kMaxAssertions = 32;
inline constexpr size_t kMaxPatternBytes = 1024;
inline constexpr uint32_t kMinBodyLimitBytes = 1024;  // body_limit_bytes, when set (0: the probe's own cap)
inline constexpr uint32_t kMaxBodyLimitBytes = 16 * 1024 * 1024;
inline constexpr uint32_t kMaxFollowRedirects = 20;
inline constexpr size_t kMaxCaPemBytes = 32 * 1024;  // a chain or a few CAs, well inside kMaxCheckBytes
inline constexpr size_t kMaxQueryParamBytes = 64;    // cache_busting_param
inline constexpr size_t kMaxChecks = 10'000;  // in one file
inline constexpr size_t kMaxFileBytes = 16 * 1024 * 1024;
}  // namespace check_limits

// What is wrong with one field of a check. `field` is a path: "interval",
// "origin.address", "correlation.stale_after", "regions[2]",
// "headers.X-Api-Key", "labels.team", "assertions[0].pattern"; empty for
// the check as a whole (its size).
struct CheckProblem {
  std::string field;
  std::string message;
  // "field: message", or the message alone for the whole check.
  std::string describe() const;
};

// A name people choose: [a-z0-9][a-z0-9-]{0,62}. Checks are named so (and
// API tokens, coordinator/api_auth.h).
bool valid_check_name(std::string_view name);

// Check.ip_family as the checks file writes it: any, prefer_ipv4,
// prefer_ipv6, ipv4, ipv6 (the last two: that family only).
std::string_view ip_family_name(v1::IpFamily family);
// The inverse: the family a name means; nullopt for a name that is none.
std::optional<v1::IpFamily> ip_family_from_name(std::string_view name);

// A whole number of 32 bits written in decimal digits only; nullopt for any
// other text. (Ranges are validate_check's.)
std::optional<uint32_t> parse_whole_number(std::string_view text);

// A CA file's PEM text, as tls.ca_file is read (bounded by
// check_limits::kMaxCaPemBytes; what the text holds is validate_check's to
// judge); nullopt with `problem` saying why: "\"PATH\": cannot read it: ...".
std::optional<std::string> read_ca_pem_file(const std::string& path, std::string* problem);

// Fills the defaults (method, interval, timeout, expected status) and
// returns every problem of the check; empty when it is valid. The one
// validation of a check: the checks file (check-config and serve) and the
// API call it.
std::vector<CheckProblem> validate_check(v1::Check& check);

// validate_check() for callers that want one line: false when the check is
// not valid, with its problems joined by "; " in `error`.
bool normalize_check(v1::Check& check, std::string* error);

// Thrown with one line per problem, each naming the file, line, column and
// field at fault ("checks.yaml:12:7: check \"shop\": interval: ...").
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::string problem) : ConfigError(std::vector<std::string>{std::move(problem)}) {}
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Reads and validates a checks file. Throws ConfigError with every problem
// found (a file that is not well-formed stops at its first). A tls.ca_file
// is read relative to the checks file's directory.
std::vector<v1::Check> load_checks_file(const std::string& path);
// The same from text; `origin` names the source in error messages, and a
// relative tls.ca_file is read from `base_dir` (empty: the working directory).
std::vector<v1::Check> parse_checks_yaml(std::string_view text, std::string_view origin,
                                         const std::string& base_dir = "");

// "500ms", "10s", "5m", "1h", "1m30s". nullopt when malformed or past
// about 100 years (whatever the sum, it stays far from overflowing).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::chrono::milliseconds to_millis(const google::protobuf::Duration& d);
google::protobuf::Duration to_duration(std::chrono::milliseconds ms);

}  // namespace vantage
