#pragma once
// One attempt of a check over plain HTTP/1.1, measured phase by phase.
// The prober returns a result and nothing else: it never talks to gRPC,
// Prometheus or PostgreSQL. Errors are values (a failure class), never
// exceptions.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "probe/classifier.h"
#include "probe/http_parser.h"
#include "probe/plan.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// Runs one leg as `plan` says; the plan's timeout bounds it. `body`, when
// given, receives the body read (at most the parser's body cap) of a complete
// response. `location`, when given, receives the Location field of a
// complete response (nullopt when it has none; redirects.h). `plan` outlives
// the leg (the caller awaits it). Never throws.
boost::asio::awaitable<v1::LegResult> run_leg(const LegPlan& plan, const Clock& clock, std::string* body = nullptr,
                                              std::optional<std::string>* location = nullptr);

// Runs the check once (plan_leg, then run_leg); the check's timeout bounds the
// whole attempt. `body` as for run_leg. Never throws.
//
// Everything the site (or its DNS) sends is untrusted: the text kept from it
// (headers, parser and TLS errors, the error line) is valid UTF-8 and bounded
// when it enters the result (common/text.h), colos are known codes or
// "other", refused addresses (refused_target) are a dns_failure, and a
// request whose method, target, Host or header would put CR, LF or NUL (or a
// header name that is not a token) on the wire is never sent: the attempt
// fails first, with FAILURE_CLASS_INVALID_CHECK like a bad URL.
boost::asio::awaitable<v1::LegResult> run_http_attempt(const v1::Check& check, const Clock& clock,
                                                       HttpLimits limits, LegTarget target = {},
                                                       std::string* body = nullptr);

// Ends a keep-alive measurement's idle wait at once (its check was removed,
// the probe is stopping). Use it on the measurement's executor only.
class KeepAliveCancel {
 public:
  void cancel() {
    cancelled_ = true;
    if (on_cancel_) on_cancel_();
  }
  bool cancelled() const { return cancelled_; }
  // Set by the measurement while it waits (cleared after).
  void set_on_cancel(std::function<void()> fn) { on_cancel_ = std::move(fn); }

 private:
  bool cancelled_ = false;
  std::function<void()> on_cancel_;
};

struct KeepAliveOptions {
  // The longest an idle connection is held open waiting for the server to
  // close it. Longer than the edge's reuse of idle connections (about 900 s),
  // since an origin closing sooner than that is the finding.
  std::chrono::milliseconds max_idle{1'000'000};
  // Sequential requests sent at most on one connection.
  uint32_t max_requests = 1000;
  // Called once, when the idle wait starts: from then on the measurement
  // only waits (a timer and an open socket), so a scheduler frees its slot.
  std::function<void()> on_idle;
  std::shared_ptr<KeepAliveCancel> cancel;  // optional
  TargetRules targets;
};

// The server's keep-alive behaviour (diagnosis.md section 5), on two
// connections to the check's URL (or `target`), GET (HEAD for a HEAD check):
// - requests per connection: sequential requests on one connection until the
//   server closes it (Connection: close, or FIN/RST instead of the next
//   response); zero when it was still open after max_requests;
// - idle close: one request on a fresh connection, then the time until the
//   server's FIN or RST; zero when it stayed open for max_idle.
// Each request is bounded by the check's timeout. A measurement that could
// not be made says why in `error`. Never throws.
boost::asio::awaitable<v1::KeepAliveMeasurement> measure_keep_alive(const v1::Check& check, const Clock& clock,
                                                                    LegTarget target, KeepAliveOptions options);

}  // namespace vantage::probe
