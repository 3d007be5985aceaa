// vantage-lab: the fault lab's origin, and optionally a fake Cloudflare edge in
// front of it, for run-local.sh and for trying things by hand.
#include <CLI/CLI.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "common/log.h"
#include "common/url.h"
#include "tools/lab/edge.h"
#include "tools/lab/origin.h"
#include "tools/lab/tls_garbage.h"

int main(int argc, char** argv) {
  CLI::App app{"vantage-lab: a local origin that fails on request"};
  std::string listen = "127.0.0.1:8080";
  app.add_option("--listen", listen, "address:port to listen on (loopback by default)");
  int64_t idle_close_ms = 0;
  app.add_option("--idle-close-ms", idle_close_ms,
                 "FIN a keep-alive connection idle this long, like nginx keepalive_timeout (0: never)")
      ->check(CLI::NonNegativeNumber);
  uint64_t max_requests = 0;
  app.add_option("--max-requests", max_requests,
                 "FIN a connection after this many requests, like nginx keepalive_requests (0: unlimited)");

  std::string tls_garbage_listen;
  app.add_option("--tls-garbage-listen", tls_garbage_listen,
                 "address:port of a TLS origin that answers a completed handshake with bytes that are not TLS "
                 "(self-signed for localhost and 127.0.0.1; off unless given)");
  std::string tls_garbage_cert;
  app.add_option("--tls-garbage-cert", tls_garbage_cert,
                 "write that origin's certificate (PEM) to this file, for a client to trust (e.g. SSL_CERT_FILE)");

  // The fake edge (tools/lab/edge.h): off unless --edge-colos is given.
  vantage::lab::EdgeSettings edge;
  std::vector<std::string> edge_colos;
  app.add_option("--edge-colos", edge_colos,
                 "run a fake Cloudflare edge in front of the origin, one listener per colo (e.g. FRA,AMS,IAD)")
      ->delimiter(',');
  app.add_option("--edge-port-base", edge.port_base,
                 "the first colo's edge port; the next colos take the next ports (0: any free port)");
  std::string edge_format = "html";
  app.add_option("--edge-format", edge_format, "the edge's error page format: html, json, compact or unbranded")
      ->check(CLI::IsMember({"html", "json", "compact", "unbranded"}));
  std::string edge_origin;
  app.add_option("--edge-origin", edge_origin,
                 "host:port the edge forwards to (default: this lab's origin); a closed port gives 521, a "
                 "multicast address (224.0.0.1) 523, a name that does not resolve 530 (1016)");
  int64_t edge_connect_timeout_ms = edge.connect_timeout.count();
  app.add_option("--edge-connect-timeout-ms", edge_connect_timeout_ms, "edge connect timeout to the origin (522)")
      ->check(CLI::PositiveNumber);
  int64_t edge_read_timeout_ms = edge.read_timeout.count();
  app.add_option("--edge-read-timeout-ms", edge_read_timeout_ms, "edge wait for the origin's response head (524)")
      ->check(CLI::PositiveNumber);
  int64_t edge_idle_reuse_ms = edge.edge_idle_reuse.count();
  app.add_option("--edge-idle-reuse-ms", edge_idle_reuse_ms,
                 "how long the edge reuses an idle origin connection (the keep-alive race)")
      ->check(CLI::NonNegativeNumber);
  uint32_t edge_header_limit_kb = edge.max_header_bytes / 1024;
  app.add_option("--edge-header-limit-kb", edge_header_limit_kb, "edge limit on the origin's header block (520 past it)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--edge-origin-502-branded", edge.origin_502_branded,
               "replace an origin 502/504 with the branded error page (host box in error)");
  app.add_option("--edge-retry-after", edge.retry_after,
                 "send this Retry-After (seconds or an HTTP date) with the edge's own 5xx pages");
  app.add_flag("--edge-origin-tls", edge.origin_tls,
               "speak TLS to the origin and verify its certificate (Full strict): 525 / 526 when that fails");
  app.add_flag("--edge-cache", edge.cache,
               "keep each GET's 200 and serve it (CF-Cache-Status: STALE) when the origin later fails");
  app.footer(std::string(vantage::lab::Origin::help()) +
             "Edge (with --edge-colos): every response has cf-ray and Server: cloudflare; origin faults become "
             "520, a refused\nconnection 521, a connect timeout 522, no route 523, a slow head 524, a failed TLS "
             "handshake 525,\na rejected certificate 526, an origin name that does not resolve 530 (1016); GET "
             "/cdn-cgi/trace answers\ncolo=...; GET /cdn-cgi/lab/error/NNN shows the edge's own NNN page.\n");
  CLI11_PARSE(app, argc, argv);

  std::string error;
  auto hp = vantage::parse_host_port(listen, 0, &error, /*listen=*/true);
  if (!hp) {
    std::cerr << "vantage-lab: --listen \"" << listen << "\": " << error << "\n";
    return 2;
  }
  vantage::log::init("lab");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // What failed, for the error line: the origin's bind, or the edge (whose
  // messages name the colo or setting at fault).
  std::string failing = "cannot listen on " + listen + ": ";
  try {
    vantage::lab::Origin origin(hp->host, hp->port);
    origin.set_idle_close(std::chrono::milliseconds(idle_close_ms));
    origin.set_max_requests(max_requests);
    vantage::log::info("listening", "address", fmt::format("{}:{}", hp->host, origin.port()), "idle_close_ms",
                       idle_close_ms, "max_requests", max_requests);
    std::unique_ptr<vantage::lab::TlsGarbage> tls_garbage;
    if (!tls_garbage_listen.empty()) {
      auto where = vantage::parse_host_port(tls_garbage_listen, 0, &error, /*listen=*/true);
      if (!where) {
        std::cerr << "vantage-lab: --tls-garbage-listen \"" << tls_garbage_listen << "\": " << error << "\n";
        return 2;
      }
      failing = "cannot listen on " + tls_garbage_listen + ": ";
      tls_garbage = std::make_unique<vantage::lab::TlsGarbage>(where->host, where->port);
      vantage::log::info("tls garbage listening", "address", fmt::format("{}:{}", where->host, tls_garbage->port()));
      if (!tls_garbage_cert.empty() && !(std::ofstream(tls_garbage_cert) << tls_garbage->certificate_pem())) {
        std::cerr << "vantage-lab: --tls-garbage-cert " << tls_garbage_cert << ": cannot write\n";
        return 1;
      }
    }
    std::unique_ptr<vantage::lab::Edge> edge_server;
    if (!edge_colos.empty()) {
      edge.colos = edge_colos;
      edge.format = *vantage::lab::parse_edge_error_format(edge_format);
      edge.connect_timeout = std::chrono::milliseconds(edge_connect_timeout_ms);
      edge.read_timeout = std::chrono::milliseconds(edge_read_timeout_ms);
      edge.edge_idle_reuse = std::chrono::milliseconds(edge_idle_reuse_ms);
      edge.max_header_bytes = edge_header_limit_kb * 1024;
      if (edge_origin.empty()) {
        edge.origin_host = hp->host == "0.0.0.0" ? "127.0.0.1" : hp->host == "::" ? "::1" : hp->host;
        edge.origin_port = origin.port();
      } else {
        auto target = vantage::parse_host_port(edge_origin, 80, &error);
        if (!target) {
          std::cerr << "vantage-lab: --edge-origin \"" << edge_origin << "\": " << error << "\n";
          return 2;
        }
        edge.origin_host = target->host;
        edge.origin_port = target->port;
      }
      failing.clear();
      edge_server = std::make_unique<vantage::lab::Edge>(edge);
      for (const auto& colo : edge.colos) {
        vantage::log::info("edge listening", "colo", colo, "address",
                           fmt::format("{}:{}", edge.listen_address, edge_server->port(colo)), "origin",
                           fmt::format("{}:{}", edge.origin_host, edge.origin_port), "format", edge_format);
      }
    }
    int sig = 0;
    sigwait(&signals, &sig);
    vantage::log::info("stopping", "signal", sig);
  } catch (const std::exception& e) {
    std::cerr << "vantage-lab: " << failing << e.what() << "\n";
    return 1;
  }
  return 0;
}
