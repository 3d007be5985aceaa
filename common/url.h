#pragma once
// The parts of an http(s) URL a probe needs. Deliberately small: no userinfo,
// no fragments sent, IPv6 literals in brackets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vantage {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6
  uint16_t port = 0;   // explicit or the scheme's default
  std::string target;  // path and query, at least "/"
  // "host" or "host:port" as the Host header wants it (port only when explicit).
  std::string host_header;
};

// On failure returns nullopt and sets `error` to what is wrong.
std::optional<Url> parse_url(std::string_view text, std::string* error);

// "host:port", "[v6]:port" or "host" (port then `default_port`). Port 0
// ("any free port") only for addresses to listen on.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text, uint16_t default_port,
                                        std::string* error, bool listen = false);

}  // namespace vantage
