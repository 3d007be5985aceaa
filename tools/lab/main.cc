// vantage-lab: the fault lab's origin, for run-local.sh and for trying things by hand.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "common/log.h"
#include "common/url.h"
#include "tools/lab/origin.h"

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
  app.footer(std::string(vantage::lab::Origin::help()));
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
  try {
    vantage::lab::Origin origin(hp->host, hp->port);
    origin.set_idle_close(std::chrono::milliseconds(idle_close_ms));
    origin.set_max_requests(max_requests);
    vantage::log::info("listening", "address", fmt::format("{}:{}", hp->host, origin.port()), "idle_close_ms",
                       idle_close_ms, "max_requests", max_requests);
    int sig = 0;
    sigwait(&signals, &sig);
    vantage::log::info("stopping", "signal", sig);
  } catch (const std::exception& e) {
    std::cerr << "vantage-lab: cannot listen on " << listen << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
