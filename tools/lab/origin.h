#pragma once
// A fake origin for tests and demos. It writes raw bytes on purpose, so it can
// misbehave in every origin-side way diagnosis.md (section 3) lists. One
// running lab serves every case; the request path picks the behaviour and
// parameters come as a query string (e.g. /fault/headers?kb=64).
//
//   GET /                          200 "ok"
//   GET /status/NNN                status NNN with a short body (500/502/503: origin_5xx)
//   GET /fail                      the status set with set_fail_status() (default 200)
//   GET /target?QUERY              200 whose body is the request's target (path and query) and
//                                  a newline: what the client asked for (cache busting)
//
// Faults (the class the strict prober reports is in brackets). "FIN" is an
// orderly close, "RST" an abortive one (SO_LINGER 0, then close).
//   /fault/empty-reply             read the request, FIN without a byte   [empty_reply]
//   /fault/reset                   read the request, RST without a byte   [connection_reset]
//   /fault/reset-mid-body          head with Content-Length: 1000, 100 body bytes, a short
//                                  pause (so the head is read before the reset), RST
//                                                                          [truncated_body]
//   /fault/partial-head            "HTTP/1.1 200 OK\r\nContent-Ty", FIN   [incomplete_head]
//   /fault/bad-status-line         "HTTP/1.1 2000 OK" ..., FIN             [malformed_status_line]
//   /fault/banner                  "SSH-2.0-OpenSSH_9.2\r\n", FIN          [malformed_status_line]
//   /fault/http09                  a bare HTML body, no status line, FIN   [malformed_status_line]
//   /fault/header-without-colon    a header line with no colon, FIN        [malformed_header]
//   /fault/conflicting-length      Content-Length: 2 and Content-Length: 3 [bad_framing]
//   /fault/length-and-chunked      Content-Length with Transfer-Encoding: chunked [bad_framing]
//   /fault/bad-chunk               chunked body whose chunk size is "zz"   [bad_framing]
//   /fault/truncated-body          Content-Length: 1000, 100 bytes, FIN    [truncated_body]
//   /fault/headers?kb=N            a valid 200 whose header block (status line to the
//                                  blank line) is exactly N KiB, in fields of about
//                                  1000 bytes (N default 64, at most 4096)
//                                  [ok up to 96 KiB, headers_near_limit above, headers_too_large
//                                  past 128 KiB, with the prober's default limits]
//   /fault/header-fields?count=N   a valid 200 with exactly N header fields in all,
//                                  Content-Length included (N default 100, 1..100000)
//                                  [headers_too_large past 300]
//   /fault/stall?seconds=S         read the request, send nothing for S seconds (default
//                                  30, at most 86400), then FIN            [timeout_headers]
//   /fault/trickle-head?delay_ms=D a valid head, one byte every D ms (default 1000,
//                                  1..60000), then the body "ok\n"; the connection
//                                  stays usable                            [timeout_headers]
//   /fault/big-body?mb=N           a valid 200 with Content-Length N MiB (default 10, at most
//                                  1048576), streamed in 64 KiB writes as the client reads,
//                                  stopping when the client goes away
//                                  [ok, body_truncated_by_cap]
//   /fault/hostile-headers         a valid 200 whose Server value is bytes that are not UTF-8
//                                  followed by a long UTF-8 value (a cut at any byte count
//                                  lands inside a character), CF-Cache-Status not UTF-8, and
//                                  cf-ray with a random 3-letter colo each time
//                                  [ok; the probe's text fields stay valid UTF-8, the colo
//                                  "other" unless it happens to be a real one]
//   /fault/hostile-edge-error      a 520 as Cloudflare's JSON error (rule 1) whose error_name and
//                                  error_category carry NUL, ESC and kilobytes of text, with
//                                  cf-ray colo random each time        [edge_error]
//   /fault/redirect?to=URL&status=S  status S (300..399, default 302) with Location: URL
//                                  (%-decoded, as given: relative or absolute); without to=
//                                  no Location at all   [followed: bad_redirect without one]
//   /fault/redirect-chain?n=N      302 to /fault/redirect-chain?n=N-1, a 200 at n=0 (N default
//                                  3, at most 1000)     [followed: N hops, then ok]
//   /fault/redirect-loop           302 to /fault/redirect-loop?n=1, which 302s back
//                                                       [followed: redirect_loop]
//   /fault/method?is=M             200 with the request's method as the body when it is M (or
//                                  without is=), else 405: which method a redirect sent
//                                  (these four: &delay_ms=D waits D ms, at most 60000, first)
//   /fault/echo?body=T&repeat=N&header=Name:Value
//                                  a 200 (Content-Type: text/plain) whose body is T (%-decoded)
//                                  N times (default 1, at most 16 MiB in all), with a field for
//                                  each header= (%-decoded, may repeat; one without a colon or
//                                  with CR/LF is left out): what a check's assertions look at
//                                  [ok; assertion_failed when an assertion does not hold]
//   /fault/<anything else>         404 listing the known faults
// A fault that ends in FIN or RST ends the connection; the others keep it alive.
//
// Keep-alive behaviour on any path, lab-wide (like nginx keepalive_timeout and
// keepalive_requests; the intermittent 520s of diagnosis.md section 5):
//   set_idle_close(d)   FIN a connection on which no complete request head
//                       arrives within d after it opened or after the previous
//                       response (0: never, the default)
//   set_max_requests(n) after the n-th request on a connection, answer it with
//                       "Connection: close" and FIN (0: unlimited, the default)
// Connections are otherwise keep-alive unless the request says close.
//
// Each connection is its own coroutine on the lab's one thread, so a stall or
// a trickle never blocks another connection; stop() (and the destructor)
// returns promptly whatever the open connections are doing.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace vantage::lab {

class Origin {
 public:
  // Listens on `address`:`port` (0: any free port) on its own thread.
  Origin(const std::string& address, uint16_t port);
  ~Origin();
  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  uint16_t port() const { return port_; }
  // What /fail answers from now on.
  void set_fail_status(int status) { fail_status_ = status; }
  // Close idle keep-alive connections after `idle` (0: never). Applies to
  // each wait that starts from now on.
  void set_idle_close(std::chrono::milliseconds idle) { idle_close_ms_ = idle.count(); }
  // Close a connection after it has served `n` requests (0: unlimited).
  void set_max_requests(uint64_t n) { max_requests_ = n; }
  uint64_t requests() const { return requests_; }
  // Also listens on `address` (e.g. "::1" next to "127.0.0.1") at the same
  // port, so a name with an A and an AAAA record reaches this origin over
  // either family. False when that port is taken there.
  bool also_listen(const std::string& address);
  void stop();

  // The paths and settings above, for --help.
  static std::string_view help();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int> fail_status_{200};
  std::atomic<int64_t> idle_close_ms_{0};
  std::atomic<uint64_t> max_requests_{0};
  std::atomic<uint64_t> requests_{0};
};

}  // namespace vantage::lab
