#include "common/url.h"

#include <arpa/inet.h>

#include <fmt/format.h>

#include <cctype>
#include <charconv>

#include "common/text.h"

namespace vantage {

namespace {
bool parse_port(std::string_view text, uint16_t* port, bool allow_zero) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || (value == 0 && !allow_zero) ||
      value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

bool is_ipv6_literal(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return false;  // c_str() would cut there
  in6_addr ignored{};
  return inet_pton(AF_INET6, std::string(text).c_str(), &ignored) == 1;
}

// Printable in messages whatever the bytes are.
std::string shown(std::string_view text) {
  std::string out;
  for (char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte >= 0x7f || ch == '"' || ch == '\\') {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}
// The scheme of a reference ("http" in "http://h/"), or empty when it has
// none (RFC 3986 3.1: a letter, then letters, digits, '+', '-' or '.', then ':').
std::string_view reference_scheme(std::string_view reference) {
  const auto colon = reference.find(':');
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(reference[0]))) {
    return {};
  }
  for (size_t i = 1; i < colon; ++i) {
    const auto ch = static_cast<unsigned char>(reference[i]);
    if (!std::isalnum(ch) && ch != '+' && ch != '-' && ch != '.') return {};
  }
  return reference.substr(0, colon);
}

// Spaces and non-ASCII bytes percent-encoded, as browsers send a Location
// that holds them; control characters are left for parse_url to refuse.
std::string percent_encode_unsafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte == ' ' || byte >= 0x80) {
      fmt::format_to(std::back_inserter(out), "%{:02X}", byte);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}
}  // namespace

std::string url_text(const Url& url) { return url.scheme + "://" + url.host_header + url.target; }

std::string remove_dot_segments(std::string_view path) {
  std::string input(path);
  std::string output;
  while (!input.empty()) {
    if (input.starts_with("../")) {
      input.erase(0, 3);
    } else if (input.starts_with("./") || input.starts_with("/./")) {
      input.erase(0, 2);
    } else if (input == "/.") {
      input = "/";
    } else if (input.starts_with("/../") || input == "/..") {
      input = input.size() == 3 ? "/" : input.substr(3);
      const auto last = output.rfind('/');
      output.erase(last == std::string::npos ? 0 : last);
    } else if (input == "." || input == "..") {
      input.clear();
    } else {
      const auto next = input.find('/', 1);
      output += input.substr(0, next);
      input.erase(0, next);
    }
  }
  return output;
}

std::optional<Url> resolve_reference(const Url& base, std::string_view reference, std::string* error) {
  if (reference.empty()) {
    *error = "empty reference";
    return std::nullopt;
  }
  const std::string ref = percent_encode_unsafe(reference.substr(0, reference.find('#')));
  if (const auto scheme = reference_scheme(ref); !scheme.empty()) {
    const auto lower = ascii_lower(std::string(scheme));
    if (lower != "http" && lower != "https") {
      *error = fmt::format("scheme \"{}\" is not http or https", shown(scheme));
      return std::nullopt;
    }
    if (!std::string_view(ref).substr(scheme.size() + 1).starts_with("//")) {
      *error = fmt::format("\"{}\" has no host (expected {}://host/...)", shown(ref), lower);
      return std::nullopt;
    }
    return parse_url(ref, error);
  }
  if (ref.starts_with("//")) return parse_url(base.scheme + ":" + ref, error);
  // Relative (RFC 3986 5.2.2): the base's path, merged with the reference's
  // when that is not absolute; the reference's query, or the base's when the
  // reference has neither path nor query.
  const std::string_view base_target = base.target;
  const auto base_query_at = base_target.find('?');
  const auto base_path = base_target.substr(0, base_query_at);
  const auto query_at = ref.find('?');
  const auto path = std::string_view(ref).substr(0, query_at);
  const auto query = query_at == std::string::npos ? std::string_view() : std::string_view(ref).substr(query_at);
  std::string target;
  if (path.empty()) {
    target = std::string(base_path) +
             std::string(query_at != std::string::npos || base_query_at == std::string_view::npos
                             ? query
                             : base_target.substr(base_query_at));
  } else if (path.front() == '/') {
    target = remove_dot_segments(path) + std::string(query);
  } else {
    const auto merged = std::string(base_path.substr(0, base_path.rfind('/') + 1)) + std::string(path);
    target = remove_dot_segments(merged) + std::string(query);
  }
  return parse_url(base.scheme + "://" + base.host_header + target, error);
}

