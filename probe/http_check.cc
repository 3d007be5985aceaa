#include "probe/http_check.h"

#include <fmt/format.h>

#include <limits>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/check_config.h"
#include "common/url.h"

namespace vantage::probe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

v1::FailureClass classify_connect_error(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return v1::FAILURE_CLASS_CONNECT_TIMEOUT;
  if (ec == asio::error::connection_refused) return v1::FAILURE_CLASS_CONNECT_REFUSED;
  if (ec == asio::error::host_unreachable || ec == asio::error::network_unreachable) {
    return v1::FAILURE_CLASS_UNREACHABLE;
  }
  return v1::FAILURE_CLASS_CONNECT_REFUSED;
}

// A read that stopped early: what it means depends on how far the response got.
v1::FailureClass classify_read_error(const boost::system::error_code& ec, bool header_done,
                                     uint64_t bytes_received, v1::Response& response) {
  if (ec == beast::error::timeout) {
    response.set_transport_end(v1::TRANSPORT_END_TIMEOUT);
    return header_done ? v1::FAILURE_CLASS_TIMEOUT_BODY : v1::FAILURE_CLASS_TIMEOUT_HEADERS;
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == asio::error::eof) {
    if (bytes_received == 0) {
      response.set_transport_end(v1::TRANSPORT_END_FIN_BEFORE_ANY);
      return v1::FAILURE_CLASS_EMPTY_REPLY;
    }
    response.set_transport_end(header_done ? v1::TRANSPORT_END_FIN_MID_BODY
                                           : v1::TRANSPORT_END_FIN_MID_HEAD);
    return header_done ? v1::FAILURE_CLASS_TRUNCATED_BODY : v1::FAILURE_CLASS_INCOMPLETE_HEAD;
  }
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
    response.set_transport_end(v1::TRANSPORT_END_RST);
    return header_done ? v1::FAILURE_CLASS_TRUNCATED_BODY : v1::FAILURE_CLASS_CONNECTION_RESET;
  }
  // Everything below is the parser rejecting what it read.
  response.set_parse_error(ec.message());
  response.set_parse_error_offset(bytes_received);
  if (ec == http::error::header_limit) return v1::FAILURE_CLASS_HEADERS_TOO_LARGE;
  if (ec == http::error::bad_version || ec == http::error::bad_status ||
      ec == http::error::bad_reason) {
    return v1::FAILURE_CLASS_MALFORMED_STATUS_LINE;
  }
  if (ec == http::error::bad_content_length || ec == http::error::bad_transfer_encoding ||
      ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
    return v1::FAILURE_CLASS_BAD_FRAMING;
  }
  return header_done ? v1::FAILURE_CLASS_BAD_FRAMING : v1::FAILURE_CLASS_MALFORMED_HEADER;
}

}  // namespace

bool status_expected(const v1::Check& check, uint32_t status) {
  for (const auto& range : check.expected_status()) {
    if (status >= range.min() && status <= range.max()) return true;
  }
  return false;
}

