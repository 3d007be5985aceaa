#pragma once
// vantagectl's pure helpers: reading durations and times from flags, and
// writing times, durations, shares and aligned tables for people. Nothing
// here talks to the network, so all of it is unit-tested.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vantage::ctl {

// A duration as the checks file writes it ("500ms", "30s", "1m30s", "24h"),
// plus leading days ("7d", "1d12h") for summary windows and --since.
// nullopt when malformed or zero.
std::optional<std::chrono::milliseconds> parse_cli_duration(std::string_view text);

// --since: a duration back from `now` ("90m", "2d") or an RFC 3339 time
// ("2026-11-30T12:00:00Z", "2026-11-30T13:00:00+01:00"). nullopt when it is
// neither.
std::optional<google::protobuf::Timestamp> parse_since(std::string_view text,
                                                       std::chrono::system_clock::time_point now);

// "2026-11-30T12:00:05Z" (UTC, RFC 3339); with `millis`, "...:05.123Z".
// "-" for an unset time (zero).
std::string format_time(const google::protobuf::Timestamp& t, bool millis = false);
// In the checks file's notation: "1h", "1m30s", "500ms"; "0s" for zero.
std::string format_interval(const google::protobuf::Duration& d);
// Latencies: "12.3 ms"; "-" when unset (zero).
std::string format_ms(const google::protobuf::Duration& d);
std::string format_us_as_ms(uint64_t us);
// A share in [0, 1] as "99.52%".
std::string format_percent(double share);

// Text from the server as a table cell or a line: what a checked site wrote
// reaches the terminal, so control characters (an escape sequence would
// drive the terminal) become '?', and it is bounded.
std::string printable(std::string_view text, size_t max_bytes = 200);

// The enum value of `descriptor` whose name, without `prefix` and in lower
// case, is `name` ("open" for INCIDENT_STATE_OPEN); never the zero value.
std::optional<int> enum_from_name(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix,
                                  std::string_view name);
// The lower-case names enum_from_name() accepts, joined by "|".
std::string enum_names(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix);

// Columns aligned by the widest cell (counted in characters, not bytes), two
// spaces apart; the last column is not padded. Cells go through printable().
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add_row(std::vector<std::string> cells);  // missing cells are empty
  size_t rows() const { return rows_.size(); }
  std::string render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace vantage::ctl
