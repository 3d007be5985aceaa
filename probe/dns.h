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

}  // namespace vantage::probe
