#pragma once
// What one attempt will do, decided once from the check before anything is
// sent: for each leg where it connects, the Host header and TLS name, the
// request bytes, what it may read and what it expects. The URL is parsed once
// per attempt; a follow-up or a keep-alive measurement is a plan derived from
// a leg's plan, never an edited copy of the user's check.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/url.h"
#include "probe/http_parser.h"
#include "vantage/v1/types.pb.h"

namespace boost::asio::ssl {
class context;
}

namespace vantage::probe {

struct CompiledAssertions;

// Which addresses a leg may connect to (dns.h refused_target) and who
// resolves names.
struct TargetRules {
  // --allow-loopback-targets: a name may resolve to this host's loopback
  // addresses (tests and the fault lab on this machine). Address literals are
  // always allowed except the unspecified address.
  bool allow_loopback = false;
  // "ip:port,..." instead of the system's resolvers (tests); empty: the system's.
  std::string dns_servers;
};

struct HttpLimits {
  // Header bytes and count are today's Cloudflare limits, body bytes what is
  // read at most (the rest is not downloaded): settings, never constants.
  HttpParserLimits parser;
  // A successful response whose header block passes this share of the limit
  // is headers_near_limit: the 520 before it happens.
  double near_limit_share = 0.75;
  TargetRules targets;
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

// curl's --resolve HOST:PORT:ADDRESS (connect to ADDRESS when the URL names
// HOST:PORT) and --connect-to HOST:PORT:ADDRESS:PORT2 (connect to ADDRESS:PORT2
// instead): a probe sent to one edge location, a site tried before its DNS
// points at it. The Host header, SNI and certificate check keep the URL's host.
struct ResolveOverride {
  std::string host;
  uint16_t port = 0;
  std::string address;
  uint16_t connect_port = 0;  // 0: the URL's port
};

struct AttemptOptions {
  std::vector<ResolveOverride> resolve;
  // Run the origin leg even when the edge leg is fine (diagnose, scheduled origin checks).
  bool origin_always = false;
  // The longest Retry-After an edge follow-up (Check.follow_up_json and
  // follow_up_trace) waits out before it is sent; a longer one, or one past
  // the edge leg's deadline, skips the follow-ups.
  std::chrono::milliseconds follow_up_max_wait{10'000};
};

// One leg's request, where it goes and what it expects.
struct LegPlan {
  // The user's check, never edited: its expected statuses (unless
  // `only_status`). It outlives every plan made from it.
  const v1::Check* check = nullptr;
  std::string method;
  // As this leg sees it: `host` and `port` are where it connects, `host_header`
  // the Host header, `scheme` whether TLS is spoken.
  Url url;
  std::string server_name;  // TLS SNI and the name the certificate must carry
  // The whole request as written on the wire (made once, sent as is).
  std::string request;
  uint32_t only_status = 0;  // not zero: the one status expected instead of the check's
  std::chrono::milliseconds timeout{0};
  HttpLimits limits;
  std::string bad_url;  // why the check's URL did not parse, or empty
  // Why nothing may be sent ("bad url: ...", "request not sent: ..."), or
  // empty: a check that slipped past validation never puts injected lines on
  // the wire.
  std::string invalid;
  // A redirect led to another host than the check's: the check's Host,
  // Authorization, Proxy-Authorization and Cookie headers are not sent there
  // (as curl and browsers do), so a site cannot redirect its credentials away.
  bool other_host = false;
  // Check.tls.ca_pem's context (tls_facts.h), shared by every plan of the
  // checks with that PEM; null: the default one (the system's trust store).
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  std::string bad_tls;  // why Check.tls.ca_pem was refused, or empty
  // Check.assertions compiled (assertions.h), judged on this leg's response;
  // null when the check has none, and for the follow-ups (not the check's page).
  std::shared_ptr<const CompiledAssertions> assertions;

  bool head() const { return method == "HEAD"; }
};

struct AttemptPlan {
  LegPlan edge;                  // the URL as visitors reach it (with any --resolve)
  std::optional<LegPlan> origin;  // straight at the check's origin address, when it has one
};

// Both legs of `check` from one parse of its URL.
AttemptPlan plan_attempt(const v1::Check& check, const HttpLimits& limits, const AttemptOptions& options);
// One leg of `check` with `target`'s overrides.
LegPlan plan_leg(const v1::Check& check, const HttpLimits& limits, const LegTarget& target = {});

// The targets of the legs (the URL parsed by the caller, or nullptr when it
// did not parse).
LegTarget edge_target_of(const Url& url, const AttemptOptions& options);
LegTarget origin_target_of(const v1::Check& check, const Url* url);

// The follow-ups after a 5xx through the edge (diagnosis.md section 2), from
// the edge leg's plan and within `timeout`, each reading a small body: the
// same resource with GET and Accept: application/json (never a repeated
// POST), and GET /cdn-cgi/trace expecting 200.
LegPlan json_follow_up_plan(const LegPlan& edge, std::chrono::milliseconds timeout);
LegPlan trace_follow_up_plan(const LegPlan& edge, std::chrono::milliseconds timeout);
// The next request of an edge leg that follows redirects (redirects.h):
// `to` with its own Host header and TLS name and with the `options`'
// overrides that name its host and port (only those), the method as browsers
// change it for `status` (303: GET, HEAD stays HEAD; 301 and 302: POST
// becomes GET; 307 and 308: kept), within `timeout` (what is left of the
// leg's).
LegPlan redirect_plan(const LegPlan& from, const Url& to, uint32_t status, const AttemptOptions& options,
                      std::chrono::milliseconds timeout);
// The keep-alive measurement's request (diagnosis.md section 5): GET, or HEAD
// for a HEAD check, read with the parser's default limits.
LegPlan keep_alive_plan(const LegPlan& leg);

}  // namespace vantage::probe
