#include "probe/http_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <optional>

#include "common/check_config.h"
#include "common/proto_time.h"
#include "common/text.h"
#include "common/url.h"
#include "probe/cloudflare_ranges.h"
#include "probe/dns.h"
#include "probe/edge.h"

namespace vantage::probe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

// Bounds of the text kept from a site (bytes, valid UTF-8 after safe_text).
constexpr size_t kErrorBytes = 1024;      // LegResult.error, KeepAliveMeasurement.error
constexpr size_t kServerBytes = 128;      // Response.server
constexpr size_t kCacheStatusBytes = 32;  // Response.cf_cache_status
constexpr size_t kParseErrorBytes = 512;  // Response.parse_error
constexpr size_t kTlsTextBytes = 256;     // ConnectionInfo.tls_error, tls_version, alpn

v1::FailureClass classify_connect_error(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return v1::FAILURE_CLASS_CONNECT_TIMEOUT;
  if (ec == asio::error::connection_refused) return v1::FAILURE_CLASS_CONNECT_REFUSED;
  if (ec == asio::error::host_unreachable || ec == asio::error::network_unreachable) {
    return v1::FAILURE_CLASS_UNREACHABLE;
  }
  return v1::FAILURE_CLASS_CONNECT_REFUSED;
}

// Cloudflare's published ranges, shipped inside the binary.
const AddressRanges& cloudflare_ranges() {
  static const AddressRanges ranges = [] {
    std::string error;
    auto v4 = AddressRanges::parse(kCloudflareRangesV4, &error);
    auto v6 = AddressRanges::parse(kCloudflareRangesV6, &error);
    AddressRanges all;
    if (v4) all.add(*v4);
    if (v6) all.add(*v6);
    return all;
  }();
  return ranges;
}

// One client context for every attempt: the system's trust store, TLS 1.2+,
// ALPN http/1.1 (what we speak).
asio::ssl::context& client_tls_context() {
  static asio::ssl::context context = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ignored;  // no trust store: every certificate then fails as untrusted
    c.set_default_verify_paths(ignored);
    c.set_verify_mode(asio::ssl::verify_peer);
    static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(c.native_handle(), kAlpn, sizeof kAlpn);
    return c;
  }();
  return context;
}

v1::TlsCertProblem cert_problem(long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return v1::TLS_CERT_PROBLEM_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID: return v1::TLS_CERT_PROBLEM_NOT_YET_VALID;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return v1::TLS_CERT_PROBLEM_SELF_SIGNED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return v1::TLS_CERT_PROBLEM_NAME_MISMATCH;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return v1::TLS_CERT_PROBLEM_INCOMPLETE_CHAIN;
    default: return v1::TLS_CERT_PROBLEM_UNTRUSTED;
  }
}

// The peer certificate's expiry, whether or not it was trusted.
void record_certificate(SSL* ssl, v1::ConnectionInfo& connection) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) connection.mutable_cert_not_after()->set_seconds(timegm(&tm));
  X509_free(cert);
}

// The header counters: known even when the head was refused half-way.
void record_header_counts(const ResponseParser& parser, v1::Response& response) {
  response.set_header_bytes(parser.header_bytes());
  response.set_header_count(parser.header_count());
  response.set_largest_header_bytes(parser.largest_header_bytes());
}

// Copies what the parser saw of a complete head into the result; `now`
// turns a Retry-After date into seconds.
void record_head(const ResponseParser& parser, v1::Response& response, std::chrono::system_clock::time_point now) {
  response.set_status(parser.status());
  response.set_http_version(parser.http_version());
  record_header_counts(parser, response);
  response.set_set_cookie_count(parser.set_cookie_count());
  if (auto v = parser.header("server")) response.set_server(safe_text(*v, kServerBytes));
  if (auto v = parser.header("cf-cache-status")) response.set_cf_cache_status(safe_text(*v, kCacheStatusBytes));
  if (auto v = parser.header("retry-after")) {
    if (auto seconds = parse_retry_after(*v, now)) response.set_retry_after_seconds(*seconds);
  }
}

