#include "cli/format.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

#include "common/check_config.h"
#include "common/enum_label.h"
#include "common/proto_time.h"
#include "common/text.h"

namespace vantage::ctl {

namespace {

// Characters of valid UTF-8 text: bytes that do not continue a sequence.
size_t width(std::string_view text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_cli_duration(std::string_view text) {
  using namespace std::chrono;
  milliseconds days{0};
  // Leading days: the digits before a 'd' that starts a unit.
  const auto d = text.find('d');
  if (d != std::string_view::npos && d > 0) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + d, value);
    if (ec != std::errc() || end != text.data() + d || value > 3660) return std::nullopt;
    days = duration_cast<milliseconds>(hours(24) * value);
    text.remove_prefix(d + 1);
    if (text.empty()) return days.count() > 0 ? std::optional(days) : std::nullopt;
  }
  auto rest = parse_duration(text);
  if (!rest || (days + *rest).count() <= 0) return std::nullopt;
  return days + *rest;
}

std::optional<google::protobuf::Timestamp> parse_since(std::string_view text,
                                                       std::chrono::system_clock::time_point now) {
  if (auto ago = parse_cli_duration(text)) return to_timestamp(now - *ago);
  google::protobuf::Timestamp t;
  if (google::protobuf::util::TimeUtil::FromString(std::string(text), &t)) return t;
  return std::nullopt;
}

std::string format_time(const google::protobuf::Timestamp& t, bool millis) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) return "-";
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis) return fmt::format("{}.{:03}Z", buf, t.nanos() / 1'000'000);
  return std::string(buf) + "Z";
}

std::string format_interval(const google::protobuf::Duration& d) {
  struct Unit {
    long long ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  long long rest = to_millis(d).count();
  if (rest <= 0) return "0s";
  std::string out;
  for (const auto& unit : kUnits) {
    if (rest >= unit.ms) {
      out += fmt::format("{}{}", rest / unit.ms, unit.name);
      rest %= unit.ms;
    }
  }
  return out;
}

std::string format_us_as_ms(uint64_t us) {
  if (us == 0) return "-";
  return fmt::format("{:.1f} ms", static_cast<double>(us) / 1000.0);
}

std::string format_ms(const google::protobuf::Duration& d) {
  const auto us = d.seconds() * 1'000'000 + d.nanos() / 1000;
  return us <= 0 ? "-" : format_us_as_ms(static_cast<uint64_t>(us));
}

std::string format_percent(double share) { return fmt::format("{:.2f}%", share * 100.0); }

std::string printable(std::string_view text, size_t max_bytes) {
  // safe_text makes it valid UTF-8 and turns C0 controls but tab into '?';
  // tab would break the alignment, DEL and the C1 controls (U+0080..U+009F,
  // CSI among them) are what remains that a terminal obeys.
  std::string out = safe_text(text, max_bytes);
  std::string clean;
  clean.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c == '\t' || c == 0x7F) {
      clean.push_back('?');
    } else if (c == 0xC2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(out[i + 1]) <= 0x9F) {
      clean.push_back('?');
      ++i;
    } else {
      clean.push_back(out[i]);
    }
  }
  return clean;
}

std::optional<int> enum_from_name(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix,
                                  std::string_view name) {
  return enum_from_label(descriptor, prefix, name);
}

std::string enum_names(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix) {
  std::string out;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() == 0) continue;
    if (!out.empty()) out += "|";
    out += enum_label(descriptor->value(i)->name(), prefix);
  }
  return out;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (auto& cell : cells) cell = printable(cell);
  rows_.push_back(std::move(cells));
}

std::string Table::render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    widths[c] = width(headers_[c]);
    for (const auto& row : rows_) widths[c] = std::max(widths[c], width(row[c]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < cells.size(); ++c) {
      text += cells[c];
      if (c + 1 < cells.size()) text.append(widths[c] - width(cells[c]) + 2, ' ');
    }
    text.erase(text.find_last_not_of(' ') + 1);
    out += text + "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace vantage::ctl
