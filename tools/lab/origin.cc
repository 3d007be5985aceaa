#include "tools/lab/origin.h"
#include "tools/lab/ascii.h"
#include "tools/lab/socket.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

namespace vantage::lab {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;
constexpr uint64_t kMiB = 1024 * 1024;
// What a "field of about 1000 bytes" is, for /fault/headers.
constexpr size_t kFillerLineBytes = 1000;
// How long /fault/reset-mid-body waits between its last byte and the RST, so
// the client has read the head when the reset arrives.
constexpr std::chrono::milliseconds kPauseBeforeReset{50};

constexpr std::string_view kHelp =
    R"(Paths (parameters as a query string, e.g. /fault/headers?kb=64):
  /                            200 "ok"
  /status/NNN                  status NNN (500/502/503: origin_5xx)
  /fail                        the status set for /fail (default 200)
  /target?QUERY                200 whose body is the request's path and query
  /fault/empty-reply           read the request, FIN without a byte
  /fault/reset                 read the request, RST without a byte
  /fault/reset-mid-body        Content-Length: 1000, 100 bytes, RST
  /fault/partial-head          "HTTP/1.1 200 OK\r\nContent-Ty", FIN
  /fault/bad-status-line       "HTTP/1.1 2000 OK"
  /fault/banner                "SSH-2.0-OpenSSH_9.2", FIN
  /fault/http09                an HTML body without a status line, FIN
  /fault/header-without-colon  a header line with no colon
  /fault/conflicting-length    two different Content-Length values
  /fault/length-and-chunked    Content-Length with Transfer-Encoding: chunked
  /fault/bad-chunk             a chunked body with an invalid chunk size
  /fault/truncated-body        Content-Length: 1000, 100 bytes, FIN
  /fault/headers?kb=N          a valid 200 with an N KiB header block (default 64)
  /fault/header-fields?count=N a valid 200 with N header fields (default 100)
  /fault/stall?seconds=S       send nothing for S seconds, then FIN (default 30)
  /fault/trickle-head?delay_ms=D  a valid head, one byte every D ms (default 1000)
  /fault/big-body?mb=N         a valid 200 with an N MiB body, streamed (default 10)
  /fault/hostile-headers       a 200 whose Server and CF-Cache-Status are not UTF-8, cf-ray with a random colo
  /fault/hostile-edge-error    a JSON 520 whose error name holds NUL, ESC and KBs, cf-ray with a random colo
  /fault/redirect?to=URL&status=S  status S (default 302) with Location: URL (%-decoded; none without to=)
  /fault/redirect-chain?n=N    302 to ?n=N-1 (an absolute path), a 200 at n=0 (default 3)
  /fault/redirect-loop         302 to /fault/redirect-loop?n=1, which 302s back
  /fault/method?is=M           200 with the request's method as body when it is M (or no is=), else 405
                               (these four: &delay_ms=D waits D ms before answering)
  /fault/echo?body=T&repeat=N&header=Name:Value  a 200 with body T (%-decoded) N times (default 1)
                               and each header= field (%-decoded; may repeat)
  /lab/fault?name=F[&colo=C][&every_s=S]
                               from now on, answer "/" and other plain paths with
                               /fault/F when the request came through the fake edge
                               (it carries CF-Ray), through colo C only if given, at
                               most once every S seconds if given (without colo=,
                               each time through another colo); name=none clears
                               (for colo C, or every rule); requests straight to the
                               origin are never affected (a healthy origin leg)
Keep-alive, on any path: --idle-close-ms (FIN an idle connection) and
--max-requests (FIN after that many requests on a connection).
)";

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 520: return "Unknown Error";
    default: return "Status";
  }
}

// The integer query parameter `name`, or `fallback`, clamped to [lo, hi].
int64_t query_int(std::string_view query, std::string_view name, int64_t fallback, int64_t lo, int64_t hi) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    const auto value = pair.substr(eq + 1);
    int64_t parsed = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (ec != std::errc() || end != value.data() + value.size()) return fallback;
    return std::clamp(parsed, lo, hi);
  }
  return fallback;
}

