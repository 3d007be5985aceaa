#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <regex>
#include <stdexcept>

#include "common/option_error.h"

namespace vantage::log {

void init(std::string_view component, std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str answers "off" for anything it does not know.
  if (parsed == spdlog::level::off && level != "off") {
    throw OptionError("log_level",
                      fmt::format("unknown log level \"{}\" (expected debug, info, warn or error)", level));
  }
  // Not registered by name, so init() may run again (tests, subcommands).
  auto logger = std::make_shared<spdlog::logger>(
      std::string(component), std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      fmt::format("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l component={} %v", component),
      spdlog::pattern_time_type::utc));
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void append_field(std::string& out, std::string_view key, std::string_view value) {
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  bool quote = value.empty();
  for (char ch : value) {
    if (ch == ' ' || ch == '"' || ch == '=' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) {
      quote = true;
      break;
    }
  }
  if (!quote) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char ch : value) {
    switch (ch) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          out.append(fmt::format("\\x{:02x}", static_cast<unsigned char>(ch)));
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

std::string redact(std::string_view text) {
  static const std::regex kUserinfo(R"(([a-z]+://[^:/@\s]*):[^@\s]*@)", std::regex::icase);
  static const std::regex kKeyword(R"((password\s*=\s*)('[^']*'|\S+))", std::regex::icase);
  std::string out = std::regex_replace(std::string(text), kUserinfo, "$1:***@");
  return std::regex_replace(out, kKeyword, "$1***");
}

}  // namespace vantage::log
