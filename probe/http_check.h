#pragma once
// One attempt of a check over plain HTTP/1.1, measured phase by phase.
// The prober returns a result and nothing else: it never talks to gRPC,
// Prometheus or PostgreSQL. Errors are values (a failure class), never
// exceptions.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>

#include "common/clock.h"
#include "probe/http_parser.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

struct HttpLimits {
  // Header bytes and count are today's Cloudflare limits, body bytes what is
  // read at most (the rest is not downloaded): settings, never constants.
  HttpParserLimits parser;
  // A successful response whose header block passes this share of the limit
  // is headers_near_limit: the 520 before it happens.
  double near_limit_share = 0.75;
};

// Where one leg connects, when not simply where the URL points: the origin
// leg (straight at the origin, with the URL's Host header), or curl-like
// --resolve. Empty fields keep the URL's.
struct LegTarget {
  std::string connect_host;  // an address or a name to resolve
  uint16_t connect_port = 0;
  std::string host_header;
  std::string scheme;
  std::string sni;  // TLS server name (and name verified); default: the Host header's host
};

// Runs the check once; the check's timeout bounds the whole attempt.
// Never throws.
boost::asio::awaitable<v1::LegResult> run_http_attempt(const v1::Check& check, const Clock& clock,
                                                       HttpLimits limits, LegTarget target = {});

// Whether `status` is in the check's expected set.
bool status_expected(const v1::Check& check, uint32_t status);

}  // namespace vantage::probe
