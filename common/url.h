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

// The URL as text: scheme://authority/path?query, the authority as it was
// written (Url::host_header).
std::string url_text(const Url& url);

// RFC 3986 section 5: `reference` (a Location header) resolved against
// `base`: absolute ("https://h/x"), scheme-relative ("//h/x"), absolute-path
// ("/x"), relative-path with dot segments ("../x") or query-only ("?q"); any
// fragment is dropped, and spaces and non-ASCII bytes are percent-encoded
// (as browsers do). nullopt with `error` when the reference is empty, names a
// scheme other than http or https, or resolves to what parse_url refuses.
std::optional<Url> resolve_reference(const Url& base, std::string_view reference, std::string* error);

// RFC 3986 5.2.4: "." and ".." segments removed from an absolute path.
std::string remove_dot_segments(std::string_view path);

// A DNS name (labels of 1 to 63 letters, digits, '-' or '_', at most 253
// bytes, an optional final '.'), an IPv4 literal or an IPv6 literal (without
// brackets). Nothing else may reach a Host header, a TLS server name or a
// resolver: no spaces, control characters, '@', '/' or non-ASCII bytes.
bool valid_host(std::string_view host, std::string* error);

// "host:port", "[v6]:port" or "host" (port then `default_port`); the host as
// valid_host() wants it. Port 0 ("any free port") only for addresses to
// listen on.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text, uint16_t default_port,
                                        std::string* error, bool listen = false);

}  // namespace vantage
