#include "probe/connection.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <ctime>
#include <vector>

#include "common/text.h"
#include "probe/dns.h"
#include "probe/ip_family.h"
#include "probe/tls_facts.h"

namespace vantage::probe {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using Step = LegEnding::Step;
using How = LegEnding::How;

namespace {

constexpr size_t kTlsTextBytes = 256;  // ConnectionInfo.tls_error

// A 16 KiB read buffer, reused: one in each attempt's coroutine frame made
// every attempt a large allocation (glibc then consolidates its fast bins).
// Buffers go back to the free list of the thread that ends the read.
class ReadBuffer {
 public:
  static constexpr size_t kBytes = 16 * 1024;
  ReadBuffer() {
    auto& free = free_list();
    if (free.empty()) {
      data_.reset(new char[kBytes]);
    } else {
      data_ = std::move(free.back());
      free.pop_back();
    }
  }
  ~ReadBuffer() {
    auto& free = free_list();
    if (free.size() < kKept) free.push_back(std::move(data_));
  }
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;
  asio::mutable_buffer buffer() { return {data_.get(), kBytes}; }
  const char* data() const { return data_.get(); }

 private:
  static constexpr size_t kKept = 16;  // reads in flight at once beyond these allocate
  static std::vector<std::unique_ptr<char[]>>& free_list() {
    thread_local std::vector<std::unique_ptr<char[]>> free;
    return free;
  }
  std::unique_ptr<char[]> data_;
};

boost::system::error_code errno_code() { return {errno, boost::system::system_category()}; }

// Whether a non-blocking connect in progress has completed, without a trip
// through the event loop: on loopback and to a near origin the handshake is
// usually done when connect() returns. Empty: still in progress.
std::optional<boost::system::error_code> connect_done(int fd) {
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 0) != 1) return std::nullopt;
  if ((p.revents & (POLLERR | POLLHUP)) == 0) return boost::system::error_code();
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno_code();
  return boost::system::error_code(error ? error : ENOTCONN, boost::system::system_category());
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

// Why the handshake failed: the certificate (and what is wrong with it) or
// the handshake itself.
// (With `skip_verify` the certificate was never the cause.)
StepFailure handshake_failure(const boost::system::error_code& ec, SSL* ssl, const std::string& server_name,
                              bool skip_verify, v1::ConnectionInfo& connection) {
  if (ec == beast::error::timeout) return {{Step::kTls, How::kTimedOut}, "TLS handshake timed out"};
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK && !skip_verify) {
    connection.set_cert_problem(cert_problem(verify));
    connection.set_tls_error(safe_text(X509_verify_cert_error_string(verify), kTlsTextBytes));
    return {{Step::kTls, How::kCertificate},
            fmt::format("certificate of {} rejected: {}", server_name, X509_verify_cert_error_string(verify))};
  }
  connection.set_tls_error(safe_text(ec.message(), kTlsTextBytes));
  return {{Step::kTls, ec == asio::error::connection_reset ? How::kReset : How::kFailed},
          "TLS handshake: " + ec.message()};
}

How connect_how(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return How::kTimedOut;
  if (ec == asio::error::connection_refused) return How::kRefused;
  if (ec == asio::error::host_unreachable || ec == asio::error::network_unreachable) return How::kUnreachable;
  return How::kFailed;
}

// How reading the response ended early, and what that looks like to a person.
StepFailure read_failure(const boost::system::error_code& ec, const ResponseParser& parser,
                         v1::ConnectionInfo& connection) {
  LegEnding ending{Step::kRead, How::kFailed, parser.bytes_received(), parser.head_complete(),
                   parser.failure_class()};
  if (ec == asio::error::eof) {
    ending.how = How::kClosed;
    return {ending, "read response: " + parser.error()};
  }
  if (ec == beast::error::timeout) {
    ending.how = How::kTimedOut;
    return {ending,
            fmt::format("no complete response {} within the timeout", parser.head_complete() ? "body" : "head")};
  }
  if (ec.category() == asio::error::get_ssl_category() || ec.category() == asio::ssl::error::get_stream_category()) {
    ending.how = How::kNotTls;
    connection.set_tls_error(safe_text(ec.message(), kTlsTextBytes));
    return {ending, fmt::format("read response: not TLS records after the handshake, after {} bytes of the response ({})",
                                parser.bytes_received(), ec.message())};
  }
  if (ec == asio::error::connection_reset) ending.how = How::kReset;
  return {ending, "read response: " + ec.message()};
}

