// Paging end to end: a 520 switched on at the lab reaches a webhook receiver
// through a real Alertmanager (Debian's prometheus-alertmanager) on both
// paths: pushed by the coordinator the moment the incident opens, and raised
// by a real Prometheus from the rules in alerts/vantage.rules.yml. Each path
// has its own Alertmanager: with one, Alertmanager would (rightly) merge the
// two into one alert, since they carry the same labels, and the paths could
// not be timed apart.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/e2e/monitored_stack.h"
#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/prometheus.h"
#include "tests/support/webhook_receiver.h"

namespace vantage::testing {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// The alerts of a webhook notification with this status and alert name.
std::vector<nlohmann::json> alerts_in(const WebhookReceiver::Request& request, const std::string& status,
                                      const std::string& alertname) {
  std::vector<nlohmann::json> out;
  auto body = nlohmann::json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.contains("alerts")) return out;
  for (const auto& alert : body["alerts"]) {
    if (alert.value("status", "") == status && alert["labels"].value("alertname", "") == alertname) {
      out.push_back(alert);
    }
  }
  return out;
}

double seconds_between(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

TEST(Alerting, A520InOneColoPagesOnceThroughAlertmanagerAndResolves) {
  const auto dir = temp_dir("vantage-alerting");
  WebhookReceiver pushed_hooks;
  WebhookReceiver rule_hooks;
  std::filesystem::create_directories(dir / "am-pushed");
  std::filesystem::create_directories(dir / "am-rules");
  std::filesystem::create_directories(dir / "prometheus");
  Alertmanager pushed_alertmanager(dir / "am-pushed", fmt::format("http://127.0.0.1:{}/", pushed_hooks.port()));
  Alertmanager rule_alertmanager(dir / "am-rules", fmt::format("http://127.0.0.1:{}/", rule_hooks.port()));

  StackOptions options = edge_stack("{resolve_consecutive: 2}");
  options.coordinator_args = {"--alertmanager-url",
                              fmt::format("http://127.0.0.1:{}", pushed_alertmanager.port())};
  Stack stack(options);
  ASSERT_NO_FATAL_FAILURE(start_with_results(stack));
  PrometheusOptions scrape;
  scrape.jobs.push_back(coordinator_scrape_job(stack));
  scrape.alertmanager_port = rule_alertmanager.port();
  Prometheus prometheus(dir / "prometheus", scrape);

  const auto fault_on = SteadyClock::now();
  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=empty-reply&colo=FRA"));
  const std::string alertname = "VantageSiteDownInRegion";
  auto firing = [&](const WebhookReceiver::Request& r) { return !alerts_in(r, "firing", alertname).empty(); };

  // The pushed path: one notification naming the check, scope, kind, cause and incident.
  auto pushed = pushed_hooks.wait_for(firing, 60s);
  ASSERT_TRUE(pushed) << "no notification through the pushed path\n" << stack.coordinator().output();
  const auto alert = alerts_in(*pushed, "firing", alertname).front();
  EXPECT_EQ(alert["labels"]["check"], "shop");
  EXPECT_EQ(alert["labels"]["severity"], "warning");
  const std::string scope = alert["labels"].value("scope", "");
  EXPECT_TRUE(scope == "colo" || scope == "region") << alert.dump();
  EXPECT_EQ(alert["annotations"]["scope"], scope);
  EXPECT_EQ(alert["annotations"]["kind"], "outage");
  const std::string cause = alert["labels"].value("cause", "");
  EXPECT_FALSE(cause.empty());
  EXPECT_NE(cause, "unknown") << alert.dump();
  const std::string incident = alert["labels"].value("incident", "");
  ASSERT_FALSE(incident.empty());
  EXPECT_EQ(alert["annotations"]["incident"], incident);
  EXPECT_NE(alert["annotations"]["description"].get<std::string>().find(incident), std::string::npos);
  EXPECT_EQ(stack.query_int(fmt::format("SELECT count(*) FROM incidents WHERE id = '{}'", incident)), 1)
      << "the alert names the stored incident";

  // The rule path: the same alert (same name and labels), later.
  auto ruled = rule_hooks.wait_for(firing, 150s);
  ASSERT_TRUE(ruled) << "no notification through the rules";
  const auto rule_alert = alerts_in(*ruled, "firing", alertname).front();
  EXPECT_EQ(rule_alert["labels"]["incident"], incident);
  EXPECT_EQ(rule_alert["labels"]["cause"], cause);
  EXPECT_EQ(rule_alert["labels"].value("scope", ""), scope);

  std::printf("Alerting: fault on to the webhook: pushed %.1f s, through the rules %.1f s "
              "(scrape and evaluation every 1 s, the rule's for: 1m, Alertmanager group_wait 0s)\n",
              seconds_between(fault_on, pushed->arrived), seconds_between(fault_on, ruled->arrived));

  // Recovery: the pushed path reports the same alert resolved.
  const auto fault_off = SteadyClock::now();
  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=none"));
  auto resolved = pushed_hooks.wait_for(
      [&](const WebhookReceiver::Request& r) {
        for (const auto& a : alerts_in(r, "resolved", alertname)) {
          if (a["labels"].value("incident", "") == incident) return true;
        }
        return false;
      },
      60s);
  ASSERT_TRUE(resolved) << "no resolved notification\n" << stack.coordinator().output();
  std::printf("Alerting: fault off to the resolved notification (pushed): %.1f s\n",
              seconds_between(fault_off, resolved->arrived));

  // One page: every firing alert the pushed path delivered is this incident's.
  size_t firing_notifications = 0;
  for (const auto& request : pushed_hooks.requests()) {
    for (const auto& a : alerts_in(request, "firing", alertname)) {
      EXPECT_EQ(a["labels"].value("incident", ""), incident) << a.dump();
      ++firing_notifications;
    }
  }
  EXPECT_EQ(firing_notifications, 1u) << "the incident paged more than once";
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// Alertmanager down: the coordinator keeps storing results and opening
// incidents, and says (in its metrics) that posts fail.
TEST(Alerting, AnAlertmanagerThatIsDownSlowsNothing) {
  StackOptions options = edge_stack("{resolve_consecutive: 2}");
  const int dead_port = free_port();  // nothing listens there
  options.coordinator_args = {"--alertmanager-url", fmt::format("http://127.0.0.1:{}", dead_port)};
  Stack stack(options);
  ASSERT_NO_FATAL_FAILURE(start_with_results(stack));
  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=empty-reply"));
  ASSERT_TRUE(eventually([&] { return stack.query_int("SELECT count(*) FROM incidents") > 0; }, 30s))
      << stack.coordinator().output();
  auto metric = [&](const std::string& series) {
    return metric_value(http_get(stack.metrics_port(), "/metrics"), series).value_or(-1);
  };
  ASSERT_TRUE(eventually([&] { return metric("vantage_alertmanager_posts_total{result=\"error\"}") >= 1; }, 20s));
  // Results keep arriving from every probe while the posts fail.
  const auto before = stack.stored(0) + stack.stored(1) + stack.stored(2);
  EXPECT_TRUE(eventually([&] { return stack.stored(0) + stack.stored(1) + stack.stored(2) >= before + 6; }, 20s));
  EXPECT_EQ(metric("vantage_alertmanager_posts_total{result=\"ok\"}"), 0);
  EXPECT_NE(stack.coordinator().output().find("cannot push incidents to Alertmanager"), std::string::npos);
}

}  // namespace
}  // namespace vantage::testing
