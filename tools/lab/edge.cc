#include "tools/lab/edge.h"
#include "tools/lab/ascii.h"
#include "tools/lab/response_reader.h"
#include "tools/lab/socket.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <deque>
#include <random>
#include <stdexcept>
#include <thread>

#include "probe/dns.h"

// g++ 12 misreads Asio's coroutine frame allocator as a new/delete mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace vantage::lab {

namespace asio = boost::asio;
using asio::ip::tcp;
using Steady = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxRequestHead = 64 * 1024;
constexpr uint64_t kMaxRequestBody = 1024 * 1024;
constexpr size_t kReadChunk = 64 * 1024;
// Idle origin connections kept per colo; the oldest goes first.
constexpr size_t kMaxIdlePerColo = 64;
// The cache mode keeps at most this many responses, each at most this big.
constexpr size_t kMaxCached = 64;
constexpr size_t kMaxCachedBody = 1024 * 1024;

// ---------------------------------------------------------------------------
// Small text helpers.

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool valid_colo(std::string_view colo) {
  return colo.size() >= 3 && colo.size() <= 8 &&
         std::all_of(colo.begin(), colo.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// Hop-by-hop fields (RFC 9110 7.6.1) and the ones the edge sets itself.
bool hop_by_hop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                             "upgrade", "proxy-authenticate", "proxy-authorization"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

struct ColoInfo {
  std::string_view city;
  std::string_view country;
};
ColoInfo colo_info(std::string_view colo) {
  static const std::map<std::string_view, ColoInfo, std::less<>> kColos = {
      {"AMS", {"Amsterdam", "NL"}}, {"CDG", {"Paris", "FR"}},       {"FRA", {"Frankfurt", "DE"}},
      {"GRU", {"Sao Paulo", "BR"}}, {"IAD", {"Ashburn", "US"}},     {"LAX", {"Los Angeles", "US"}},
      {"LHR", {"London", "GB"}},    {"NRT", {"Tokyo", "JP"}},       {"SIN", {"Singapore", "SG"}},
      {"SJC", {"San Jose", "US"}},  {"SYD", {"Sydney", "AU"}},      {"WAW", {"Warsaw", "PL"}},
  };
  auto it = kColos.find(colo);
  if (it != kColos.end()) return it->second;
  return {colo, "XX"};
}

// What the edge says for each of its codes: title, JSON error_name, category,
// "What happened?" text.
struct CodeInfo {
  std::string_view title;
  std::string_view name;
  std::string_view category;
  std::string_view happened;
};
CodeInfo code_info(int code) {
  switch (code) {
    case 520:
      return {"Web server is returning an unknown error", "web_server_unknown_error", "origin",
              "There is an unknown connection issue between Cloudflare and the origin web server. As a result, "
              "the web page can not be displayed."};
    case 521:
      return {"Web server is down", "web_server_is_down", "origin",
              "The web server is not returning a connection. As a result, the web page is not displaying."};
    case 522:
      return {"Connection timed out", "connection_timed_out", "origin",
              "The initial connection between Cloudflare's network and the origin web server timed out. As a "
              "result, the web page can not be displayed."};
    case 523:
      return {"Origin is unreachable", "origin_is_unreachable", "origin",
              "Cloudflare is unable to reach the origin web server."};
    case 524:
      return {"A timeout occurred", "a_timeout_occurred", "origin",
              "The origin web server timed out responding to this request."};
    case 525:
      return {"SSL handshake failed", "ssl_handshake_failed", "origin",
              "Cloudflare is unable to establish an SSL connection to the origin server."};
    case 526:
      return {"Invalid SSL certificate", "invalid_ssl_certificate", "origin",
              "The origin web server does not have a valid SSL certificate."};
    case 530:
      return {"Origin error", "origin_error", "origin", "Cloudflare cannot reach the origin web server."};
    case 1016:
      return {"Origin DNS error", "origin_dns_error", "origin",
              "You've requested a page on a website that is on the Cloudflare network. Cloudflare is currently "
              "unable to resolve your requested domain."};
    case 502:
      return {"Bad gateway", "bad_gateway", "origin", "The web server reported a bad gateway error."};
    case 504:
      return {"Gateway time-out", "gateway_timeout", "origin", "The web server reported a gateway time-out error."};
    case 503: return {"Service unavailable", "service_unavailable", "cloudflare", "The service is unavailable."};
    default: return {"Internal server error", "internal_server_error", "cloudflare", "Something went wrong."};
  }
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 520: return "Unknown Error";
    case 521: return "Web Server Is Down";
    case 522: return "Connection Timed Out";
    case 523: return "Origin Is Unreachable";
    case 524: return "A Timeout Occurred";
    case 525: return "SSL Handshake Failed";
    case 526: return "Invalid SSL Certificate";
    case 530: return "Origin Error";
    default: return "Status";
  }
}

std::string utc_now(const char* format) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The edge's own error pages, in the shapes of tests/unit/testdata/edge/.

enum class Box { kBrowser, kCloudflare, kHost };

std::string status_box(std::string_view id, bool error, std::string_view icon, std::string_view label,
                       std::string_view title) {
  return fmt::format(
      "<div id=\"{}\" class=\"{}relative w-1/3 md:w-full py-15 md:p-0 md:py-8 md:text-left overflow-hidden "
      "float-left md:float-none text-center\">\n"
      "  <div class=\"relative mb-10 md:m-0\">\n"
      "    <span class=\"{} block md:hidden h-20 bg-center bg-no-repeat\"></span>\n"
      "    <span class=\"{} w-12 h-12 absolute left-1/2 md:left-auto md:right-0 md:top-0 -ml-6 -bottom-4\"></span>\n"
      "  </div>\n"
      "  <span class=\"md:block w-full truncate\">{}</span>\n"
      "  <h3 class=\"md:inline-block mt-3 md:mt-0 text-2xl text-gray-600 font-light leading-1.3\">{}</h3>\n"
      "  <span class=\"leading-1.3 text-2xl {}\">{}</span>\n"
      "</div>\n",
      id, error ? "cf-error-source " : " ", icon, error ? "cf-icon-error" : "cf-icon-ok", label, title,
      error ? "text-red-error" : "text-green-success", error ? "Error" : "Working");
}

std::string html_page(int code, std::string_view host, std::string_view colo, std::string_view ray, Box in_error) {
  const auto info = code_info(code);
  const auto city = colo_info(colo).city;
  const std::string h = html_escape(host);
  return fmt::format(
      "<!DOCTYPE html>\n<html class=\"no-js\" lang=\"en-US\">\n<head>\n<title>{host} | {code}: {title}</title>\n"
      "<meta charset=\"UTF-8\" />\n<meta name=\"robots\" content=\"noindex, nofollow\" />\n"
      "<link rel=\"stylesheet\" id=\"cf_styles-css\" href=\"/cdn-cgi/styles/main.css\" />\n</head>\n<body>\n"
      "<div id=\"cf-wrapper\">\n  <div id=\"cf-error-details\" class=\"p-0\">\n"
      "    <header class=\"mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-8\">\n"
      "      <h1 class=\"inline-block sm:block sm:mb-2 font-light text-60 lg:text-4xl text-black-dark leading-tight "
      "mr-2\">\n        <span class=\"inline-block\">{title}</span>\n"
      "        <span class=\"code-label\">Error code {code}</span>\n      </h1>\n"
      "      <div class=\"mt-3\">{time}</div>\n    </header>\n"
      "    <div class=\"my-8 bg-gradient-gray\">\n      <div class=\"w-240 lg:w-full mx-auto\">\n"
      "        <div class=\"clearfix md:px-8\">\n{browser}{cloudflare}{hostbox}        </div>\n      </div>\n"
      "    </div>\n"
      "    <div class=\"w-240 lg:w-full mx-auto mb-8 lg:px-8\">\n"
      "      <h2 class=\"text-3xl font-normal leading-1.3 mb-4\">What happened?</h2>\n      <p>{happened}</p>\n"
      "    </div>\n"
      "    <div class=\"cf-error-footer cf-wrapper w-240 lg:w-full py-10 sm:py-4 sm:px-8 mx-auto text-center\">\n"
      "      <p class=\"text-13\">\n"
      "        <span class=\"cf-footer-item sm:block sm:mb-1\">Cloudflare Ray ID: <strong "
      "class=\"font-semibold\">{ray}</strong></span>\n"
      "        <span class=\"cf-footer-item sm:block sm:mb-1\"><span>Performance &amp; security by</span> "
      "Cloudflare</span>\n      </p>\n    </div>\n  </div>\n</div>\n</body>\n</html>\n",
      fmt::arg("host", h), fmt::arg("code", code), fmt::arg("title", info.title),
      fmt::arg("time", utc_now("%Y-%m-%d %H:%M:%S UTC")),
      fmt::arg("browser", status_box("cf-browser-status", in_error == Box::kBrowser, "cf-icon-browser", "You",
                                     "Browser")),
      fmt::arg("cloudflare", status_box("cf-cloudflare-status", in_error == Box::kCloudflare, "cf-icon-cloud",
                                        city, "Cloudflare")),
      fmt::arg("hostbox", status_box("cf-host-status", in_error == Box::kHost, "cf-icon-server", h, "Host")),
      fmt::arg("happened", info.happened), fmt::arg("ray", ray));
}

// `code` is the HTTP status, or the 1xxx error behind a 530.
std::string json_page(int status, int code, std::string_view host, std::string_view ray) {
  const auto info = code_info(code);
  return fmt::format(
      "{{\n  \"type\": \"https://developers.cloudflare.com/support/troubleshooting/http-status-codes/"
      "cloudflare-5xx-errors/error-{code}/\",\n"
      "  \"title\": \"Error {code}: {title}\",\n  \"status\": {status},\n  \"detail\": \"{detail}\",\n"
      "  \"instance\": \"{ray}\",\n  \"error_code\": {code},\n  \"error_name\": \"{name}\",\n"
      "  \"error_category\": \"{category}\",\n  \"ray_id\": \"{ray}\",\n  \"timestamp\": \"{time}\",\n"
      "  \"zone\": \"{zone}\",\n  \"cloudflare_error\": true,\n  \"retryable\": true,\n"
      "  \"owner_action_required\": {owner}\n}}\n",
      fmt::arg("code", code), fmt::arg("status", status), fmt::arg("title", info.title),
      fmt::arg("detail", json_escape(info.happened)),
      fmt::arg("ray", ray), fmt::arg("name", info.name), fmt::arg("category", info.category),
      fmt::arg("time", utc_now("%Y-%m-%dT%H:%M:%SZ")), fmt::arg("zone", json_escape(host)),
      fmt::arg("owner", info.category == "origin" ? "true" : "false"));
}

std::string unbranded_page(int code) {
  return fmt::format(
      "<html>\n<head><title>{0} {1}</title></head>\n<body>\n<center><h1>{0} {1}</h1></center>\n"
      "<hr><center>cloudflare</center>\n</body>\n</html>\n",
      code, reason(code));
}

// ---------------------------------------------------------------------------
// A deadline on a socket: when it passes, the socket's pending operations are
// cancelled (connect, read, write). The handler may run after the operation
// finished in the same turn; `active` tells it to leave the socket alone.

class Deadline {
 public:
  Deadline(tcp::socket& socket, std::chrono::milliseconds after)
      : watch_(std::make_shared<Watch>()), timer_(socket.get_executor()) {
    timer_.expires_after(after);
    timer_.async_wait([watch = watch_, s = &socket](const boost::system::error_code& ec) {
      if (ec || !watch->active) return;
      watch->expired = true;
      boost::system::error_code ignored;
      s->cancel(ignored);
    });
  }
  ~Deadline() { done(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void done() {
    watch_->active = false;
    timer_.cancel();
  }
  bool expired() const { return watch_->expired; }

 private:
  struct Watch {
    bool active = true;
    bool expired = false;
  };
  std::shared_ptr<Watch> watch_;
  asio::steady_timer timer_;
};

// One client request, as the edge needs it.
struct Request {
  std::string method;
  std::string target;
  std::string version;  // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string_view header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (iequals(n, name)) return v;
    }
    return {};
  }
  bool keep_alive() const {
    const auto connection = header("connection");
    if (version == "HTTP/1.0") return icontains(connection, "keep-alive");
    return !icontains(connection, "close");
  }
};

// Parses "METHOD target HTTP/1.x" and field lines (the head without the final
// CRLF CRLF). False on anything it cannot use.
bool parse_request_head(std::string_view head, Request* out) {
  auto eol = head.find("\r\n");
  const auto line = head.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  out->method = std::string(line.substr(0, sp1));
  out->target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  out->version = std::string(line.substr(sp2 + 1));
  if (out->method.empty() || out->target.empty() || !out->version.starts_with("HTTP/1.")) return false;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    const auto field = head.substr(0, eol);
    if (field.empty()) continue;
    const auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    out->headers.emplace_back(std::string(field.substr(0, colon)), std::string(trim(field.substr(colon + 1))));
  }
  return true;
}