// The text query parameter `name`, or empty.
std::string query_text(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
  }
  return {};
}

// The colo of a request forwarded by the (fake) edge: "...-FRA" in CF-Ray.
std::string edge_colo(std::string_view head) {
  for (size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at + 2)) {
    const auto line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
    if (line.size() < 7 || !std::equal(line.begin(), line.begin() + 7, "cf-ray:", [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      continue;
    }
    const auto dash = line.rfind('-');
    if (dash == std::string_view::npos) return {};
    auto colo = std::string(line.substr(dash + 1));
    while (!colo.empty() && (colo.back() == ' ' || colo.back() == '\t')) colo.pop_back();
    return colo;
  }
  return {};
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(duration);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// What the connection does after a response.
enum class After {
  kKeepAlive,  // read the next request (unless this was the last one)
  kClosed,     // the response closed (or lost) the connection itself
};

// Writes `bytes`, then closes with a FIN.
asio::awaitable<After> send_then_fin(tcp::socket& socket, std::string bytes) {
  if (!bytes.empty()) co_await write_all(socket, bytes);
  close_fin(socket);
  co_return After::kClosed;
}

std::string connection_header(bool last) { return last ? "Connection: close\r\n" : ""; }

// A valid 200 "ok\n" whose header block (status line to blank line) is
// `target` bytes, padded with filler fields of about kFillerLineBytes.
std::string big_head_response(size_t target, bool last) {
  const std::string start =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n" + connection_header(last);
  std::string head = start;
  // "X-Lab-Filler-00000: " + value + "\r\n"
  constexpr size_t kOverhead = 22;
  const size_t fixed = start.size() + 2;
  if (target > fixed + kOverhead) {
    const size_t remaining = target - fixed;
    const size_t lines = (remaining + kFillerLineBytes - 1) / kFillerLineBytes;
    head.reserve(target + 8);
    for (size_t i = 0; i < lines; ++i) {
      const size_t line = remaining / lines + (i < remaining % lines ? 1 : 0);
      head += fmt::format("X-Lab-Filler-{:05d}: {}\r\n", i, std::string(line - kOverhead, 'a'));
    }
  }
  return head + "\r\nok\n";
}

// A valid 200 "ok\n" with exactly `count` header fields (at least the ones
// it needs).
std::string many_fields_response(size_t count, bool last) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + connection_header(last);
  const size_t fixed = last ? 2 : 1;
  for (size_t i = fixed; i < count; ++i) head += fmt::format("X-Lab-Field-{:05d}: v\r\n", i);
  return head + "\r\nok\n";
}

asio::awaitable<After> trickle_head(tcp::socket& socket, std::chrono::milliseconds delay, bool last) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n" +
                           connection_header(last) + "\r\n";
  for (size_t i = 0; i < head.size(); ++i) {
    if (i > 0) co_await sleep_for(delay);
    if (!co_await write_all(socket, std::string_view(head).substr(i, 1))) {
      close_fin(socket);
      co_return After::kClosed;
    }
  }
  if (!co_await write_all(socket, "ok\n")) {
    close_fin(socket);
    co_return After::kClosed;
  }
  co_return After::kKeepAlive;
}

// Streams `bytes` of body as the client reads it; never holds more than one
// 64 KiB block.
asio::awaitable<After> big_body(tcp::socket& socket, uint64_t bytes, bool last) {
  static const std::string block(64 * 1024, 'x');
  const std::string head = fmt::format(
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n{}\r\n", bytes,
      connection_header(last));
  bool ok = co_await write_all(socket, head);
  for (uint64_t sent = 0; ok && sent < bytes; sent += block.size()) {
    ok = co_await write_all(socket, std::string_view(block).substr(0, std::min<uint64_t>(block.size(), bytes - sent)));
  }
  if (!ok) {  // the client went away (or reset): stop
    close_fin(socket);
    co_return After::kClosed;
  }
  co_return After::kKeepAlive;
}

