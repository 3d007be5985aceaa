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
    vantage::log::info("listening", "address", fmt::format("{}:{}", hp->host, origin.port()));
    int sig = 0;
    sigwait(&signals, &sig);
    vantage::log::info("stopping", "signal", sig);
  } catch (const std::exception& e) {
    std::cerr << "vantage-lab: cannot listen on " << listen << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
