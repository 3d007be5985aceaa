#pragma once
// Real Prometheus and Alertmanager servers (Debian's prometheus and
// prometheus-alertmanager) for end-to-end tests, on free loopback ports, with
// scrape, evaluation and grouping intervals shortened to what a test can wait for.

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace vantage::testing {

// A real Alertmanager that sends every notification to `webhook_url`
// (group_wait 0s; the example configuration, examples/alertmanager.yml, has
// the usual values).
class Alertmanager {
 public:
  Alertmanager(const std::filesystem::path& dir, const std::string& webhook_url);
  int port() const { return port_; }

 private:
  int port_;
  std::unique_ptr<Process> process_;
};

// One scrape job of the Prometheus below: its name, the ports of its targets
// on 127.0.0.1, and labels for every target of the job (e.g. region).
struct ScrapeJob {
  std::string name;
  std::vector<int> ports;
  std::vector<std::map<std::string, std::string>> target_labels;  // empty, or one per port
};

struct PrometheusOptions {
  std::vector<ScrapeJob> jobs;
  int alertmanager_port = 0;  // 0: no alerting
  bool rules = true;          // evaluate alerts/vantage.rules.yml
};

// A real Prometheus scraping and evaluating every second. Construction waits
// until every target has been scraped once (a test failure otherwise).
class Prometheus {
 public:
  Prometheus(const std::filesystem::path& dir, const PrometheusOptions& options);
  int port() const { return port_; }
  Process& process() { return *process_; }
  // An instant query through the HTTP API: the whole response ("status",
  // "data"...), or a JSON object with "status": "error" and "error" when
  // the server could not be reached or answered something else.
  nlohmann::json query(const std::string& promql) const;

 private:
  int port_;
  std::unique_ptr<Process> process_;
};

// The scrape config of `jobs`, for Prometheus' configuration file.
std::string scrape_configs_yaml(const std::vector<ScrapeJob>& jobs);
std::string url_encode(const std::string& text);

}  // namespace vantage::testing