// An idle origin connection in a colo's pool.
struct Pooled {
  tcp::socket socket;
  Steady::time_point idle_since;
};

// What the edge sends back for one request.
struct Answer {
  int status = 200;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // without Server, cf-ray, Content-Length
  std::string body;
  std::optional<std::string> head_content_length;  // HEAD: the origin's Content-Length
};

}  // namespace

std::optional<EdgeErrorFormat> parse_edge_error_format(std::string_view text) {
  if (text == "json") return EdgeErrorFormat::kJson;
  if (text == "html") return EdgeErrorFormat::kHtml;
  if (text == "compact") return EdgeErrorFormat::kCompact;
  if (text == "unbranded") return EdgeErrorFormat::kUnbranded;
  return std::nullopt;
}

std::string_view edge_error_format_name(EdgeErrorFormat format) {
  switch (format) {
    case EdgeErrorFormat::kJson: return "json";
    case EdgeErrorFormat::kHtml: return "html";
    case EdgeErrorFormat::kCompact: return "compact";
    case EdgeErrorFormat::kUnbranded: return "unbranded";
  }
  return "html";
}

struct Edge::Impl {
  Edge* self;
  asio::io_context io;
  std::vector<std::pair<std::string, std::unique_ptr<tcp::acceptor>>> acceptors;
  std::map<std::string, std::deque<Pooled>, std::less<>> pools;
  std::mt19937_64 random{std::random_device{}()};
  // Full (strict): the system's trust store, the host's name verified.
  asio::ssl::context tls_context{asio::ssl::context::tls_client};
  // The cache mode's copies, oldest first in cache_order.
  std::map<std::string, Answer, std::less<>> cache;
  std::deque<std::string> cache_order;
  std::thread thread;