bool valid_host(std::string_view host, std::string* error) {
  if (host.empty()) {
    *error = "missing host";
    return false;
  }
  if (host.find(':') != std::string_view::npos) {
    if (is_ipv6_literal(host)) return true;
    *error = fmt::format("\"{}\" is not an IPv6 address", shown(host));
    return false;
  }
  if (host.size() > 253 + (host.back() == '.' ? 1 : 0)) {
    *error = fmt::format("host name is {} bytes, longer than 253", host.size());
    return false;
  }
  std::string_view labels = host.back() == '.' ? host.substr(0, host.size() - 1) : host;
  size_t label_length = 0;
  for (size_t i = 0; i <= labels.size(); ++i) {
    if (i == labels.size() || labels[i] == '.') {
      if (label_length == 0 || label_length > 63) {
        *error = fmt::format("host \"{}\" has an empty label or one longer than 63", shown(host));
        return false;
      }
      label_length = 0;
      continue;
    }
    const auto ch = static_cast<unsigned char>(labels[i]);
    if (ch >= 0x80) {
      *error = fmt::format("host \"{}\" is not ASCII (write an international name in its xn-- form)",
                           shown(host));
      return false;
    }
    if (!std::isalnum(ch) && ch != '-' && ch != '_') {
      *error = fmt::format("host \"{}\" contains '{}', which no host name has", shown(host),
                           shown(labels.substr(i, 1)));
      return false;
    }
    ++label_length;
  }
  return true;
}

std::optional<HostPort> parse_host_port(std::string_view text, uint16_t default_port,
                                        std::string* error, bool listen) {
  HostPort out;
  std::string_view port_text;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      *error = "unterminated '[' in IPv6 address";
      return std::nullopt;
    }
    out.host = std::string(text.substr(1, close - 1));
    if (!is_ipv6_literal(out.host)) {
      *error = fmt::format("\"[{}]\" is not an IPv6 address", shown(out.host));
      return std::nullopt;
    }
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "expected ':' after ']'";
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      if (text.find(':') != colon) {
        *error = "IPv6 addresses need brackets, e.g. [2001:db8::1]:443";
        return std::nullopt;
      }
      port_text = text.substr(colon + 1);
      text = text.substr(0, colon);
    }
    out.host = std::string(text);
  }
  if (!valid_host(out.host, error)) return std::nullopt;
  if (port_text.empty()) {
    if (default_port == 0) {
      *error = "missing port";
      return std::nullopt;
    }
    out.port = default_port;
  } else if (!parse_port(port_text, &out.port, listen)) {
    *error = fmt::format("port \"{}\" is not a number from {} to 65535", shown(port_text), listen ? 0 : 1);
    return std::nullopt;
  }
  return out;
}

std::optional<Url> parse_url(std::string_view text, std::string* error) {
  Url url;
  auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    *error = "missing scheme (expected http:// or https://)";
    return std::nullopt;
  }
  url.scheme = std::string(text.substr(0, sep));
  url.scheme = ascii_lower(url.scheme);
  uint16_t default_port = 0;
  if (url.scheme == "http") {
    default_port = 80;
  } else if (url.scheme == "https") {
    default_port = 443;
  } else {
    *error = "scheme \"" + url.scheme + "\" is not http or https";
    return std::nullopt;
  }
  auto rest = text.substr(sep + 3);
  auto path_start = rest.find_first_of("/?#");
  auto authority = rest.substr(0, path_start);
  if (authority.find('@') != std::string_view::npos) {
    *error = "credentials in the URL are not supported (use a header)";
    return std::nullopt;
  }
  std::string hp_error;
  auto hp = parse_host_port(authority, default_port, &hp_error);
  if (!hp) {
    *error = hp_error;
    return std::nullopt;
  }
  url.host = hp->host;
  url.port = hp->port;
  url.host_header = std::string(authority);
  std::string_view target =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (auto hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  url.target = target.empty() || target.front() != '/' ? "/" + std::string(target) : std::string(target);
  for (char ch : url.target) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
      *error = "the path contains a space or control character (percent-encode it)";
      return std::nullopt;
    }
  }
  return url;
}

}  // namespace vantage