asio::awaitable<v1::LegResult> run_http_attempt(const v1::Check& check, const Clock& clock,
                                                HttpLimits limits) {
  v1::LegResult leg;
  auto* timings = leg.mutable_timings();
  auto* response = leg.mutable_response();
  const auto start = clock.steady_now();
  auto since_start = [&] {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - start).count());
  };
  auto fail = [&](v1::FailureClass c, v1::Phase phase, std::string error) {
    leg.set_failure_class(c);
    leg.set_error(std::move(error));
    timings->set_failed_phase(phase);
    timings->set_time_to_error_us(since_start());
    timings->set_total_us(since_start());
    return leg;
  };

  std::string url_error;
  auto url = parse_url(check.url(), &url_error);
  if (!url) co_return fail(v1::FAILURE_CLASS_UNSPECIFIED, v1::PHASE_UNSPECIFIED, "bad url: " + url_error);
  if (url->scheme != "http") {
    co_return fail(v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS,
                   "https is not supported by this probe version");
  }
  const auto timeout = to_millis(check.timeout());
  const auto deadline = start + timeout;
  auto remaining = [&] {
    return std::max(std::chrono::steady_clock::duration::zero(), deadline - clock.steady_now());
  };

  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);

  // DNS (the system resolver for now).
  tcp::resolver resolver(executor);
  response->set_transport_end(v1::TRANSPORT_END_NOT_CONNECTED);
  boost::system::error_code rec;
  auto endpoints = co_await resolver.async_resolve(url->host, std::to_string(url->port),
                                                   asio::redirect_error(asio::use_awaitable, rec));
  timings->set_dns_us(since_start());
  if (rec) co_return fail(v1::FAILURE_CLASS_DNS_FAILURE, v1::PHASE_DNS, "resolve " + url->host + ": " + rec.message());
  for (const auto& e : endpoints) {
    leg.mutable_connection()->add_addresses()->set_address(e.endpoint().address().to_string());
  }
  leg.mutable_connection()->set_resolver("system");

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

  // Request.
  http::request<http::empty_body> request(http::string_to_verb(check.method()), url->target, 11);
  request.set(http::field::host, url->host_header);
  request.set(http::field::user_agent, "vantage-probe");
  for (const auto& [name, value] : check.headers()) request.set(name, value);
  stream.expires_after(remaining());
  boost::system::error_code wec;
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, wec));
  timings->set_request_written_us(since_start());
  if (wec) {
    response->set_transport_end(v1::TRANSPORT_END_RST);
    co_return fail(v1::FAILURE_CLASS_CONNECTION_RESET, v1::PHASE_WRITE_REQUEST,
                   "write request: " + wec.message());
  }

  // Response: read until the parser is done, recording the first byte.
  http::response_parser<http::string_body> parser;
  parser.header_limit(limits.max_header_bytes);
  // Capped below without failing the attempt (Beast's limit would be an error).
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (check.method() == "HEAD") parser.skip(true);
  beast::flat_buffer buffer;
  uint64_t received = 0;
  bool capped = false;
  while (!parser.is_done()) {
    stream.expires_after(remaining());
    boost::system::error_code ec;
    const auto n = co_await http::async_read_some(stream, buffer, parser,
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (received == 0 && (n > 0 || buffer.size() > 0)) timings->set_first_byte_us(since_start());
    received += n;
    if (ec) {
      const bool header_done = parser.is_header_done();
      auto c = classify_read_error(ec, header_done, received, *response);
      if (header_done) response->set_status(parser.get().result_int());
      co_return fail(c, header_done ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD,
                     "read response: " + ec.message());
    }
    if (parser.is_header_done() && parser.get().body().size() >= limits.max_body_bytes) {
      capped = true;
      break;
    }
  }
  const auto& message = parser.get();
  response->set_status(message.result_int());
  response->set_http_version(message.version() == 10 ? "1.0" : "1.1");
  uint32_t header_count = 0, largest = 0, cookies = 0;
  for (const auto& field : message.base()) {
    ++header_count;
    largest = std::max<uint32_t>(largest, static_cast<uint32_t>(field.name_string().size() + field.value().size() + 4));
    if (field.name() == http::field::set_cookie) ++cookies;
  }
  response->set_header_count(header_count);
  response->set_largest_header_bytes(largest);
  response->set_set_cookie_count(cookies);
  if (auto it = message.find(http::field::server); it != message.end()) response->set_server(std::string(it->value()));
  response->set_body_bytes(message.body().size());
  response->set_body_truncated_by_cap(capped);
  response->set_transport_end(v1::TRANSPORT_END_COMPLETE);
  timings->set_total_us(since_start());

  const auto status = message.result_int();
  if (status_expected(check, status)) {
    leg.set_failure_class(v1::FAILURE_CLASS_OK);
  } else if (status >= 500) {
    leg.set_failure_class(v1::FAILURE_CLASS_ORIGIN_5XX);
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