  explicit Impl(Edge* edge) : self(edge) {
    boost::system::error_code ignored;  // no trust store: every certificate is then invalid (526)
    tls_context.set_default_verify_paths(ignored);
    tls_context.set_verify_mode(asio::ssl::verify_peer);
  }
  const EdgeSettings& settings() const { return self->settings_; }

  std::string new_ray() { return fmt::format("{:016x}", random()); }

  // The edge's own error page for `code`, in the edge's format (JSON when the
  // client asked for it).
  // `error_code`: the 1xxx code a 530's page shows instead of the status.
  Answer error_answer(int code, const Request& request, std::string_view colo, std::string_view ray,
                      Box in_error, int error_code = 0) const {
    Answer answer;
    answer.status = code;
    answer.reason = reason(code);
    const int shown = error_code ? error_code : code;
    std::string host(request.header("host"));
    if (host.empty()) host = "unknown";
    auto format = settings().format;
    if (icontains(request.header("accept"), "application/json")) format = EdgeErrorFormat::kJson;
    // The unbranded page is Cloudflare's internal-error page: never for a 52x.
    if (format == EdgeErrorFormat::kUnbranded && code >= 520 && code <= 530) format = EdgeErrorFormat::kHtml;
    switch (format) {
      case EdgeErrorFormat::kJson:
        answer.headers.emplace_back("Content-Type", "application/json");
        answer.body = json_page(code, shown, host, ray);
        break;
      case EdgeErrorFormat::kHtml:
        answer.headers.emplace_back("Content-Type", "text/html; charset=UTF-8");
        answer.body = html_page(shown, host, colo, ray, in_error);
        break;
      case EdgeErrorFormat::kCompact:
        answer.headers.emplace_back("Content-Type", "text/plain; charset=UTF-8");
        answer.body = fmt::format("error code: {}", shown);
        break;
      case EdgeErrorFormat::kUnbranded:
        answer.headers.emplace_back("Content-Type", "text/html");
        answer.body = unbranded_page(code);
        break;
    }
    answer.headers.emplace_back("Cache-Control", "private, max-age=0, no-store, no-cache, must-revalidate");
    if (code >= 500 && !settings().retry_after.empty()) answer.headers.emplace_back("Retry-After", settings().retry_after);
    return answer;
  }