// Keeps the addresses of `answer` a leg may connect to (dns.h
// refused_target); none left is an error naming the first refused one.
DnsAnswer usable_targets(DnsAnswer answer, bool literal, const TargetRules& rules) {
  if (!answer.error.empty()) return answer;
  std::string refused;
  std::vector<asio::ip::address> usable;
  for (const auto& address : answer.addresses) {
    auto why = refused_target(address, literal, rules.allow_loopback);
    if (why.empty()) {
      usable.push_back(address);
    } else if (refused.empty()) {
      refused = std::move(why);
    }
  }
  answer.addresses = std::move(usable);
  if (answer.addresses.empty()) answer.error = "refused as a target: " + refused;
  return answer;
}

// An address as text: IPv4 without inet_ntop (which formats through
// sprintf), twice per attempt.
std::string address_text(const asio::ip::address& address) {
  if (!address.is_v4()) return address.to_string();
  const auto bytes = address.to_v4().to_bytes();
  char text[16];
  char* out = text;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) *out++ = '.';
    const unsigned b = bytes[i];
    if (b >= 100) *out++ = static_cast<char>('0' + b / 100);
    if (b >= 10) *out++ = static_cast<char>('0' + b / 10 % 10);
    *out++ = static_cast<char>('0' + b % 10);
  }
  return std::string(text, out);
}

}  // namespace

LegTime LegTime::until(const Clock& clock, std::chrono::milliseconds timeout) {
  const auto now = clock.steady_now();
  return LegTime{clock, now, now + timeout};
}

std::chrono::steady_clock::duration LegTime::left() const {
  if (each_step.count() > 0) return each_step;
  return std::max(std::chrono::steady_clock::duration::zero(), deadline - clock.steady_now());
}

uint64_t LegTime::elapsed_us() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock.steady_now() - start).count());
}

