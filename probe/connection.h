#pragma once
// One client connection of a leg: opens (DNS, TCP, TLS for https), writes a
// plan's request and reads one whole response through the strict parser,
// recording each phase's time and what it learnt of the connection. Shared by
// the legs, their follow-ups and the keep-alive measurement. It reports how a
// step failed (classifier.h judges it); nothing here throws.
//
// Cheap per connection (issue 13): one timer per leg, armed only when a step
// has to wait, ends whatever is pending when the leg's time is up (the
// socket is closed); a connect that completes at once (loopback, a near
// origin) and a request that fits the socket's buffer are done without a
// trip through the event loop; reads go into a reused buffer.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "probe/classifier.h"
#include "probe/http_parser.h"
#include "probe/plan.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// The time a leg has: one deadline for all its steps, or (`each_step`) the
// same time for each step (the keep-alive measurement's connection setup).
struct LegTime {
  const Clock& clock;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::duration each_step{0};

  static LegTime until(const Clock& clock, std::chrono::milliseconds timeout);
  std::chrono::steady_clock::duration left() const;
  uint64_t elapsed_us() const;
};

// A step that failed: how (for the classifier) and what happened, for a
// person (quotes the URL, the server, its TLS stack: not yet made safe).
struct StepFailure {
  LegEnding ending;
  std::string message;
};

class Connection {
 public:
  explicit Connection(const boost::asio::any_io_executor& executor);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // DNS, TCP and TLS as `plan` says. Records into `leg`: resolver and
  // addresses, the connected address, TLS version, ALPN, certificate facts,
  // and the times of DNS (from the start), connect and TLS.
  boost::asio::awaitable<std::optional<StepFailure>> open(const LegPlan& plan, const LegTime& time,
                                                          v1::LegResult& leg);
  // Writes the plan's request and feeds the response to `parser` until it is
  // complete or fails. Records request_written_us and first_byte_us, and the
  // TLS error of bytes that are not TLS records.
  boost::asio::awaitable<std::optional<StepFailure>> exchange(const LegPlan& plan, const LegTime& time,
                                                              ResponseParser& parser, v1::LegResult& leg);
  // One read after the response (the keep-alive idle wait), within `wait`.
  // A TLS peer's close without close_notify is a FIN all the same.
  boost::asio::awaitable<size_t> read_some(boost::asio::mutable_buffer buffer, std::chrono::steady_clock::duration wait,
                                           boost::system::error_code& ec);

  // The last response ended with the server's FIN (a body delimited by close).
  bool closed_by_peer() const { return closed_by_peer_; }
  const boost::asio::ip::tcp::endpoint& peer() const { return peer_; }
  // The addresses DNS gave (those a leg may connect to), in order.
  const std::vector<boost::asio::ip::address>& addresses() const { return addresses_; }
  // Ends a pending read or wait (operation_aborted).
  void cancel();
  // Closes the socket (the kernel sends the FIN); stops the timer.
  void close();

 private:
  boost::asio::awaitable<std::optional<StepFailure>> resolve(const LegPlan& plan, const LegTime& time,
                                                             v1::LegResult& leg);
  boost::asio::awaitable<std::optional<StepFailure>> connect(const LegPlan& plan, const LegTime& time,
                                                             v1::LegResult& leg);
  boost::asio::awaitable<std::optional<StepFailure>> handshake(const LegPlan& plan, const LegTime& time,
                                                               v1::LegResult& leg);
  boost::asio::awaitable<std::optional<StepFailure>> read_response(const LegTime& time, ResponseParser& parser,
                                                                   v1::LegResult& leg);
  // A fresh socket's connect to one address: how it ended, or empty while
  // it is in progress (then wait for the socket to be writable and read
  // socket_error()).
  std::optional<boost::system::error_code> start_connect(const boost::asio::ip::tcp::endpoint& endpoint);
  boost::system::error_code socket_error();
  boost::asio::awaitable<size_t> read_chunk(boost::asio::mutable_buffer buffer, boost::system::error_code& ec);
  // What a read's error means: a TLS close without close_notify is a FIN, a read past the deadline a timeout.
  void after_read(boost::system::error_code& ec) const;
  // Before a step that may wait: the timer at the leg's deadline (armed once
  // per deadline), or `each_step` from now.
  void arm(const LegTime& time);
  void arm_at(std::chrono::steady_clock::time_point at);
  // An error of a step that ran into the deadline becomes beast's timeout.
  void note_timeout(boost::system::error_code& ec) const;

  struct Deadline;  // the timer and what its handler may touch

  boost::asio::ip::tcp::socket socket_;
  // TLS over socket_ for https; refers to socket_, so a Connection never moves.
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  std::shared_ptr<Deadline> deadline_;
  // The leg deadline the timer is armed for (LegTime::deadline), when not each_step.
  std::optional<std::chrono::steady_clock::time_point> armed_for_;
  std::vector<boost::asio::ip::address> addresses_;
  boost::asio::ip::tcp::endpoint peer_;
  bool closed_by_peer_ = false;
};

}  // namespace vantage::probe
