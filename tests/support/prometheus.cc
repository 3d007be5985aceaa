#include "tests/support/prometheus.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>

#include "tests/support/webhook_receiver.h"  // free_port

namespace vantage::testing {

using namespace std::chrono_literals;

namespace {
void write_file(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }
}  // namespace

Alertmanager::Alertmanager(const std::filesystem::path& dir, const std::string& webhook_url) : port_(free_port()) {
  write_file(dir / "alertmanager.yml", fmt::format(R"(route:
  receiver: hook
  group_by: [check, incident]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {}
        send_resolved: true
)",
                                                   webhook_url));
  process_ = std::make_unique<Process>(std::vector<std::string>{
      "prometheus-alertmanager", "--config.file=" + (dir / "alertmanager.yml").string(),
      "--storage.path=" + (dir / "data").string(), fmt::format("--web.listen-address=127.0.0.1:{}", port_),
      "--cluster.listen-address=", "--log.level=warn"});
  EXPECT_TRUE(eventually([&] { return !http_get(port_, "/-/ready").empty(); }, 20s))
      << "Alertmanager did not become ready (is prometheus-alertmanager installed? scripts/deps.sh installs it)\n"
      << process_->output();
}

std::string scrape_configs_yaml(const std::vector<ScrapeJob>& jobs) {
  std::string out = "scrape_configs:\n";
  for (const auto& job : jobs) {
    out += fmt::format("  - job_name: {}\n    static_configs:\n", job.name);
    for (size_t i = 0; i < job.ports.size(); ++i) {
      out += fmt::format("      - targets: [\"127.0.0.1:{}\"]\n", job.ports[i]);
      if (i < job.target_labels.size() && !job.target_labels[i].empty()) {
        out += "        labels:\n";
        for (const auto& [name, value] : job.target_labels[i]) out += fmt::format("          {}: \"{}\"\n", name, value);
      }
    }
  }
  return out;
}

Prometheus::Prometheus(const std::filesystem::path& dir, const PrometheusOptions& options) : port_(free_port()) {
  std::string config = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n";
  if (options.rules) config += fmt::format("rule_files:\n  - {}/alerts/vantage.rules.yml\n", VANTAGE_SOURCE_DIR);
  if (options.alertmanager_port != 0) {
    config += fmt::format("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n",
                          options.alertmanager_port);
  }
  config += scrape_configs_yaml(options.jobs);
  write_file(dir / "prometheus.yml", config);
  process_ = std::make_unique<Process>(std::vector<std::string>{
      "prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
      "--storage.tsdb.path=" + (dir / "tsdb").string(), fmt::format("--web.listen-address=127.0.0.1:{}", port_),
      "--log.level=warn"});
  // Ready once every target has been scraped successfully.
  size_t targets = 0;
  for (const auto& job : options.jobs) targets += job.ports.size();
  EXPECT_TRUE(eventually(
      [&] {
        auto up = query("up == 1");
        return up.value("status", "") == "success" && up["data"]["result"].size() == targets;
      },
      30s))
      << "Prometheus did not scrape all " << targets << " targets (is prometheus installed? scripts/deps.sh "
      << "installs it)\n"
      << process_->output();
}

nlohmann::json Prometheus::query(const std::string& promql) const {
  const auto body = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
  auto response = nlohmann::json::parse(body, nullptr, false);
  if (response.is_discarded() || !response.is_object()) {
    return {{"status", "error"}, {"error", "no JSON from Prometheus: " + body.substr(0, 200)}};
  }
  return response;
}

std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace vantage::testing