// The URL as one leg sees it: the target's overrides applied.
void apply_target(Url& url, const LegTarget& target) {
  if (!target.scheme.empty()) url.scheme = target.scheme;
  if (!target.host_header.empty()) url.host_header = target.host_header;
  if (!target.connect_host.empty()) url.host = target.connect_host;
  if (target.connect_port) url.port = target.connect_port;
}

// SNI and the name verified: the target's SNI, else the Host header's host.
std::string server_name_for(const Url& url, const LegTarget& target) {
  if (!target.sni.empty()) return target.sni;
  std::string ignored;
  auto hp = parse_host_port(url.host_header, 443, &ignored);
  return hp ? hp->host : url.host;
}

void set_tls_names(SSL* ssl, const std::string& server_name) {
  boost::system::error_code not_ip;
  asio::ip::make_address(server_name, not_ip);
  if (not_ip) {
    SSL_set_tlsext_host_name(ssl, server_name.c_str());
    SSL_set1_host(ssl, server_name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name.c_str());
  }
}

// RFC 9110 5.6.2: a token (method, header name).
bool is_token(std::string_view text) {
  static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kSymbols.find(c) != std::string_view::npos;
  });
}

// The first control character (other than tab) in `text`: CR and LF end a
// header line (header injection), NUL ends a C string on the way.
std::optional<size_t> control_at(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return i;
  }
  return std::nullopt;
}

std::string byte_at(std::string_view text, size_t at) {
  const auto c = static_cast<unsigned char>(text[at]);
  const char* name = c == '\r' ? "CR" : c == '\n' ? "LF" : c == 0 ? "NUL" : "a control character";
  return fmt::format("{} (0x{:02x}) at byte {}", name, c, at);
}

// Why the request of `method` for `url` (with the check's headers and TLS
// name `server_name`) must not be sent, or empty when it may: a check that
// slipped past validation must never put injected lines on the wire.
std::string request_problem(std::string_view method, const v1::Check& check, const Url& url,
                            std::string_view server_name) {
  constexpr size_t kShown = 64;
  if (!is_token(method)) return fmt::format("method \"{}\" is not a token", safe_text(method, kShown));
  if (auto at = control_at(url.target)) return "the URL's path has " + byte_at(url.target, *at);
  if (auto i = url.target.find_first_of(" \t"); i != std::string::npos) {
    return fmt::format("the URL's path has whitespace at byte {}", i);
  }
  for (const auto& [what, text] : {std::pair<const char*, std::string_view>{"host", url.host},
                                   {"Host header", url.host_header},
                                   {"TLS server name", server_name}}) {
    if (auto at = control_at(text)) return fmt::format("the {} has {}", what, byte_at(text, *at));
  }
  for (const auto& [name, value] : check.headers()) {
    if (!is_token(name)) return fmt::format("header name \"{}\" is not a token", safe_text(name, kShown));
    if (auto at = control_at(value)) return fmt::format("the value of header {} has {}", name, byte_at(value, *at));
  }
  return {};
}

http::request<http::empty_body> make_request(std::string_view method, const v1::Check& check, const Url& url) {
  http::request<http::empty_body> request(http::string_to_verb(beast::string_view(method.data(), method.size())),
                                          url.target, 11);
  request.set(http::field::host, url.host_header);
  request.set(http::field::user_agent, "vantage-probe");
  for (const auto& [name, value] : check.headers()) request.set(name, value);
  return request;
}

// A client connection: TCP, and TLS over it for https. Not movable (the TLS
// stream refers to the TCP one); it lives in the coroutine frame.
struct Connection {
  explicit Connection(const asio::any_io_executor& executor) : stream(executor) {}
  beast::tcp_stream stream;
  std::optional<asio::ssl::stream<beast::tcp_stream&>> tls;