  Answer trace_answer(const Request& request, std::string_view colo) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    Answer answer;
    answer.headers.emplace_back("Content-Type", "text/plain");
    answer.headers.emplace_back("Cache-Control", "no-cache");
    answer.body = fmt::format(
        "fl={}f{}\nh={}\nip=127.0.0.1\nts={}.{:03d}\nvisit_scheme=http\nuag={}\ncolo={}\nsliver=none\n"
        "http=http/1.1\nloc={}\ntls=off\nsni=off\nwarp=off\ngateway=off\nrbi=off\nkex=none\n",
        random() % 1000, random() % 1000, request.header("host"), now / 1000, static_cast<int>(now % 1000),
        request.header("user-agent"), colo, colo_info(colo).country);
    return answer;
  }

  // An idle pooled connection young enough to reuse, or a new one. Sets
  // `code` to 521/522/523 when connecting fails, and to 530 with
  // `error_code` 1016 when the origin's name does not resolve.
  asio::awaitable<std::optional<tcp::socket>> origin_connection(std::string_view colo, int* code, int* error_code,
                                                                bool* reused) {
    auto& pool = pools[std::string(colo)];
    const auto now = Steady::now();
    while (!pool.empty()) {
      // Most recently used first, like a connection pool that keeps warm ones warm.
      Pooled pooled = std::move(pool.back());
      pool.pop_back();
      if (now - pooled.idle_since <= settings().edge_idle_reuse) {
        *reused = true;
        co_return std::move(pooled.socket);
      }
      close_fin(pooled.socket);
    }
    *reused = false;
    // Resolved per connection, like the edge: a name that stops resolving is a 530 (1016).
    const auto dns = co_await probe::resolve_host(settings().origin_host, settings().connect_timeout);
    if (!dns.error.empty() || dns.addresses.empty()) {
      *code = 530;
      *error_code = 1016;
      co_return std::nullopt;
    }
    tcp::socket socket(io);
    boost::system::error_code ec;
    Deadline deadline(socket, settings().connect_timeout);
    co_await socket.async_connect(tcp::endpoint(dns.addresses.front(), settings().origin_port),
                                  asio::redirect_error(asio::use_awaitable, ec));
    deadline.done();
    if (!ec) {
      ++self->origin_connections_;
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      co_return std::move(socket);
    }
    if (deadline.expired() || ec == asio::error::timed_out) {
      *code = 522;
    } else if (ec == asio::error::connection_refused) {
      *code = 521;
    } else {
      *code = 523;  // unreachable and the like
    }
    co_return std::nullopt;
  }

  // The cache mode: a GET's 200 is kept (MISS), and served instead of a
  // failure (an edge 52x or an origin 5xx) later (STALE), like serve-stale /
  // Always Online: the edge is fine, the origin is not.
  void cached(const Request& request, Answer* answer) {
    if (request.method != "GET") return;
    const std::string key = fmt::format("{} {}", request.header("host"), request.target);
    auto header = [&](std::string_view value) {
      std::erase_if(answer->headers, [](const auto& h) { return iequals(h.first, "cf-cache-status"); });
      answer->headers.emplace_back("CF-Cache-Status", value);
    };
    if (answer->status == 200 && answer->body.size() <= kMaxCachedBody) {
      if (!cache.contains(key) && cache.size() >= kMaxCached) {
        cache.erase(cache_order.front());
        cache_order.pop_front();
      }
      if (!cache.contains(key)) cache_order.push_back(key);
      header("MISS");
      cache[key] = *answer;
      return;
    }
    const auto it = cache.find(key);
    if (answer->status >= 500 && it != cache.end()) {
      *answer = it->second;
      header("STALE");
    }
  }

  std::string origin_request(const Request& request, std::string_view ray) const {
    std::string out = fmt::format("{} {} HTTP/1.1\r\n", request.method, request.target);
    bool has_host = false;
    for (const auto& [name, value] : request.headers) {
      if (hop_by_hop(name) || iequals(name, "content-length")) continue;
      if (iequals(name, "host")) has_host = true;
      out += fmt::format("{}: {}\r\n", name, value);
    }
    if (!has_host) out += fmt::format("Host: {}:{}\r\n", settings().origin_host, settings().origin_port);
    out += fmt::format("CF-Ray: {}\r\nCF-Connecting-IP: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n"
                       "X-Forwarded-Proto: http\r\nCF-Visitor: {{\"scheme\":\"http\"}}\r\nCDN-Loop: cloudflare\r\n",
                       ray);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      out += fmt::format("Content-Length: {}\r\n", request.body.size());
    }
    out += "\r\n";
    out += request.body;
    return out;
  }

  // With origin_tls: the handshake on a new origin connection, verifying the
  // certificate against the request's host (Full (strict)). 0 when it
  // succeeded, else 526 for a certificate the edge rejects, 525 otherwise.
  asio::awaitable<int> origin_handshake(asio::ssl::stream<tcp::socket&>& tls, const Request& request) {
    std::string name(request.header("host"));
    if (name.starts_with('[')) {
      name = name.substr(1, name.find(']') - 1);
    } else if (const auto colon = name.find(':'); colon != std::string::npos) {
      name.resize(colon);
    }
    SSL* ssl = tls.native_handle();
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
    boost::system::error_code ec;
    Deadline deadline(tls.next_layer(), settings().connect_timeout);
    co_await tls.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_return 0;
    co_return SSL_get_verify_result(ssl) != X509_V_OK ? 526 : 525;
  }

  // Forwards one request to the origin and maps what comes back.
  asio::awaitable<Answer> forward(const Request& request, std::string_view colo, std::string_view ray) {
    int code = 0;
    int error_code = 0;
    bool reused = false;
    auto connection = co_await origin_connection(colo, &code, &error_code, &reused);
    if (!connection) co_return error_answer(code, request, colo, ray, Box::kHost, error_code);
    tcp::socket& origin = *connection;
    // TLS connections are not pooled: one request each.
    std::optional<asio::ssl::stream<tcp::socket&>> tls;
    if (settings().origin_tls) {
      tls.emplace(origin, tls_context);
      if (const int failed = co_await origin_handshake(*tls, request); failed != 0) {
        close_fin(origin);
        co_return error_answer(failed, request, colo, ray, Box::kHost);
      }
    }

    // A reused connection the origin has closed may still take the write
    // (the RST comes back later): the read then sees EOF or RST, -> 520.
    // Cloudflare tells the origin the ray with its colo, as visitors see it.
    const std::string forwarded = origin_request(request, fmt::format("{}-{}", ray, colo));
    bool written = false;
    if (tls) {
      boost::system::error_code wec;
      co_await asio::async_write(*tls, asio::buffer(forwarded), asio::redirect_error(asio::use_awaitable, wec));
      written = !wec;
    } else {
      written = co_await write_all(origin, forwarded);
    }
    if (!written) {
      close_fin(origin);
      co_return error_answer(520, request, colo, ray, Box::kHost);
    }

    ReaderLimits limits;
    limits.max_header_bytes = settings().max_header_bytes;
    limits.max_header_count = settings().max_header_count;
    limits.max_body_bytes = settings().max_body_bytes;
    ResponseReader reader(limits, request.method == "HEAD");
    std::vector<char> buffer(kReadChunk);
    bool eof = false;
    {
      // The head must come within read_timeout of the request; after it, each
      // read must make progress within read_timeout.
      std::optional<Deadline> deadline(std::in_place, origin, settings().read_timeout);
      bool head_seen = false;
      while (reader.outcome() == ReadOutcome::kReading) {
        if (!head_seen && reader.head_complete()) {
          head_seen = true;
          deadline.emplace(origin, settings().read_timeout);
        }
        boost::system::error_code ec;
        const size_t n =
            tls ? co_await tls->async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec))
                : co_await origin.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::ssl::error::stream_truncated) ec = asio::error::eof;  // TLS without close_notify
        if (n > 0) {
          reader.feed(std::string_view(buffer.data(), n));
          if (head_seen) deadline.emplace(origin, settings().read_timeout);
        }
        if (ec == asio::error::eof) {
          eof = true;
          reader.closed();
          break;
        }
        if (ec) {  // the deadline cancelled the read, or a reset
          if (deadline->expired()) {
            reader.timed_out();
          } else {
            reader.reset();
          }
          break;
        }
      }
    }

    // No whole head in time is the origin being slow (524); everything else
    // that is not a whole response is the origin sending what the edge
    // cannot use (520).
    if (reader.outcome() != ReadOutcome::kComplete) {
      close_fin(origin);
      const int code = reader.outcome() == ReadOutcome::kHeadTimeout ? 524 : 520;
      co_return error_answer(code, request, colo, ray, Box::kHost);
    }

    // A complete response. Keep the connection for the next request unless
    // it cannot carry one.
    const auto origin_connection_header = reader.header("connection").value_or("");
    const bool origin_keeps = !tls && !eof && reader.extra_bytes() == 0 &&
                              !icontains(origin_connection_header, "close") &&
                              (reader.http_version() == "1.1" || icontains(origin_connection_header, "keep-alive"));
    if (origin_keeps) {
      auto& pool = pools[std::string(colo)];
      if (pool.size() >= kMaxIdlePerColo) {
        close_fin(pool.front().socket);
        pool.pop_front();
      }
      pool.push_back(Pooled{std::move(origin), Steady::now()});
    } else {
      close_fin(origin);
    }

    const int status = reader.status();
    if (settings().origin_502_branded && (status == 502 || status == 504)) {
      // The origin itself answered 502/504: the branded page, host in error.
      Request html_request = request;
      std::erase_if(html_request.headers, [](const auto& h) { return iequals(h.first, "accept"); });
      auto answer = error_answer(status, html_request, colo, ray, Box::kHost);
      co_return answer;
    }
    Answer answer;
    answer.status = status;
    answer.reason = reader.reason().empty() ? reason(status) : reader.reason();
    for (const auto& [name, value] : reader.headers()) {
      if (hop_by_hop(name) || iequals(name, "content-length") || iequals(name, "server") ||
          iequals(name, "cf-ray")) {
        continue;
      }
      answer.headers.emplace_back(name, value);
    }
    answer.headers.emplace_back("CF-Cache-Status", "DYNAMIC");
    if (request.method == "HEAD") {
      if (auto length = reader.header("content-length")) answer.head_content_length = std::string(*length);
    } else {
      answer.body = reader.body();
    }
    co_return answer;
  }

  static std::string serialize(const Answer& answer, std::string_view cf_ray, bool close, bool head) {
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", answer.status,
                                  answer.reason.empty() ? reason(answer.status) : answer.reason);
    out += fmt::format("Date: {}\r\n", utc_now("%a, %d %b %Y %H:%M:%S GMT"));
    for (const auto& [name, value] : answer.headers) out += fmt::format("{}: {}\r\n", name, value);
    out += fmt::format("Content-Length: {}\r\n",
                       head && answer.head_content_length ? *answer.head_content_length
                                                          : std::to_string(answer.body.size()));
    if (close) out += "Connection: close\r\n";
    out += fmt::format("Server: cloudflare\r\ncf-ray: {}\r\n\r\n", cf_ray);
    if (!head) out += answer.body;
    return out;
  }

  asio::awaitable<void> serve(tcp::socket client, std::string colo) {
    asio::streambuf buffer(kMaxRequestHead);
    for (;;) {
      boost::system::error_code ec;
      size_t n = 0;
      {
        Deadline idle(client, settings().client_idle_timeout);
        n = co_await asio::async_read_until(client, buffer, "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {  // closed, idle too long, or a head over kMaxRequestHead
        close_fin(client);
        co_return;
      }
      ++self->requests_;
      const std::string head(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n - 4);
      buffer.consume(n);
      const std::string ray = new_ray();
      const std::string cf_ray = fmt::format("{}-{}", ray, colo);

      Request request;
      Answer answer;
      bool close = false;
      if (!parse_request_head(head, &request)) {
        answer = error_answer(400, request, colo, ray, Box::kBrowser);
        close = true;
      } else {
        close = !request.keep_alive();
        uint64_t length = 0;
        const auto length_text = request.header("content-length");
        const auto [end, lec] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
        const bool bad_length = !length_text.empty() && (lec != std::errc() || end != length_text.data() + length_text.size());
        if (!request.header("transfer-encoding").empty()) {
          answer = error_answer(501, request, colo, ray, Box::kBrowser);
          close = true;
        } else if (bad_length || length > kMaxRequestBody) {
          answer = error_answer(413, request, colo, ray, Box::kBrowser);
          close = true;
        } else {
          if (length > 0) {
            // Part of the body may already be in `buffer`.
            boost::system::error_code bec;
            if (buffer.size() < length) {
              Deadline body_deadline(client, settings().client_idle_timeout);
              co_await asio::async_read(client, buffer, asio::transfer_exactly(length - buffer.size()),
                                        asio::redirect_error(asio::use_awaitable, bec));
            }
            if (bec || buffer.size() < length) {
              close_fin(client);
              co_return;
            }
            request.body.assign(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + length);
            buffer.consume(length);
          }
          const auto path = std::string_view(request.target).substr(0, request.target.find('?'));
          if (path == "/cdn-cgi/trace") {
            answer = trace_answer(request, colo);
          } else if (path.starts_with("/cdn-cgi/lab/error/")) {
            int code = 0;
            const auto digits = path.substr(19);
            const auto [e, cec] = std::from_chars(digits.data(), digits.data() + digits.size(), code);
            if (cec != std::errc() || e != digits.data() + digits.size() || code < 500 || code > 599) code = 500;
            answer = error_answer(code, request, colo, ray, Box::kCloudflare);
          } else {
            answer = co_await forward(request, colo, ray);
            if (settings().cache) cached(request, &answer);
          }
        }
      }
      const bool written = co_await write_all(client, serialize(answer, cf_ray, close, request.method == "HEAD"));
      if (!written || close) {
        close_fin(client);
        co_return;
      }
    }
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::string colo) {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;  // e.g. EMFILE: keep listening
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(io, serve(std::move(socket), colo), asio::detached);
    }
  }
};