// A cf-ray with a 16-hex-digit id and a colo of three random upper-case
// letters: a site (or a broken proxy) that mints a new colo each time.
std::string random_cf_ray() {
  static std::minstd_rand random(static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::string colo;
  for (int i = 0; i < 3; ++i) colo.push_back(static_cast<char>('A' + random() % 26));
  return fmt::format("{:08x}{:08x}-{}", random(), random(), colo);
}

// Text that must not reach a proto string as it is: bytes that are not UTF-8,
// then 300 two-byte characters (any byte-count cut lands inside one).
std::string not_utf8_then_long() {
  std::string text = "\xff\xfe\xc3(";
  for (int i = 0; i < 300; ++i) text += "\xc3\xa9";  // é
  return text;
}

std::string hostile_headers_response(bool last) {
  const std::string body = "ok\n";
  return fmt::format(
      "HTTP/1.1 200 OK\r\nServer: {}\r\nCF-Cache-Status: H\xc0\xafT\r\ncf-ray: {}\r\n"
      "Content-Type: text/plain; charset=\x80\r\nContent-Length: {}\r\n{}\r\n{}",
      not_utf8_then_long(), random_cf_ray(), body.size(), connection_header(last), body);
}

std::string hostile_edge_error_response(bool last) {
  std::string long_text;
  for (int i = 0; i < 2000; ++i) long_text += "\xc3\xa9";
  const std::string body = fmt::format(
      "{{\"cloudflare_error\":true,\"error_code\":520,\"error_name\":\"bad\\u0000name\\u001b[31m{}\","
      "\"error_category\":\"\\r\\nX-Injected: 1\",\"ray_id\":\"0123456789abcdef\"}}",
      long_text);
  return fmt::format(
      "HTTP/1.1 520 Unknown Error\r\nServer: cloudflare\r\ncf-ray: {}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n{}\r\n{}",
      random_cf_ray(), body.size(), connection_header(last), body);
}

std::string not_found_fault(std::string_view name) {
  const std::string body = fmt::format("unknown fault \"{}\"\n{}", name, kHelp);
  return fmt::format("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
                     body.size(), body);
}

// One /fault/<name> request.
asio::awaitable<After> fault(tcp::socket& socket, std::string_view name, std::string_view query, bool last) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  if (name == "empty-reply") co_return co_await send_then_fin(socket, "");
  if (name == "reset") {
    close_rst(socket);
    co_return After::kClosed;
  }
  if (name == "reset-mid-body") {
    const std::string bytes =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x');
    co_await write_all(socket, bytes);
    co_await sleep_for(kPauseBeforeReset);
    close_rst(socket);
    co_return After::kClosed;
  }
  if (name == "partial-head") co_return co_await send_then_fin(socket, "HTTP/1.1 200 OK\r\nContent-Ty");
  if (name == "bad-status-line") {
    co_return co_await send_then_fin(socket,
                                     "HTTP/1.1 2000 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n");
  }
  if (name == "banner") co_return co_await send_then_fin(socket, "SSH-2.0-OpenSSH_9.2\r\n");
  if (name == "http09") {
    co_return co_await send_then_fin(socket, "<html><head><title>ok</title></head><body>ok</body></html>\n");
  }
  if (name == "header-without-colon") {
    co_return co_await send_then_fin(socket,
                                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nBroken header\r\n"
                                     "Content-Length: 3\r\n\r\nok\n");
  }
  if (name == "conflicting-length") {
    co_return co_await send_then_fin(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok\n");
  }
  if (name == "length-and-chunked") {
    co_return co_await send_then_fin(
        socket, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n");
  }
  if (name == "bad-chunk") {
    co_return co_await send_then_fin(socket,
                                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\n\r\n0\r\n\r\n");
  }
  if (name == "truncated-body") {
    co_return co_await send_then_fin(
        socket, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x'));
  }
  if (name == "headers") {
    const auto kb = query_int(query, "kb", 64, 0, 4096);
    const std::string response = big_head_response(static_cast<size_t>(kb) * 1024, last);
    if (!co_await write_all(socket, response)) {
      close_fin(socket);
      co_return After::kClosed;
    }
    co_return After::kKeepAlive;
  }
  if (name == "header-fields") {
    const auto count = query_int(query, "count", 100, 1, 100000);
    const std::string response = many_fields_response(static_cast<size_t>(count), last);
    if (!co_await write_all(socket, response)) {
      close_fin(socket);
      co_return After::kClosed;
    }
    co_return After::kKeepAlive;
  }
  if (name == "stall") {
    co_await sleep_for(seconds(query_int(query, "seconds", 30, 0, 86400)));
    close_fin(socket);
    co_return After::kClosed;
  }
  if (name == "trickle-head") {
    co_return co_await trickle_head(socket, milliseconds(query_int(query, "delay_ms", 1000, 1, 60000)), last);
  }
  if (name == "big-body") {
    const auto mb = query_int(query, "mb", 10, 0, 1024 * 1024);
    co_return co_await big_body(socket, static_cast<uint64_t>(mb) * kMiB, last);
  }
  const std::string response = name == "hostile-headers"      ? hostile_headers_response(last)
                               : name == "hostile-edge-error" ? hostile_edge_error_response(last)
                                                              : not_found_fault(name);
  if (!co_await write_all(socket, response)) {
    close_fin(socket);
    co_return After::kClosed;
  }
  co_return After::kKeepAlive;
}

// A query value with its %XX escapes decoded (a URL passed as to=).
std::string percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16).ptr == text.data() + i + 3) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string redirect_response(int status, std::string_view location, bool last) {
  const std::string body = fmt::format("redirect {}\n", status);
  return fmt::format("HTTP/1.1 {} Redirect\r\n{}Content-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}", status,
                     location.empty() ? std::string() : fmt::format("Location: {}\r\n", location), body.size(),
                     connection_header(last), body);
}

// The redirect faults (and /fault/method, to see which method a redirect
// sent): the whole response, or nullopt for any other fault name.
std::optional<std::string> redirect_fault(std::string_view name, std::string_view query, std::string_view head,
                                          bool last) {
  if (name == "redirect") {
    const auto status = static_cast<int>(query_int(query, "status", 302, 300, 399));
    return redirect_response(status, percent_decode(query_text(query, "to")), last);
  }
  if (name == "redirect-chain") {
    const auto n = query_int(query, "n", 3, 0, 1000);
    if (n == 0) return fmt::format("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n{}\r\nok\n", connection_header(last));
    return redirect_response(302, fmt::format("/fault/redirect-chain?n={}", n - 1), last);
  }
  if (name == "redirect-loop") {
    return redirect_response(302, query_int(query, "n", 0, 0, 1) == 0 ? "/fault/redirect-loop?n=1" : "/fault/redirect-loop",
                             last);
  }
  if (name == "method") {
    const auto method = head.substr(0, head.find(' '));
    const auto wanted = query_text(query, "is");
    const int status = wanted.empty() || method == wanted ? 200 : 405;
    const std::string body = fmt::format("{}\n", method);
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}", status,
                       status == 200 ? "OK" : "Method Not Allowed", body.size(), connection_header(last), body);
  }
  return std::nullopt;
}