  asio::awaitable<size_t> read_some(asio::mutable_buffer buffer, boost::system::error_code& ec) {
    const auto n = tls ? co_await tls->async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec))
                       : co_await stream.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
    // A TLS peer that closes without close_notify: a FIN all the same.
    if (ec == asio::ssl::error::stream_truncated) ec = asio::error::eof;
    co_return n;
  }
  asio::awaitable<void> write(http::request<http::empty_body>& request, boost::system::error_code& ec) {
    if (tls) {
      co_await http::async_write(*tls, request, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

// What one request on a keep-alive connection showed about the connection.
enum class Exchange {
  kKeepAlive,     // a complete response; the connection stays open
  kClosing,       // a complete response saying the server closes (Connection: close, or the body ran to a FIN)
  kClosedBefore,  // the server had closed (FIN or RST, or the write failed) before a byte of the response
  kFailed,        // anything else: `error` says what
};

bool contains_token(std::string_view value, std::string_view token) {
  return std::search(value.begin(), value.end(), token.begin(), token.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         }) != value.end();
}

// Resolves `host` and keeps the addresses a leg may connect to (dns.h
// refused_target); none left is an error naming the first refused one.
asio::awaitable<DnsAnswer> resolve_target(const std::string& host, std::chrono::milliseconds timeout,
                                          const TargetRules& rules) {
  auto answer = co_await resolve_host(host, timeout, rules.dns_servers);
  if (!answer.error.empty()) co_return answer;
  boost::system::error_code not_literal;
  asio::ip::make_address(host, not_literal);
  std::string refused;
  std::vector<asio::ip::address> usable;
  for (const auto& address : answer.addresses) {
    auto why = refused_target(address, !not_literal, rules.allow_loopback);
    if (why.empty()) {
      usable.push_back(address);
    } else if (refused.empty()) {
      refused = std::move(why);
    }
  }
  answer.addresses = std::move(usable);
  if (answer.addresses.empty()) answer.error = "refused as a target: " + refused;
  co_return answer;
}

// Connects (DNS, TCP, TLS for https) for a keep-alive measurement, each step
// within `timeout`. Empty on success, else what failed.
asio::awaitable<std::string> open_connection(Connection& connection, const Url& url, const LegTarget& target,
                                             std::chrono::milliseconds timeout, const TargetRules& rules) {
  const auto dns = co_await resolve_target(url.host, timeout, rules);
  if (!dns.error.empty()) co_return "resolve " + url.host + ": " + dns.error;
  std::vector<tcp::endpoint> endpoints;
  for (const auto& address : dns.addresses) endpoints.emplace_back(address, url.port);
  boost::system::error_code ec;
  connection.stream.expires_after(timeout);
  co_await connection.stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fmt::format("connect {}:{}: {}", url.host, url.port, ec.message());
  if (url.scheme == "https") {
    connection.tls.emplace(connection.stream, client_tls_context());
    set_tls_names(connection.tls->native_handle(), server_name_for(url, target));
    connection.stream.expires_after(timeout);
    co_await connection.tls->async_handshake(asio::ssl::stream_base::client,
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return "TLS handshake: " + ec.message();
  }
  co_return std::string();
}

// One request and its whole response, within `timeout`.
asio::awaitable<Exchange> exchange(Connection& connection, http::request<http::empty_body>& request, bool head,
                                   std::chrono::milliseconds timeout, std::string* error) {
  boost::system::error_code ec;
  connection.stream.expires_after(timeout);
  co_await connection.write(request, ec);
  if (ec) co_return Exchange::kClosedBefore;  // EPIPE or a reset: the server has gone
  ResponseParser parser(HttpParserLimits{}, head);
  std::array<char, 16 * 1024> chunk;
  while (parser.state() == ResponseParser::State::kHead || parser.state() == ResponseParser::State::kBody) {
    const auto n = co_await connection.read_some(asio::buffer(chunk), ec);
    if (n > 0) parser.feed(std::string_view(chunk.data(), n));
    if (!ec) continue;
    const bool closed = ec == asio::error::eof || ec == asio::error::connection_reset;
    if (closed && parser.bytes_received() == 0) co_return Exchange::kClosedBefore;
    if (ec == asio::error::eof && parser.finish_eof() == ResponseParser::State::kComplete) co_return Exchange::kClosing;
    *error = ec == beast::error::timeout ? "no complete response within the timeout"
                                        : "read response: " + (closed ? parser.error() : ec.message());
    co_return Exchange::kFailed;
  }
  if (parser.state() == ResponseParser::State::kError) {
    *error = "response rejected: " + parser.error();
    co_return Exchange::kFailed;
  }
  if (parser.body_capped()) {
    // The rest of the body is still on the wire: the connection cannot carry another request.
    *error = "the body is larger than the probe reads; measure on a smaller URL";
    co_return Exchange::kFailed;
  }
  const auto says = parser.header("connection").value_or("");
  const bool closing = contains_token(says, "close") ||
                       (parser.http_version() == "1.0" && !contains_token(says, "keep-alive"));
  co_return closing ? Exchange::kClosing : Exchange::kKeepAlive;
}

google::protobuf::Duration to_proto(std::chrono::steady_clock::duration d) {
  // At least 1 us: zero means "not closed within the window".
  const auto us = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  google::protobuf::Duration out;
  out.set_seconds(us / 1'000'000);
  out.set_nanos(static_cast<int32_t>((us % 1'000'000) * 1000));
  return out;
}

void close_connection(Connection& connection) {
  boost::system::error_code ignored;
  connection.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.stream.socket().close(ignored);
}

// measure_keep_alive() before its error text is made safe.
asio::awaitable<v1::KeepAliveMeasurement> measure(const v1::Check& check, const Clock& clock, LegTarget target,
                                                  KeepAliveOptions options) {
  v1::KeepAliveMeasurement out;
  *out.mutable_measure_time() = to_timestamp(clock.now());
  std::string error;
  auto url = parse_url(check.url(), &error);
  if (!url) {
    out.set_error("bad url: " + error);
    co_return out;
  }
  apply_target(*url, target);
  const auto timeout = to_millis(check.timeout());
  // Never repeat a POST: the measurement reads, GET (or HEAD for a HEAD check).
  const bool head = check.method() == "HEAD";
  if (auto problem = request_problem(head ? "HEAD" : "GET", check, *url, server_name_for(*url, target));
      !problem.empty()) {
    out.set_error("request not sent: " + problem);
    co_return out;
  }
  auto request = make_request(head ? "HEAD" : "GET", check, *url);
  const auto executor = co_await asio::this_coro::executor;

  // Requests per connection: sequential requests until the server closes.
  {
    Connection connection(executor);
    if (auto failed = co_await open_connection(connection, *url, target, timeout, options.targets);
        !failed.empty()) {
      out.set_error(failed);
      co_return out;
    }
    uint32_t served = 0;
    bool closed = false;
    while (!closed && served < options.max_requests) {
      if (options.cancel && options.cancel->cancelled()) {
        out.set_error("cancelled");
        co_return out;
      }
      const auto seen = co_await exchange(connection, request, head, timeout, &error);
      if (seen == Exchange::kFailed || (seen == Exchange::kClosedBefore && served == 0)) {
        out.set_error(fmt::format("request {} on one connection: {}", served + 1,
                                  seen == Exchange::kFailed ? error : "closed before any response"));
        co_return out;
      }
      if (seen == Exchange::kClosedBefore) break;  // closed after `served` without saying so
      ++served;
      closed = seen == Exchange::kClosing;
    }
    out.set_requests_per_connection(served < options.max_requests || closed ? served : 0);
    close_connection(connection);
  }

  // Idle close: one request on a fresh connection, then wait for the FIN.
  Connection connection(executor);
  if (auto failed = co_await open_connection(connection, *url, target, timeout, options.targets);
        !failed.empty()) {
    out.set_error(failed);
    co_return out;
  }
  const auto seen = co_await exchange(connection, request, head, timeout, &error);
  if (seen == Exchange::kFailed || seen == Exchange::kClosedBefore) {
    out.set_error("idle connection: " + (seen == Exchange::kFailed ? error : std::string("closed before any response")));
    co_return out;
  }
  if (options.cancel && options.cancel->cancelled()) {
    out.set_error("cancelled");
    co_return out;
  }
  if (options.on_idle) options.on_idle();
  const auto idle_start = clock.steady_now();
  connection.stream.expires_after(options.max_idle);
  if (options.cancel) options.cancel->set_on_cancel([&connection] { connection.stream.cancel(); });
  std::array<char, 512> unasked;
  boost::system::error_code ec;
  const auto n = co_await connection.read_some(asio::buffer(unasked), ec);
  if (options.cancel) options.cancel->set_on_cancel(nullptr);
  if (n > 0) {
    out.set_error(fmt::format("the server sent {} bytes on an idle connection", n));
  } else if (ec == asio::error::eof || ec == asio::error::connection_reset) {
    *out.mutable_idle_close_after() = to_proto(clock.steady_now() - idle_start);
  } else if (ec == asio::error::operation_aborted) {
    out.set_error("cancelled");
  } else if (ec != beast::error::timeout) {  // a timeout: still open after max_idle, recorded as zero
    out.set_error("idle connection: " + ec.message());
  }
  close_connection(connection);
  co_return out;
}

}  // namespace

asio::awaitable<v1::KeepAliveMeasurement> measure_keep_alive(const v1::Check& check, const Clock& clock,
                                                             LegTarget target, KeepAliveOptions options) {
  auto out = co_await measure(check, clock, std::move(target), std::move(options));
  // Error lines quote what the server sent and the check's own URL.
  if (!out.error().empty()) out.set_error(safe_text(out.error(), kErrorBytes));
  co_return out;
}

bool status_expected(const v1::Check& check, uint32_t status) {
  for (const auto& range : check.expected_status()) {
    if (status >= range.min() && status <= range.max()) return true;
  }
  return false;
}

asio::awaitable<v1::LegResult> run_http_attempt(const v1::Check& check, const Clock& clock,
                                                HttpLimits limits, LegTarget target, std::string* body) {
  v1::LegResult leg;
  auto* timings = leg.mutable_timings();
  auto* response = leg.mutable_response();
  const auto start = clock.steady_now();
  auto since_start = [&] {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - start).count());
  };
  auto fail = [&](v1::FailureClass c, v1::Phase phase, std::string_view error) {
    leg.set_failure_class(c);
    leg.set_error(safe_text(error, kErrorBytes));  // quotes the URL, the server, its TLS stack
    timings->set_failed_phase(phase);
    timings->set_time_to_error_us(since_start());
    timings->set_total_us(since_start());
    return leg;
  };

  std::string url_error;
  auto url = parse_url(check.url(), &url_error);
  if (!url) co_return fail(v1::FAILURE_CLASS_INVALID_CHECK, v1::PHASE_UNSPECIFIED, "bad url: " + url_error);
  apply_target(*url, target);
  if (auto problem = request_problem(check.method(), check, *url, server_name_for(*url, target)); !problem.empty()) {
    co_return fail(v1::FAILURE_CLASS_INVALID_CHECK, v1::PHASE_UNSPECIFIED, "request not sent: " + problem);
  }
  const auto timeout = to_millis(check.timeout());
  const auto deadline = start + timeout;
  auto remaining = [&] {
    return std::max(std::chrono::steady_clock::duration::zero(), deadline - clock.steady_now());
  };

  Connection connection(co_await asio::this_coro::executor);
  auto& stream = connection.stream;
  auto& tls = connection.tls;

  // DNS, bounded by the attempt's deadline.
  response->set_transport_end(v1::TRANSPORT_END_NOT_CONNECTED);
  const auto dns = co_await resolve_target(
      url->host, std::chrono::duration_cast<std::chrono::milliseconds>(remaining()), limits.targets);
  timings->set_dns_us(since_start());
  leg.mutable_connection()->set_resolver("c-ares");
  if (!dns.error.empty()) {
    co_return fail(v1::FAILURE_CLASS_DNS_FAILURE, v1::PHASE_DNS, "resolve " + url->host + ": " + dns.error);
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& address : dns.addresses) {
    leg.mutable_connection()->add_addresses()->set_address(address.to_string());
    endpoints.emplace_back(address, url->port);
  }

  // Connect.
  stream.expires_after(remaining());
  const auto connect_start = since_start();
  boost::system::error_code cec;
  auto endpoint = co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, cec));
  timings->set_connect_us(since_start() - connect_start);
  if (cec) {
    co_return fail(classify_connect_error(cec), v1::PHASE_CONNECT,
                   fmt::format("connect {}:{}: {}", url->host, url->port, cec.message()));
  }
  leg.mutable_connection()->set_connected_address(fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port()));
  leg.mutable_connection()->set_ip_family(endpoint.address().is_v6() ? 6 : 4);
  response->clear_transport_end();

  // TLS: SNI and the name verified are the Host header's host (or the
  // target's SNI); a failure says whether the certificate or the handshake
  // was at fault, and why.
  if (url->scheme == "https") {
    tls.emplace(stream, client_tls_context());
    const std::string server_name = server_name_for(*url, target);
    SSL* ssl = tls->native_handle();
    set_tls_names(ssl, server_name);
    stream.expires_after(remaining());
    const auto tls_start = since_start();
    boost::system::error_code hec;
    co_await tls->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, hec));
    timings->set_tls_us(since_start() - tls_start);
    record_certificate(ssl, *leg.mutable_connection());
    if (hec) {
      if (hec == beast::error::timeout) {
        response->set_transport_end(v1::TRANSPORT_END_TIMEOUT);
        co_return fail(v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS, "TLS handshake timed out");
      }
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        leg.mutable_connection()->set_cert_problem(cert_problem(verify));
        leg.mutable_connection()->set_tls_error(safe_text(X509_verify_cert_error_string(verify), kTlsTextBytes));
        co_return fail(v1::FAILURE_CLASS_TLS_CERT_INVALID, v1::PHASE_TLS,
                       fmt::format("certificate of {} rejected: {}", server_name, X509_verify_cert_error_string(verify)));
      }
      leg.mutable_connection()->set_tls_error(safe_text(hec.message(), kTlsTextBytes));
      if (hec == asio::error::connection_reset) response->set_transport_end(v1::TRANSPORT_END_RST);
      co_return fail(v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS, "TLS handshake: " + hec.message());
    }
    leg.mutable_connection()->set_tls_version(safe_text(SSL_get_version(ssl), kTlsTextBytes));
    const unsigned char* alpn = nullptr;
    unsigned alpn_length = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
    if (alpn_length) {
      leg.mutable_connection()->set_alpn(
          safe_text(std::string_view(reinterpret_cast<const char*>(alpn), alpn_length), kTlsTextBytes));
    }
  }

  // Request.
  auto request = make_request(check.method(), check, *url);
  stream.expires_after(remaining());
  boost::system::error_code wec;
  co_await connection.write(request, wec);
  timings->set_request_written_us(since_start());
  if (wec) {
    response->set_transport_end(v1::TRANSPORT_END_RST);
    co_return fail(v1::FAILURE_CLASS_CONNECTION_RESET, v1::PHASE_WRITE_REQUEST,
                   "write request: " + wec.message());
  }

  // Response: bytes into the strict parser, as they come.
  ResponseParser parser(limits.parser, check.method() == "HEAD");
  std::array<char, 16 * 1024> chunk;
  while (parser.state() == ResponseParser::State::kHead || parser.state() == ResponseParser::State::kBody) {
    stream.expires_after(remaining());
    boost::system::error_code ec;
    const auto n = co_await connection.read_some(asio::buffer(chunk), ec);
    if (n > 0) {
      if (parser.bytes_received() == 0) timings->set_first_byte_us(since_start());
      parser.feed(std::string_view(chunk.data(), n));
    }
    if (!ec) continue;
    const bool head_done = parser.head_complete();
    if (head_done) record_head(parser, *response, clock.now());
    response->set_transport_end_offset(parser.bytes_received());
    if (ec == asio::error::eof) {
      if (parser.finish_eof() == ResponseParser::State::kComplete) break;  // a body delimited by close
      response->set_transport_end(parser.bytes_received() == 0 ? v1::TRANSPORT_END_FIN_BEFORE_ANY
                                  : head_done                  ? v1::TRANSPORT_END_FIN_MID_BODY
                                                               : v1::TRANSPORT_END_FIN_MID_HEAD);
      co_return fail(parser.failure_class(), head_done ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD,
                     "read response: " + parser.error());
    }
    if (ec == beast::error::timeout) {
      response->set_transport_end(v1::TRANSPORT_END_TIMEOUT);
      co_return fail(head_done ? v1::FAILURE_CLASS_TIMEOUT_BODY : v1::FAILURE_CLASS_TIMEOUT_HEADERS,
                     head_done ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD,
                     fmt::format("no complete response {} within the timeout", head_done ? "body" : "head"));
    }
    // Bytes that are not TLS records after the handshake: what came is not a
    // response (diagnosis.md: malformed, the origin writes raw bytes), not a
    // reset of the connection.
    if (ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category()) {
      leg.mutable_connection()->set_tls_error(safe_text(ec.message(), kTlsTextBytes));
      const auto garbled = parser.bytes_received() == 0 ? v1::FAILURE_CLASS_MALFORMED_STATUS_LINE
                           : head_done                  ? v1::FAILURE_CLASS_TRUNCATED_BODY
                                                        : v1::FAILURE_CLASS_MALFORMED_HEADER;
      co_return fail(garbled, head_done ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD,
                     fmt::format("read response: not TLS records after the handshake, after {} bytes of the response "
                                 "({})",
                                 parser.bytes_received(), ec.message()));
    }
    // A reset (or any other transport error) before the end of the response.
    response->set_transport_end(v1::TRANSPORT_END_RST);
    co_return fail(head_done ? v1::FAILURE_CLASS_TRUNCATED_BODY : v1::FAILURE_CLASS_CONNECTION_RESET,
                   head_done ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD, "read response: " + ec.message());
  }
  if (parser.state() == ResponseParser::State::kError) {
    if (parser.head_complete()) {
      record_head(parser, *response, clock.now());
    } else {
      record_header_counts(parser, *response);
    }
    response->set_parse_error(safe_text(parser.error(), kParseErrorBytes));
    response->set_parse_error_offset(parser.error_offset());
    co_return fail(parser.failure_class(), parser.head_complete() ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD,
                   "response rejected: " + parser.error());
  }
  record_head(parser, *response, clock.now());
  if (body != nullptr) *body = parser.body();
  response->set_body_bytes(parser.body_bytes());
  response->set_body_truncated_by_cap(parser.body_capped());
  response->set_transport_end(v1::TRANSPORT_END_COMPLETE);
  response->set_transport_end_offset(parser.bytes_received());
  timings->set_total_us(since_start());

  // Who answered: the edge or the origin (diagnosis.md section 2).
  EdgeResponse seen;
  seen.status = parser.status();
  seen.content_type = parser.header("content-type").value_or("");
  seen.body = parser.body();
  seen.cf_ray = parser.header("cf-ray");
  seen.server = parser.header("server").value_or("");
  seen.address_in_cloudflare = cloudflare_ranges().contains(endpoint.address());
  std::optional<uint32_t> json_retry_after;
  *leg.mutable_edge() = recognise_edge(seen, &json_retry_after);
  // Cloudflare's JSON errors repeat Retry-After in the body: the header wins.
  if (!parser.header("retry-after") && json_retry_after) response->set_retry_after_seconds(*json_retry_after);
  for (auto& address : *leg.mutable_connection()->mutable_addresses()) {
    boost::system::error_code bad;
    auto parsed = asio::ip::make_address(address.address(), bad);
    if (!bad) address.set_in_cloudflare_ranges(cloudflare_ranges().contains(parsed));
  }

  const auto status = parser.status();
  if (status_expected(check, status)) {
    const bool near_limit = parser.header_bytes() >
                            static_cast<double>(limits.parser.max_header_bytes) * limits.near_limit_share;
    leg.set_failure_class(near_limit ? v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT : v1::FAILURE_CLASS_OK);
    if (near_limit) {
      leg.set_error(fmt::format("response headers are {} bytes, {:.0f} % of the {} byte limit", parser.header_bytes(),
                                100.0 * parser.header_bytes() / limits.parser.max_header_bytes,
                                limits.parser.max_header_bytes));
    }
  } else if (status >= 500) {
    leg.set_failure_class(classify_5xx(leg.edge(), status));
    leg.set_error(fmt::format("status {}", status));
  } else {
    leg.set_failure_class(v1::FAILURE_CLASS_UNEXPECTED_STATUS);
    leg.set_error(fmt::format("status {} is not expected", status));
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return leg;
}

}  // namespace vantage::probe