// The leg's timer. Its handler holds this (not the Connection, which may be
// gone by the time a fired timer's handler runs) and closes the socket when
// the deadline passes, ending every pending operation.
struct Connection::Deadline {
  explicit Deadline(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
  tcp::socket* socket = nullptr;  // null once the Connection is gone
  bool expired = false;           // the deadline passed: the socket is closed
};

Connection::Connection(const asio::any_io_executor& executor)
    : socket_(executor), deadline_(std::make_shared<Deadline>(executor)) {
  deadline_->socket = &socket_;
}

Connection::~Connection() {
  deadline_->socket = nullptr;
  deadline_->timer.cancel();
}

void Connection::arm(const LegTime& time) {
  if (time.each_step.count() == 0 && armed_for_ == time.deadline) return;  // the same deadline, still armed
  arm_at(std::chrono::steady_clock::now() + time.left());
  armed_for_.reset();
  if (time.each_step.count() == 0) armed_for_ = time.deadline;
}

void Connection::arm_at(std::chrono::steady_clock::time_point at) {
  armed_for_.reset();
  auto& timer = deadline_->timer;
  timer.expires_at(at);  // a wait in progress ends (operation_aborted)
  timer.async_wait([deadline = deadline_](const boost::system::error_code& ec) {
    // Cancelled, the Connection gone, or armed again for later since it fired.
    if (ec || !deadline->socket || deadline->timer.expiry() > std::chrono::steady_clock::now()) return;
    deadline->expired = true;
    boost::system::error_code ignored;
    deadline->socket->close(ignored);
  });
}

void Connection::note_timeout(boost::system::error_code& ec) const {
  if (ec && deadline_->expired) ec = beast::error::timeout;
}

void Connection::cancel() {
  boost::system::error_code ignored;
  socket_.cancel(ignored);
}

asio::awaitable<std::optional<StepFailure>> Connection::open(const LegPlan& plan, const LegTime& time,
                                                             v1::LegResult& leg) {
  if (auto failure = co_await resolve(plan, time, leg)) co_return failure;
  if (auto failure = co_await connect(plan, time, leg)) co_return failure;
  if (plan.url.scheme == "https") co_return co_await handshake(plan, time, leg);
  co_return std::nullopt;
}

asio::awaitable<std::optional<StepFailure>> Connection::resolve(const LegPlan& plan, const LegTime& time,
                                                                v1::LegResult& leg) {
  const auto& host = plan.url.host;
  // An address literal answers at once (as resolve_host would, without its coroutine).
  boost::system::error_code not_literal;
  const auto literal = asio::ip::make_address(host, not_literal);
  DnsAnswer answer;
  if (not_literal) {
    answer = co_await resolve_host(host, std::chrono::duration_cast<std::chrono::milliseconds>(time.left()),
                                   plan.limits.targets.dns_servers);
  } else {
    answer.addresses.push_back(literal);
  }
  // Check.ip_family: the order tried, or the other family dropped (ip_family.h).
  if (plan.check && plan.check->ip_family() != v1::IP_FAMILY_UNSPECIFIED && answer.error.empty()) {
    auto why = order_by_family(answer.addresses, plan.check->ip_family(), !not_literal);
    if (!why.empty() && !not_literal) co_return StepFailure{{Step::kPlan}, std::move(why)};
    answer.error = std::move(why);
  }
  auto dns = usable_targets(std::move(answer), !not_literal, plan.limits.targets);
  leg.mutable_timings()->set_dns_us(time.elapsed_us());
  auto* connection = leg.mutable_connection();
  connection->set_resolver("c-ares");
  if (!dns.error.empty()) co_return StepFailure{{Step::kDns}, "resolve " + host + ": " + dns.error};
  addresses_ = std::move(dns.addresses);
  for (const auto& address : addresses_) connection->add_addresses()->set_address(address_text(address));
  co_return std::nullopt;
}

// The addresses in order until one connects, within the leg's time.
asio::awaitable<std::optional<StepFailure>> Connection::connect(const LegPlan& plan, const LegTime& time,
                                                                v1::LegResult& leg) {
  const auto started = time.elapsed_us();
  boost::system::error_code ec = asio::error::not_found;
  bool armed = false;  // the timer: once for all the addresses, as they share the step's time
  size_t connected = 0;
  for (; connected < addresses_.size(); ++connected) {
    const tcp::endpoint endpoint(addresses_[connected], plan.url.port);
    auto done = start_connect(endpoint);
    if (!done) {  // in progress: wait for it
      if (!armed) arm(time);
      armed = true;
      ec.clear();
      co_await socket_.async_wait(tcp::socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
      note_timeout(ec);
      done = ec ? ec : socket_error();
    }
    ec = *done;
    if (!ec) {
      peer_ = endpoint;
      break;
    }
    if (ec == beast::error::timeout) break;
  }
  leg.mutable_timings()->set_connect_us(time.elapsed_us() - started);
  if (ec) {
    co_return StepFailure{{Step::kConnect, connect_how(ec)},
                          fmt::format("connect {}:{}: {}", plan.url.host, plan.url.port, ec.message())};
  }
  auto* connection = leg.mutable_connection();
  // The address's text as resolve() recorded it (addresses_, in order).
  const bool recorded = connection->addresses_size() == static_cast<int>(addresses_.size());
  const auto text =
      recorded ? connection->addresses(static_cast<int>(connected)).address() : address_text(peer_.address());
  // "[2001:db8::1]:443": an IPv6 address in brackets, as in a URL.
  connection->set_connected_address(peer_.address().is_v6() ? fmt::format("[{}]:{}", text, peer_.port())
                                                            : fmt::format("{}:{}", text, peer_.port()));
  connection->set_ip_family(ip_version(peer_.address()));
  co_return std::nullopt;
}

std::optional<boost::system::error_code> Connection::start_connect(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  if (socket_.is_open()) socket_.close(ec);  // the address before failed
  if (deadline_->expired) return beast::error::timeout;
  socket_.open(endpoint.protocol(), ec);  // registers it with the event loop
  if (!ec) socket_.native_non_blocking(true, ec);
  if (ec) return ec;
  const int fd = socket_.native_handle();
  if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) == 0) return ec;
  if (errno != EINPROGRESS && errno != EAGAIN) return errno_code();
  return connect_done(fd);
}

boost::system::error_code Connection::socket_error() {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno_code();
  return {error, boost::system::system_category()};
}

