// The Grafana dashboards against live data: a real Prometheus scrapes the
// coordinator and every probe of a running stack with a 520 switched on at
// the lab (one colo), then every query of every panel of every dashboard in
// dashboards/, with its variables substituted as Grafana would, runs through
// Prometheus' HTTP API and must return data. A metric renamed in the code,
// a misspelt label or a broken expression fails here, naming the panel.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "tests/e2e/monitored_stack.h"
#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/prometheus.h"
#include "tests/support/webhook_receiver.h"  // free_port

namespace vantage::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

struct PanelQuery {
  std::string where;  // "vantage-overview.json: panel \"Uptime\" query A"
  std::string expr;   // with the variables substituted
};

// Grafana's own variables, with values for a dashboard looking at the last
// few minutes (the scrape interval is 1 s).
const std::vector<std::pair<std::string, std::string>> kBuiltins{
    {"__rate_interval", "1m"}, {"__interval", "15s"}, {"__range", "5m"}};

// Replaces $name and ${name} of every variable (longest names first, so
// $check never eats the start of $checks).
std::string substitute(std::string expr, std::vector<std::pair<std::string, std::string>> values) {
  std::sort(values.begin(), values.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [name, value] : values) {
    for (const auto& token : {"${" + name + "}", "$" + name}) {
      for (size_t at = expr.find(token); at != std::string::npos; at = expr.find(token, at + value.size())) {
        expr.replace(at, token.size(), value);
      }
    }
  }
  return expr;
}

// The value Grafana would pick for each variable: "All" (its allValue) when
// it has one, else the first value Prometheus knows for label_values(SELECTOR, LABEL).
std::vector<std::pair<std::string, std::string>> variable_values(const json& dashboard, const Prometheus& prometheus,
                                                                 const std::string& file) {
  auto values = kBuiltins;
  static const std::regex label_values(R"(^label_values\((.*),\s*(\w+)\)$)");
  for (const auto& variable : dashboard["templating"]["list"]) {
    const std::string name = variable["name"];
    if (variable["type"] != "query") continue;  // the datasource variable is not in queries
    if (variable.value("includeAll", false)) {
      values.emplace_back(name, variable.value("allValue", ".*"));
      continue;
    }
    std::smatch m;
    const std::string query = variable["query"];
    if (!std::regex_match(query, m, label_values)) {
      ADD_FAILURE() << file << ": variable " << name << ": not label_values(SELECTOR, LABEL): " << query;
      continue;
    }
    const auto response = prometheus.query(fmt::format("group by ({}) ({})", m[2].str(), substitute(m[1], values)));
    const auto& result = response["data"]["result"];
    if (response["status"] != "success" || result.empty()) {
      ADD_FAILURE() << file << ": variable " << name << " has no values: " << query << " -> " << response.dump();
      continue;
    }
    values.emplace_back(name, result[0]["metric"].value(m[2].str(), ""));
  }
  return values;
}

// Every query of every panel of every dashboard, rows' panels included.
std::vector<PanelQuery> dashboard_queries(const Prometheus& prometheus) {
  std::vector<PanelQuery> out;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(VANTAGE_SOURCE_DIR) / "dashboards")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files.size(), 4u) << "dashboards/*.json";
  for (const auto& path : files) {
    const auto file = path.filename().string();
    const auto dashboard = json::parse(std::ifstream(path), nullptr, false);
    if (dashboard.is_discarded()) {
      ADD_FAILURE() << file << " is not JSON";
      continue;
    }
    const auto values = variable_values(dashboard, prometheus, file);
    std::vector<json> panels;
    for (const auto& panel : dashboard["panels"]) {
      panels.push_back(panel);
      for (const auto& inner : panel.value("panels", json::array())) panels.push_back(inner);
    }
    for (const auto& panel : panels) {
      for (const auto& target : panel.value("targets", json::array())) {
        out.push_back({fmt::format("{}: panel \"{}\" query {}", file, panel.value("title", ""),
                                   target.value("refId", "?")),
                       substitute(target.value("expr", ""), values)});
      }
    }
  }
  return out;
}

bool has_data(const json& response) {
  return response.value("status", "") == "success" && !response["data"]["result"].empty();
}

TEST(Dashboards, EveryPanelQueryReturnsDataFromALiveStackWithA520) {
  const auto dir = temp_dir("vantage-dashboards");
  // Each probe serves /metrics on a port of its own, for Prometheus.
  const std::vector<int> probe_metrics{free_port(), free_port(), free_port()};
  StackOptions options = edge_stack("{resolve_consecutive: 2}");
  options.probe_args = [edge = options.probe_args, probe_metrics](size_t i, const std::string& lab_log) {
    auto args = edge(i, lab_log);
    args.insert(args.end(), {"--metrics-listen", fmt::format("127.0.0.1:{}", probe_metrics[i])});
    return args;
  };
  Stack stack(options);
  ASSERT_NO_FATAL_FAILURE(start_with_results(stack));

  // The scrape job names the alert rules use; each probe's region as a label.
  PrometheusOptions scrape;
  scrape.jobs.push_back(coordinator_scrape_job(stack));
  scrape.jobs.push_back(ScrapeJob{"vantage-probe", probe_metrics, {}});
  for (size_t i = 0; i < stack.probe_count(); ++i) {
    scrape.jobs.back().target_labels.push_back({{"probe", stack.probe(i).id}, {"region", stack.probe(i).region}});
  }
  Prometheus prometheus(dir, scrape);
  ASSERT_FALSE(::testing::Test::HasFailure());

  // The 520: FRA's requests get an empty reply from the origin, which the
  // edge turns into a 520; the correlator opens an incident.
  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=empty-reply&colo=FRA"));
  ASSERT_TRUE(eventually([&] { return has_data(prometheus.query("vantage_check_incident_open")); }, 60s))
      << "no open incident reached Prometheus\n" << stack.coordinator().output();

  const auto queries = dashboard_queries(prometheus);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ASSERT_GT(queries.size(), 40u);
  // Rates need two samples in their window, and Prometheus scrapes every
  // second: poll until every query has data, then name the ones that do not.
  std::vector<const PanelQuery*> empty;
  eventually(
      [&] {
        empty.clear();
        for (const auto& q : queries) {
          if (!has_data(prometheus.query(q.expr))) empty.push_back(&q);
        }
        return empty.empty();
      },
      30s);
  for (const auto* q : empty) {
    ADD_FAILURE() << q->where << " returned no data:\n  " << q->expr << "\n  -> " << prometheus.query(q->expr).dump();
  }
  std::printf("Dashboards: %zu of %zu panel queries of 4 dashboards returned data from a live stack with a 520 at FRA\n",
              queries.size() - empty.size(), queries.size());
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace vantage::testing
