#pragma once
// Check.ip_family: which addresses a leg tries, and in what order. Pure
// functions of the addresses (no DNS, no sockets), applied by the connection
// (connection.cc resolve) to what the resolver answered or to an address
// literal, before the target rules (dns.h refused_target) judge them.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as IPv4: a connection
// to one travels over IPv4.

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// 4 or 6: the IP version a connection to `address` uses.
uint32_t ip_version(const boost::asio::ip::address& address);

// Orders `addresses` (in the resolver's order: IPv4 first, dns.h) for
// `family`, in place:
// - UNSPECIFIED: unchanged;
// - PREFER_V4 / PREFER_V6: that family's addresses first, then the other's,
//   each in the resolver's order;
// - ONLY_V4 / ONLY_V6: the other family's addresses removed (never tried).
// Returns why nothing is left to try, or empty: an only-family that removed
// every address. For a name (`literal` false): "no IPv6 address (ip_family:
// only_v6); it has 203.0.113.7" (a DNS failure); for an address literal
// written in the check or an override: "203.0.113.7 is an IPv4 address and
// the check's ip_family is ipv6" (the check contradicts itself: an
// invalid check).
std::string order_by_family(std::vector<boost::asio::ip::address>& addresses, v1::IpFamily family, bool literal);

}  // namespace vantage::probe