// Every value of the query parameter `name`, in order.
std::vector<std::string> query_texts(std::string_view query, std::string_view name) {
  std::vector<std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) out.emplace_back(pair.substr(eq + 1));
  }
  return out;
}

// /fault/echo: a 200 with the body and header fields the query asks for
// (what a check's assertions look at). A header= without a colon, or one
// that would put CR or LF on the wire, is left out.
std::string echo_response(std::string_view query, bool last) {
  constexpr uint64_t kMaxEchoBytes = 16 * kMiB;
  const auto text = percent_decode(query_text(query, "body"));
  const auto most = text.empty() ? 1 : static_cast<int64_t>(kMaxEchoBytes / text.size());
  const auto repeat = query_int(query, "repeat", 1, 1, most);
  std::string fields;
  for (const auto& header : query_texts(query, "header")) {
    const auto field = percent_decode(header);
    const auto colon = field.find(':');
    if (colon == 0 || colon == std::string::npos || field.find_first_of("\r\n") != std::string::npos) continue;
    const std::string_view name_value(field);
    fmt::format_to(std::back_inserter(fields), "{}: {}\r\n", name_value.substr(0, colon),
                   trim_ows(name_value.substr(colon + 1)));
  }
  std::string body;
  body.reserve(text.size() * static_cast<size_t>(repeat));
  for (int64_t i = 0; i < repeat; ++i) body += text;
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{}Content-Length: {}\r\n{}\r\n{}", fields,
                     body.size(), connection_header(last), body);
}