Edge::Edge(EdgeSettings settings) : settings_(std::move(settings)), impl_(std::make_unique<Impl>(this)) {
  if (settings_.colos.empty()) throw std::invalid_argument("edge: no colo given");
  if (settings_.max_header_bytes == 0) throw std::invalid_argument("edge: the header limit must be positive");
  if (settings_.origin_host.empty()) throw std::invalid_argument("edge: no origin host given");
  boost::system::error_code ec;
  const auto listen_address = asio::ip::make_address(settings_.listen_address, ec);
  if (ec) {
    throw std::invalid_argument(fmt::format("edge: listen address \"{}\" is not an IP address", settings_.listen_address));
  }
  for (size_t i = 0; i < settings_.colos.size(); ++i) {
    const auto& colo = settings_.colos[i];
    if (!valid_colo(colo)) throw std::invalid_argument(fmt::format("edge: colo \"{}\" is not 3..8 upper-case letters", colo));
    if (ports_.contains(colo)) throw std::invalid_argument(fmt::format("edge: colo \"{}\" given twice", colo));
    const uint32_t port = settings_.port_base == 0 ? 0 : settings_.port_base + i;
    if (port > 65535) throw std::invalid_argument(fmt::format("edge: colo \"{}\" would need port {}", colo, port));
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    const tcp::endpoint endpoint(listen_address, static_cast<uint16_t>(port));
    try {
      acceptor->open(endpoint.protocol());
      acceptor->set_option(tcp::acceptor::reuse_address(true));
      acceptor->bind(endpoint);
      acceptor->listen();
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("edge: colo {} cannot listen on {}:{}: {}", colo,
                                           settings_.listen_address, port, e.what()));
    }
    ports_.emplace(colo, acceptor->local_endpoint().port());
    impl_->acceptors.emplace_back(colo, std::move(acceptor));
  }
  for (auto& [colo, acceptor] : impl_->acceptors) {
    asio::co_spawn(impl_->io, impl_->accept_loop(*acceptor, colo), asio::detached);
  }
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Edge::~Edge() { stop(); }

uint16_t Edge::port(std::string_view colo) const {
  auto it = ports_.find(colo);
  return it == ports_.end() ? 0 : it->second;
}

void Edge::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace vantage::lab
