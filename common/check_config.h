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
//       interval: 30s                    # default 60s, at least 1s
//       timeout: 10s                     # default 10s, at most the interval
//       expected_status: [200, 301, "200-299"]   # default 200-399
//       regions: [us, eu]                # default: every region
//       headers: {User-Agent: vantage}
//       labels: {team: shop}
//       origin: {address: "203.0.113.10:443", host: shop.example.com, sni: shop.example.com}
//       correlation:                     # optional, correlation.md; unset keys: coordinator defaults
//         confirm_consecutive: 2         # counts: whole numbers >= 1
//         resolve_consecutive: 2
//         global_quorum: 2
//         recurring_min: 3
//         stale_after: 150s              # durations: > 0
//         reopen_within: 10m
//         recurring_window: 1h
//         recheck_min_interval: 30s

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage {

// Thrown with a message that names the file, line and field at fault.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and validates a checks file. Throws ConfigError.
std::vector<v1::Check> load_checks_file(const std::string& path);
// The same from text; `origin` names the source in error messages.
std::vector<v1::Check> parse_checks_yaml(std::string_view text, std::string_view origin);

// Empty when the check is valid, otherwise what is wrong with which field.
// Fills defaults (method, interval, timeout, expected status) first.
std::string normalize_check(v1::Check& check);

// "500ms", "10s", "5m", "1h", "1m30s". nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::chrono::milliseconds to_millis(const google::protobuf::Duration& d);
google::protobuf::Duration to_duration(std::chrono::milliseconds ms);

}  // namespace vantage
