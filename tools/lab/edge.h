#pragma once
// A fake Cloudflare edge for tests and demos: a reverse proxy in front of an
// origin (usually the lab's Origin) that answers the way the real edge does
// (diagnosis.md sections 2, 4 and 5), so the whole edge + origin diagnosis
// can be driven on one machine.
//
// - One listener per colo on 127.0.0.1 (port(colo)); every response carries
//   `cf-ray: <16 hex>-<COLO>` and `Server: cloudflare`.
// - Each request is forwarded to the origin over HTTP/1.1 (method, target and
//   headers kept, Host kept, hop-by-hop headers dropped, CF-Ray /
//   CF-Connecting-IP / X-Forwarded-For added), on an idle origin connection
//   from the colo's pool when there is one: an idle connection is reused for
//   up to `edge_idle_reuse` (900 s) without checking it is still open, which
//   reproduces the keep-alive race of section 5 against an origin whose idle
//   close is shorter (Origin::set_idle_close): the request lands on a
//   connection the origin has just closed and the edge answers 520.
// - The origin's response is read with the lab's own reader (ResponseReader,
//   tools/lab/response_reader.h, with the limits below; never the probe's
//   parser, which the lab exists to check) and mapped:
//     empty reply, reset, incomplete head, truncated body, malformed status
//     line or header, bad framing, headers too large,
//     body over `max_body_bytes`                           -> 520
//     connection refused                                   -> 521
//     no connection within `connect_timeout`               -> 522
//     other connect errors (no route)                      -> 523
//     the origin's name does not resolve                   -> 530, error 1016 in the body
//     origin_tls: the TLS handshake fails                  -> 525
//     origin_tls: the origin's certificate is rejected     -> 526
//     no complete response head within `read_timeout`      -> 524
//     body stalled for `read_timeout` after the head       -> 520
//     a valid response                                     -> passed through,
//       5xx bodies unchanged (rule 6), except an origin 502/504 when
//       `origin_502_branded` is on: the HTML template with the host box in
//       error (rule 2, "the origin itself answered 502")
// - Edge error pages come in the Edge's `format` (JSON, HTML template,
//   compact "error code: NNN", or the unbranded nginx-style page, which is
//   only used for 5xx that are not 52x: a 52x falls back to the template).
//   A client sending `Accept: application/json` gets JSON whatever the format.
// - Answered by the edge itself:
//     GET /cdn-cgi/trace               key=value lines (colo=, loc=, http=, tls=off, ...)
//     GET /cdn-cgi/lab/error/NNN       the edge's own NNN (500..599) error page in
//                                      its format: how to see the unbranded page
//
// Bounded: the client request head (64 KiB) and body (1 MiB), the origin head
// (`max_header_bytes`) and body (`max_body_bytes`; the lab edge buffers whole
// responses and does not stream, so a larger body is a 520) are all capped; a
// stalled origin holds a request at most `read_timeout`; an idle client
// connection is closed after `client_idle_timeout`. All connections are
// coroutines on the Edge's one thread; stop() and the destructor return
// promptly whatever they are doing.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vantage::lab {

// The body of the edge's own error pages (diagnosis.md section 2, rules 1-4).
enum class EdgeErrorFormat { kJson, kHtml, kCompact, kUnbranded };

// "json", "html", "compact", "unbranded".
std::optional<EdgeErrorFormat> parse_edge_error_format(std::string_view text);
std::string_view edge_error_format_name(EdgeErrorFormat format);

struct EdgeSettings {
  // One listener each, in this order; 3..8 upper-case letters (like "FRA").
  std::vector<std::string> colos = {"FRA"};
  // Where the listeners bind, and the first port: colo i listens on
  // port_base + i (0: any free port for each).
  std::string listen_address = "127.0.0.1";
  uint16_t port_base = 0;
  // The origin behind the edge: an address, or a name resolved for each new
  // connection (one that does not resolve is a 530 with error 1016).
  std::string origin_host = "127.0.0.1";
  uint16_t origin_port = 80;

  EdgeErrorFormat format = EdgeErrorFormat::kHtml;
  // Replace an origin 502/504 with the branded template (host box in error).
  bool origin_502_branded = false;
  // Sent as Retry-After (seconds, or an HTTP date) with the edge's own 5xx
  // pages; empty: none. What a probe's follow-ups must respect.
  std::string retry_after;
  // Speak TLS to the origin and verify its certificate against the system
  // trust store and the request's host, like SSL mode Full (strict): a failed
  // handshake is 525, a rejected certificate 526. Not pooled.
  bool origin_tls = false;
  // Keep each GET's 200 and serve it instead of a later failure (an edge 52x
  // or an origin 5xx), CF-Cache-Status STALE: the edge leg looks fine while
  // the origin fails. At most 64 responses of 1 MiB.
  bool cache = false;

  // Cloudflare's limits today; settings, never constants (diagnosis.md).
  std::chrono::milliseconds connect_timeout{19'000};
  std::chrono::milliseconds read_timeout{125'000};
  std::chrono::milliseconds edge_idle_reuse{900'000};
  uint32_t max_header_bytes = 128 * 1024;
  uint32_t max_header_count = 300;
  uint64_t max_body_bytes = 64ull * 1024 * 1024;
  // A client keep-alive connection with no new request for this long is closed.
  std::chrono::milliseconds client_idle_timeout{400'000};
};

class Edge {
 public:
  // Binds every listener (throws std::exception naming the colo or the
  // setting at fault) and starts serving on its own thread.
  explicit Edge(EdgeSettings settings);
  ~Edge();
  Edge(const Edge&) = delete;
  Edge& operator=(const Edge&) = delete;

  // The listener's port; 0 for a colo the edge does not have.
  uint16_t port(std::string_view colo) const;
  const EdgeSettings& settings() const { return settings_; }

  // Counters, for tests: requests received from clients, and connections
  // opened to the origin (a reused idle connection does not count).
  uint64_t requests() const { return requests_; }
  uint64_t origin_connections() const { return origin_connections_; }

  void stop();

 private:
  struct Impl;
  const EdgeSettings settings_;
  std::map<std::string, uint16_t, std::less<>> ports_;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> origin_connections_{0};
};

}  // namespace vantage::lab
