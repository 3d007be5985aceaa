#include "probe/http_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/error.hpp>

#include "common/proto_time.h"
#include "common/text.h"
#include "probe/cache_busting.h"
#include "probe/connection.h"
#include "probe/edge.h"

namespace vantage::probe {

namespace asio = boost::asio;

namespace {

// Bounds of the text kept from a site (bytes, valid UTF-8 after safe_text).
constexpr size_t kErrorBytes = 1024;      // LegResult.error, KeepAliveMeasurement.error
constexpr size_t kServerBytes = 128;      // Response.server
constexpr size_t kCacheStatusBytes = 32;  // Response.cf_cache_status
constexpr size_t kParseErrorBytes = 512;  // Response.parse_error

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

// What the parser had of the response when the exchange ended: all of it
// (`ending` null), the part before a refusal, or the part before the
// transport ended.
void record_response(const ResponseParser& parser, const LegEnding* ending, v1::Response& response,
                     std::chrono::system_clock::time_point now) {
  if (ending == nullptr) {
    record_head(parser, response, now);
    response.set_body_bytes(parser.body_bytes());
    response.set_body_truncated_by_cap(parser.body_capped());
    response.set_transport_end(v1::TRANSPORT_END_COMPLETE);
    response.set_transport_end_offset(parser.bytes_received());
  } else if (ending->how == LegEnding::How::kRejected) {
    if (parser.head_complete()) {
      record_head(parser, response, now);
    } else {
      record_header_counts(parser, response);
    }
    response.set_parse_error(safe_text(parser.error(), kParseErrorBytes));
    response.set_parse_error_offset(parser.error_offset());
  } else if (ending->step == LegEnding::Step::kRead) {
    if (parser.head_complete()) record_head(parser, response, now);
    response.set_transport_end_offset(parser.bytes_received());
  }
}

// A leg that ended before a usable response, judged by the classifier.
void record_failure(v1::LegResult& leg, const StepFailure& failure, const LegTime& time) {
  const auto verdict = classify_failure(failure.ending);
  leg.set_failure_class(verdict.failure_class);
  leg.set_error(safe_text(failure.message, kErrorBytes));  // quotes the URL, the server, its TLS stack
  if (verdict.transport_end != v1::TRANSPORT_END_UNSPECIFIED) {
    leg.mutable_response()->set_transport_end(verdict.transport_end);
  }
  auto* timings = leg.mutable_timings();
  timings->set_failed_phase(verdict.phase);
  timings->set_time_to_error_us(time.elapsed_us());
  timings->set_total_us(time.elapsed_us());
}

// A complete response, judged by the classifier: the class, who answered
// (edge evidence), and which addresses are Cloudflare's.
void record_verdict(v1::LegResult& leg, const ResponseParser& parser, const Connection& connection,
                    const LegPlan& plan) {
  ResponseSeen seen;
  seen.status = parser.status();
  seen.header_bytes = parser.header_bytes();
  seen.content_type = parser.header("content-type").value_or("");
  seen.body = parser.body();
  seen.body_capped = parser.body_capped();
  seen.headers = &parser.headers();
  seen.server = parser.header("server").value_or("");
  seen.cf_ray = parser.header("cf-ray");
  seen.peer = connection.peer().address();
  auto verdict = classify_response(seen, plan);
  leg.set_failure_class(verdict.failure_class);
  if (!verdict.error.empty()) leg.set_error(std::move(verdict.error));
  if (verdict.assertion_failure) *leg.mutable_assertion_failure() = std::move(*verdict.assertion_failure);
  *leg.mutable_edge() = std::move(verdict.edge);
  // Cloudflare's JSON errors repeat Retry-After in the body: the header wins.
  if (!parser.header("retry-after") && verdict.json_retry_after) {
    leg.mutable_response()->set_retry_after_seconds(*verdict.json_retry_after);
  }
  auto& addresses = *leg.mutable_connection()->mutable_addresses();
  for (int i = 0; i < addresses.size(); ++i) {
    addresses[i].set_in_cloudflare_ranges(in_cloudflare_ranges(connection.addresses()[static_cast<size_t>(i)]));
  }
}

// What one request on a keep-alive connection showed about the connection.
enum class Exchange {
  kKeepAlive,     // a complete response; the connection stays open
  kClosing,       // a complete response saying the server closes (Connection: close, or the body ran to a FIN)
  kClosedBefore,  // the server had closed (FIN or RST, or the write failed) before a byte of the response
  kFailed,        // anything else: `error` says what
};

bool contains_token(std::string_view value, std::string_view token) {
  return std::search(value.begin(), value.end(), token.begin(), token.end(),
                     [](char a, char b) { return ascii_lower(a) == ascii_lower(b); }) != value.end();
}

// One request and its whole response, within the plan's timeout.
asio::awaitable<Exchange> exchange(Connection& connection, const LegPlan& plan, const Clock& clock,
                                   std::string* error) {
  ResponseParser parser(plan.limits.parser, plan.head());
  v1::LegResult unused;  // the measurement keeps no phases
  const auto failure = co_await connection.exchange(plan, LegTime::until(clock, plan.timeout), parser, unused);
  if (failure) {
    const auto& ending = failure->ending;
    const bool gone = ending.how == LegEnding::How::kClosed || ending.how == LegEnding::How::kReset;
    if (ending.step == LegEnding::Step::kWrite || (gone && ending.bytes_received == 0)) {
      co_return Exchange::kClosedBefore;  // EPIPE or a reset: the server has gone
    }
    *error = failure->message;
    co_return Exchange::kFailed;
  }
  if (connection.closed_by_peer()) co_return Exchange::kClosing;
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

bool cancelled(const KeepAliveOptions& options) { return options.cancel && options.cancel->cancelled(); }

// Connection setup for a measurement: each step gets the check's timeout.
LegTime setup_time(const Clock& clock, const LegPlan& plan) {
  auto time = LegTime::until(clock, plan.timeout);
  time.each_step = plan.timeout;
  return time;
}

// Requests per connection: sequential requests until the server closes.
// Empty, or why it could not be measured.
asio::awaitable<std::string> count_requests(const LegPlan& plan, const Clock& clock, const KeepAliveOptions& options,
                                            v1::KeepAliveMeasurement& out) {
  Connection connection(co_await asio::this_coro::executor);
  v1::LegResult unused;
  if (auto failure = co_await connection.open(plan, setup_time(clock, plan), unused)) co_return failure->message;
  uint32_t served = 0;
  bool closed = false;
  std::string error;
  while (!closed && served < options.max_requests) {
    if (cancelled(options)) co_return "cancelled";
    const auto seen = co_await exchange(connection, plan, clock, &error);
    if (seen == Exchange::kFailed || (seen == Exchange::kClosedBefore && served == 0)) {
      co_return fmt::format("request {} on one connection: {}", served + 1,
                            seen == Exchange::kFailed ? error : "closed before any response");
    }
    if (seen == Exchange::kClosedBefore) break;  // closed after `served` without saying so
    ++served;
    closed = seen == Exchange::kClosing;
  }
  out.set_requests_per_connection(served < options.max_requests || closed ? served : 0);
  connection.close();
  co_return std::string();
}

// Idle close: one request on a fresh connection, then the time until the
// server's FIN or RST. Empty, or why it could not be measured.
asio::awaitable<std::string> time_idle_close(const LegPlan& plan, const Clock& clock, const KeepAliveOptions& options,
                                             v1::KeepAliveMeasurement& out) {
  Connection connection(co_await asio::this_coro::executor);
  v1::LegResult unused;
  if (auto failure = co_await connection.open(plan, setup_time(clock, plan), unused)) co_return failure->message;
  std::string error;
  const auto seen = co_await exchange(connection, plan, clock, &error);
  if (seen == Exchange::kFailed || seen == Exchange::kClosedBefore) {
    co_return "idle connection: " + (seen == Exchange::kFailed ? error : std::string("closed before any response"));
  }
  if (cancelled(options)) co_return "cancelled";
  if (options.on_idle) options.on_idle();
  const auto idle_start = clock.steady_now();
  if (options.cancel) options.cancel->set_on_cancel([&connection] { connection.cancel(); });
  std::array<char, 512> unasked;
  boost::system::error_code ec;
  const auto n = co_await connection.read_some(asio::buffer(unasked), options.max_idle, ec);
  const auto idle = clock.steady_now() - idle_start;
  if (options.cancel) options.cancel->set_on_cancel(nullptr);
  connection.close();
  if (n > 0) co_return fmt::format("the server sent {} bytes on an idle connection", n);
  if (ec == asio::error::eof || ec == asio::error::connection_reset) {
    *out.mutable_idle_close_after() = to_proto(idle);
  } else if (ec == asio::error::operation_aborted) {
    co_return "cancelled";
  } else if (ec != boost::beast::error::timeout) {  // a timeout: still open after max_idle, recorded as zero
    co_return "idle connection: " + ec.message();
  }
  co_return std::string();
}

}  // namespace

asio::awaitable<v1::KeepAliveMeasurement> measure_keep_alive(const v1::Check& check, const Clock& clock,
                                                             LegTarget target, KeepAliveOptions options) {
  v1::KeepAliveMeasurement out;
  *out.mutable_measure_time() = to_timestamp(clock.now());
  HttpLimits limits;
  limits.targets = options.targets;
  const auto plan = keep_alive_plan(plan_leg(check, limits, target));
  std::string error = plan.invalid;
  if (error.empty()) error = co_await count_requests(plan, clock, options, out);
  if (error.empty()) error = co_await time_idle_close(plan, clock, options, out);
  // Error lines quote what the server sent and the check's own URL.
  if (!error.empty()) out.set_error(safe_text(error, kErrorBytes));
  co_return out;
}

asio::awaitable<v1::LegResult> run_leg(const LegPlan& plan, const Clock& clock, std::string* body,
                                       std::optional<std::string>* location) {
  v1::LegResult leg;
  leg.mutable_timings();
  leg.mutable_response();
  const auto time = LegTime::until(clock, plan.timeout);
  if (!plan.invalid.empty()) {
    record_failure(leg, {{LegEnding::Step::kPlan}, plan.invalid}, time);
    co_return leg;
  }
  leg.set_url(requested_url_text(plan.url));  // (redirects.h sets the final one over it)
  Connection connection(co_await asio::this_coro::executor);
  auto failure = co_await connection.open(plan, time, leg);
  ResponseParser parser(plan.limits.parser, plan.head());
  if (!failure) {
    failure = co_await connection.exchange(plan, time, parser, leg);
    record_response(parser, failure ? &failure->ending : nullptr, *leg.mutable_response(), clock.now());
  }
  if (failure) {
    record_failure(leg, *failure, time);
    co_return leg;
  }
  leg.mutable_timings()->set_total_us(time.elapsed_us());
  if (body != nullptr) *body = parser.body();
  if (location != nullptr) {
    const auto value = parser.header("location");
    *location = value ? std::optional<std::string>(*value) : std::nullopt;
  }
  record_verdict(leg, parser, connection, plan);
  connection.close();
  co_return leg;
}

asio::awaitable<v1::LegResult> run_http_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                LegTarget target, std::string* body) {
  const auto plan = plan_leg(check, limits, target);
  co_return co_await run_leg(plan, clock, body);
}

}  // namespace vantage::probe