// SNI and the name verified are the plan's server name; a failure says
// whether the certificate or the handshake was at fault, and why.
asio::awaitable<std::optional<StepFailure>> Connection::handshake(const LegPlan& plan, const LegTime& time,
                                                                  v1::LegResult& leg) {
  // The check's own CA (plan.h tls_context), else the system's store.
  tls_.emplace(socket_, plan.tls_context ? *plan.tls_context : default_tls_context());
  SSL* ssl = tls_->native_handle();
  set_tls_names(ssl, plan.server_name);
  const bool skip_verify = plan.check && plan.check->tls().skip_verify();
  if (skip_verify) skip_verification(ssl);
  arm(time);
  const auto started = time.elapsed_us();
  boost::system::error_code ec;
  co_await tls_->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  note_timeout(ec);
  leg.mutable_timings()->set_tls_us(time.elapsed_us() - started);
  auto& connection = *leg.mutable_connection();
  record_certificates(ssl, connection);
  if (skip_verify) record_skipped_verification(ssl, connection);
  if (ec) co_return handshake_failure(ec, ssl, plan.server_name, skip_verify, connection);
  record_tls_session(ssl, connection);
  co_return std::nullopt;
}

asio::awaitable<std::optional<StepFailure>> Connection::exchange(const LegPlan& plan, const LegTime& time,
                                                                 ResponseParser& parser, v1::LegResult& leg) {
  closed_by_peer_ = false;
  boost::system::error_code ec;
  auto request = asio::buffer(plan.request);
  if (!tls_ && !deadline_->expired) {
    // A request fits a fresh connection's send buffer: one send, no wait.
    const auto sent = ::send(socket_.native_handle(), request.data(), request.size(), MSG_NOSIGNAL);
    if (sent >= 0) {
      request += static_cast<size_t>(sent);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      ec = errno_code();
    }
  }
  if (!ec && request.size() > 0) {
    arm(time);
    if (tls_) {
      co_await asio::async_write(*tls_, request, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await asio::async_write(socket_, request, asio::redirect_error(asio::use_awaitable, ec));
    }
    note_timeout(ec);
  }
  leg.mutable_timings()->set_request_written_us(time.elapsed_us());
  if (ec) co_return StepFailure{{Step::kWrite, How::kReset}, "write request: " + ec.message()};
  co_return co_await read_response(time, parser, leg);
}

// Bytes into the strict parser as they come, until the response is complete
// (or the server's FIN completes a body delimited by close) or fails.
asio::awaitable<std::optional<StepFailure>> Connection::read_response(const LegTime& time, ResponseParser& parser,
                                                                      v1::LegResult& leg) {
  ReadBuffer chunk;
  while (parser.state() == ResponseParser::State::kHead || parser.state() == ResponseParser::State::kBody) {
    arm(time);
    boost::system::error_code ec;
    // (Not through read_chunk: a coroutine frame less per read.)
    const auto into = chunk.buffer();
    const auto n = tls_ ? co_await tls_->async_read_some(into, asio::redirect_error(asio::use_awaitable, ec))
                        : co_await socket_.async_read_some(into, asio::redirect_error(asio::use_awaitable, ec));
    after_read(ec);
    if (n > 0) {
      if (parser.bytes_received() == 0) leg.mutable_timings()->set_first_byte_us(time.elapsed_us());
      parser.feed(std::string_view(chunk.data(), n));
    }
    if (!ec) continue;
    if (ec == asio::error::eof && parser.finish_eof() == ResponseParser::State::kComplete) {
      closed_by_peer_ = true;
      break;
    }
    co_return read_failure(ec, parser, *leg.mutable_connection());
  }
  if (parser.state() == ResponseParser::State::kError) {
    co_return StepFailure{{Step::kRead, How::kRejected, parser.bytes_received(), parser.head_complete(),
                           parser.failure_class()},
                          "response rejected: " + parser.error()};
  }
  co_return std::nullopt;
}

asio::awaitable<size_t> Connection::read_some(asio::mutable_buffer buffer, std::chrono::steady_clock::duration wait,
                                              boost::system::error_code& ec) {
  arm_at(std::chrono::steady_clock::now() + wait);
  co_return co_await read_chunk(buffer, ec);
}

asio::awaitable<size_t> Connection::read_chunk(asio::mutable_buffer buffer, boost::system::error_code& ec) {
  const auto n = tls_ ? co_await tls_->async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec))
                      : co_await socket_.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  after_read(ec);
  co_return n;
}

void Connection::after_read(boost::system::error_code& ec) const {
  // A TLS peer that closes without close_notify: a FIN all the same.
  if (ec == asio::ssl::error::stream_truncated) ec = asio::error::eof;
  note_timeout(ec);
}

void Connection::close() {
  // No shutdown() first: close() sends the FIN (or, with unread bytes, the RST it sent after a shutdown too).
  boost::system::error_code ignored;
  socket_.close(ignored);
  deadline_->timer.cancel();
  armed_for_.reset();
}

}  // namespace vantage::probe
