#pragma once
// Name resolution through c-ares: asynchronous on the probe's executor and
// bounded by the attempt's deadline, so a dead resolver cannot hold an
// attempt (getaddrinfo cannot be cancelled).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace vantage::probe {

struct DnsAnswer {
  std::vector<boost::asio::ip::address> addresses;  // IPv4 first
  std::string error;                                 // empty on success
  bool timed_out = false;
};

// An address literal answers at once, without a query. `servers` ("ip:port,...")
// replaces the system's resolvers (tests, and probes told to use their own).
boost::asio::awaitable<DnsAnswer> resolve_host(const std::string& host, std::chrono::milliseconds timeout,
                                               const std::string& servers = "");

// Why `address` may not be a target, or empty when it may. A DNS answer is
// the site's word, so where it points is checked:
// - the unspecified address (0.0.0.0/8, ::) never: a connection to it reaches
//   the probe's own host, and a "site" there would look healthy;
// - loopback (127.0.0.0/8, ::1) only with `allow_loopback`
//   (TargetRules::allow_loopback: tests and labs on this machine);
// - link-local (169.254.0.0/16, fe80::/10: cloud metadata services) never.
// An address `literal` (in the URL, an origin address, a resolve or
// connect-to override) was written by whoever configured the check: that is consent
// for loopback and link-local, but not for the unspecified address.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
std::string refused_target(const boost::asio::ip::address& address, bool literal, bool allow_loopback);

}  // namespace vantage::probe
