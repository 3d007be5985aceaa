#pragma once
// Structured logs as logfmt lines on stderr:
//   ts=2026-11-26T19:40:00.123Z level=info component=coordinator msg="probe connected" probe=us-1
// Quiet by default: "info" carries lifecycle events only; per-result detail is "debug".

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace vantage::log {

// Sets the level ("debug", "info", "warn", "error") and the component name.
// Throws OptionError (option "log_level") naming the bad level.
void init(std::string_view component, std::string_view level = "info");

// Appends ` key=value` to `out`, quoting the value when it needs it.
void append_field(std::string& out, std::string_view key, std::string_view value);

namespace detail {
inline void append_fields(std::string&) {}
template <typename V, typename... Rest>
void append_fields(std::string& out, std::string_view key, const V& value, const Rest&... rest) {
  if constexpr (std::is_convertible_v<const V&, std::string_view>) {
    append_field(out, key, std::string_view(value));
  } else {
    append_field(out, key, fmt::format("{}", value));
  }
  append_fields(out, rest...);
}
template <typename... KV>
void write(spdlog::level::level_enum level, std::string_view msg, const KV&... kv) {
  static_assert(sizeof...(KV) % 2 == 0, "log fields come in key, value pairs");
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  std::string line;
  append_field(line, "msg", msg);
  append_fields(line, kv...);
  logger->log(level, "{}", std::string_view(line).substr(1));
}
}  // namespace detail

template <typename... KV>
void debug(std::string_view msg, const KV&... kv) { detail::write(spdlog::level::debug, msg, kv...); }
template <typename... KV>
void info(std::string_view msg, const KV&... kv) { detail::write(spdlog::level::info, msg, kv...); }
template <typename... KV>
void warn(std::string_view msg, const KV&... kv) { detail::write(spdlog::level::warn, msg, kv...); }
template <typename... KV>
void error(std::string_view msg, const KV&... kv) { detail::write(spdlog::level::err, msg, kv...); }

// "postgresql://user:secret@host/db" -> "postgresql://user:***@host/db", and
// "password=secret" -> "password=***": connection strings never reach a log whole.
std::string redact(std::string_view text);

}  // namespace vantage::log