// Reads the next request head into `buffer`; returns its length, or 0 when the
// connection ended or stayed idle past `idle` (then `idle_expired` is set).
asio::awaitable<size_t> read_request(tcp::socket& socket, asio::streambuf& buffer, std::chrono::milliseconds idle,
                                     bool& idle_expired) {
  // The timer's handler may run after the read has finished (both completed
  // in the same turn); `watch` tells it the read is over, and it then leaves
  // the socket alone.
  struct Watch {
    bool reading = true;
    bool expired = false;
  };
  auto watch = std::make_shared<Watch>();
  asio::steady_timer timer(socket.get_executor());
  if (idle.count() > 0) {
    timer.expires_after(idle);
    timer.async_wait([watch, &socket](const boost::system::error_code& ec) {
      if (ec || !watch->reading) return;
      watch->expired = true;
      boost::system::error_code ignored;
      socket.cancel(ignored);
    });
  }
  boost::system::error_code ec;
  const auto n =
      co_await asio::async_read_until(socket, buffer, "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
  watch->reading = false;
  timer.cancel();
  if (ec) {
    idle_expired = watch->expired;
    co_return 0;
  }
  co_return n;
}

}  // namespace

std::string_view Origin::help() { return kHelp; }

struct Origin::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::unique_ptr<tcp::acceptor>> more_acceptors;  // also_listen (touched by its caller only)
  std::thread thread;

  // /lab/fault rules by colo ("" = any colo); touched on the io thread only.
  struct EdgeFault {
    std::string name;
    std::chrono::seconds every{0};
    std::chrono::steady_clock::time_point last_fired{};
    std::string last_colo;  // where a periodic rule for every colo last fired
  };
  std::map<std::string, EdgeFault> edge_faults;

  std::string set_edge_fault(std::string_view query) {
    const auto name = query_text(query, "name");
    const auto colo = query_text(query, "colo");
    if (name.empty()) return "name is required (a /fault/ name, or none)";
    if (name == "none") {
      if (colo.empty()) {
        edge_faults.clear();
      } else {
        edge_faults.erase(colo);
      }
      return {};
    }
    edge_faults[colo] = EdgeFault{name, std::chrono::seconds(query_int(query, "every_s", 0, 0, 86'400)), {}, {}};
    return {};
  }

  // The fault a plain request through the edge gets now, if any.
  std::optional<std::string> edge_fault_for(std::string_view head) {
    if (edge_faults.empty()) return std::nullopt;
    const auto colo = edge_colo(head);
    if (colo.empty()) return std::nullopt;  // straight to the origin
    auto it = edge_faults.find(colo);
    if (it == edge_faults.end()) it = edge_faults.find("");
    if (it == edge_faults.end()) return std::nullopt;
    auto& rule = it->second;
    const auto now = std::chrono::steady_clock::now();
    if (rule.every.count() > 0 && rule.last_fired != std::chrono::steady_clock::time_point{}) {
      if (now - rule.last_fired < rule.every) return std::nullopt;
      // Scattered single failures: a periodic rule for every colo moves on to
      // another colo each time (the probes' fixed phases would otherwise pin
      // it to one of them).
      if (it->first.empty() && colo == rule.last_colo) return std::nullopt;
    }
    rule.last_fired = now;
    rule.last_colo = colo;
    return rule.name;
  }

  asio::awaitable<void> serve(tcp::socket socket, Origin* self) {
    asio::streambuf buffer(kMaxRequestHead);
    for (uint64_t served = 0;;) {
      bool idle_expired = false;
      const auto n =
          co_await read_request(socket, buffer, std::chrono::milliseconds(self->idle_close_ms_.load()), idle_expired);
      if (n == 0) {
        if (idle_expired) close_fin(socket);  // like nginx keepalive_timeout
        co_return;
      }
      std::string head(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
      buffer.consume(n);
      ++self->requests_;
      ++served;
      // "GET /path?query HTTP/1.1"
      auto sp1 = head.find(' ');
      auto sp2 = head.find(' ', sp1 + 1);
      std::string target = sp1 == std::string::npos ? "/" : head.substr(sp1 + 1, sp2 - sp1 - 1);
      const auto question = target.find('?');
      const std::string path = target.substr(0, question);
      const std::string query = question == std::string::npos ? "" : target.substr(question + 1);
      const uint64_t max_requests = self->max_requests_;
      const bool close = head.find("Connection: close") != std::string::npos ||
                         head.find("connection: close") != std::string::npos;
      // The last request on this connection: the client asked, or the lab's
      // keepalive_requests is reached (like nginx: say so, then FIN).
      const bool last = close || (max_requests > 0 && served >= max_requests);

      if (path == "/lab/fault") {
        const auto error = set_edge_fault(query);
        const int code = error.empty() ? 200 : 400;
        const std::string body = error.empty() ? "fault set\n" : error + "\n";
        if (!co_await write_all(socket, fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\n"
                                                    "Content-Length: {}\r\n{}\r\n{}",
                                                    code, code == 200 ? "OK" : "Bad Request", body.size(),
                                                    connection_header(last), body)) ||
            last) {
          close_fin(socket);
          co_return;
        }
        continue;
      }
      if (path == "/fault/echo") {
        if (!co_await write_all(socket, echo_response(query, last)) || last) {
          close_fin(socket);
          co_return;
        }
        continue;
      }
      std::optional<std::string> edge_fault;
      if (path.starts_with("/fault/")) {
        edge_fault = path.substr(7);
      } else if (!path.starts_with("/status/")) {
        edge_fault = edge_fault_for(head);
      }
      if (edge_fault) {
        auto after = After::kClosed;
        if (auto redirect = redirect_fault(*edge_fault, query, head, last)) {
          co_await sleep_for(std::chrono::milliseconds(query_int(query, "delay_ms", 0, 0, 60'000)));
          after = co_await write_all(socket, *redirect) ? After::kKeepAlive : After::kClosed;
          if (after == After::kClosed) close_fin(socket);
        } else {
          after = co_await fault(socket, *edge_fault, query, last);
        }
        if (after == After::kClosed) co_return;
        if (last) {
          close_fin(socket);
          co_return;
        }
        continue;
      }

      int status = 200;
      if (path.starts_with("/status/")) {
        auto code = std::string_view(path).substr(8);
        std::from_chars(code.data(), code.data() + code.size(), status);
      } else if (path == "/fail") {
        status = self->fail_status_;
      } else if (path != "/" && path != "/target") {
        status = 404;
      }
      std::string body = path == "/target" ? target + "\n"
                         : status == 200     ? "ok\n"
                                             : fmt::format("status {}\n", status);
      std::string response =
          fmt::format("HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}", status,
                      reason(status), body.size(), connection_header(last), body);
      const bool written = co_await write_all(socket, response);
      if (!written) co_return;
      if (last) {
        close_fin(socket);
        co_return;
      }
    }
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& listener, Origin* self) {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await listener.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, serve(std::move(socket), self), asio::detached);
    }
  }
};

Origin::Origin(const std::string& address, uint16_t port) : impl_(std::make_unique<Impl>()) {
  port_ = listen_on(impl_->acceptor, address, port);
  asio::co_spawn(impl_->io, impl_->accept_loop(impl_->acceptor, this), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

bool Origin::also_listen(const std::string& address) {
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  try {
    listen_on(*acceptor, address, port_);
  } catch (const std::exception&) {
    return false;
  }
  // The lab's thread only uses the acceptor (which stays where it is), never the list.
  asio::co_spawn(impl_->io, impl_->accept_loop(*acceptor, this), asio::detached);
  impl_->more_acceptors.push_back(std::move(acceptor));
  return true;
}

Origin::~Origin() { stop(); }

void Origin::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace vantage::lab
