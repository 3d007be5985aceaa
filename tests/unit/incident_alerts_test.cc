// What the coordinator pushes to Alertmanager for incidents
// (coordinator/incident_alerts.h): labels, the life of an alert through
// widening and resolution, and that the labels are those the rules of
// alerts/vantage.rules.yml give the same incident (so both paths make one alert).

#include "coordinator/incident_alerts.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

#include "common/proto_time.h"

namespace vantage::coordinator {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::system_clock::time_point;

const TimePoint kStart = TimePoint(std::chrono::seconds(1'800'000'000));

v1::Incident incident(v1::IncidentKind kind, v1::Scope scope, std::string cause = "origin_empty_reply") {
  v1::Incident out;
  out.set_id("shop-1800000000");
  out.set_check("shop");
  out.set_kind(kind);
  out.set_state(v1::INCIDENT_STATE_OPEN);
  out.set_scope(scope);
  out.mutable_diagnosis()->set_cause_id(cause);
  out.mutable_diagnosis()->set_cause("the origin closed the connection without a reply");
  out.mutable_diagnosis()->set_advice("check the application's crash logs");
  out.add_affected_regions("eu");
  *out.mutable_first_failure_time() = to_timestamp(kStart);
  *out.mutable_confirm_time() = to_timestamp(kStart + 2s);
  return out;
}

nlohmann::json find_alert(const nlohmann::json& payload, const std::string& alertname) {
  for (const auto& alert : payload) {
    if (alert["labels"]["alertname"] == alertname) return alert;
  }
  return nullptr;
}

TEST(IncidentAlerts, ARegionOutageFiresAsAWarningValidForFourResends) {
  IncidentAlerts alerts(60s);
  alerts.update(incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_REGION), kStart + 3s);
  const auto payload = alerts.payload(kStart + 3s);
  ASSERT_EQ(payload.size(), 1u);
  const auto& alert = payload[0];
  EXPECT_EQ(alert["labels"], (nlohmann::json{{"alertname", "VantageSiteDownInRegion"},
                                             {"severity", "warning"},
                                             {"check", "shop"},
                                             {"incident", "shop-1800000000"},
                                             {"scope", "region"},
                                             {"cause", "origin_empty_reply"}}));
  EXPECT_EQ(alert["startsAt"], "2027-01-15T08:00:02Z");
  EXPECT_EQ(alert["endsAt"], "2027-01-15T08:04:03Z");  // now + 4 x 60 s
  EXPECT_EQ(alert["annotations"]["kind"], "outage");
  EXPECT_EQ(alert["annotations"]["scope"], "region");
  EXPECT_EQ(alert["annotations"]["incident"], "shop-1800000000");
  EXPECT_EQ(alert["annotations"]["runbook_url"], "docs/runbook.md#vantagesitedowninregion");
  EXPECT_NE(alert["annotations"]["description"].get<std::string>().find("cause: origin_empty_reply"),
            std::string::npos);
}

TEST(IncidentAlerts, WideningToGlobalResolvesTheWarningAndFiresACriticalAlert) {
  IncidentAlerts alerts(60s);
  alerts.update(incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_REGION), kStart + 3s);
  alerts.update(incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_GLOBAL), kStart + 10s);
  const auto payload = alerts.payload(kStart + 10s);
  ASSERT_EQ(payload.size(), 2u);
  const auto old = find_alert(payload, "VantageSiteDownInRegion");
  const auto now = find_alert(payload, "VantageSiteDownGlobally");
  ASSERT_FALSE(old.is_null());
  ASSERT_FALSE(now.is_null());
  EXPECT_EQ(old["endsAt"], "2027-01-15T08:00:10Z");  // ended at the change
  EXPECT_EQ(now["labels"]["severity"], "critical");
  EXPECT_FALSE(now["labels"].contains("scope"));
  EXPECT_EQ(now["endsAt"], "2027-01-15T08:04:10Z");
  // The same snapshot again changes nothing.
  alerts.update(incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_GLOBAL), kStart + 20s);
  EXPECT_EQ(alerts.payload(kStart + 20s).size(), 2u);
}

TEST(IncidentAlerts, AResolvedIncidentIsSentWithItsEndUntilItExpires) {
  IncidentAlerts alerts(60s);
  auto resolved = incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_GLOBAL);
  alerts.update(resolved, kStart + 3s);
  resolved.set_state(v1::INCIDENT_STATE_RESOLVED);
  *resolved.mutable_resolve_time() = to_timestamp(kStart + 100s);
  alerts.update(resolved, kStart + 101s);
  auto payload = alerts.payload(kStart + 101s);
  ASSERT_EQ(payload.size(), 1u);
  EXPECT_EQ(payload[0]["endsAt"], "2027-01-15T08:01:40Z");
  alerts.expire(kStart + 100s + IncidentAlerts::keep_resolved - 1s);
  EXPECT_EQ(alerts.size(), 1u);
  alerts.expire(kStart + 100s + IncidentAlerts::keep_resolved + 1s);
  EXPECT_EQ(alerts.size(), 0u);
  EXPECT_TRUE(alerts.payload(kStart + 20min).empty());
}

TEST(IncidentAlerts, AnOpenAlertNeverExpires) {
  IncidentAlerts alerts(60s);
  alerts.update(incident(v1::INCIDENT_KIND_INTERMITTENT, v1::SCOPE_COLO), kStart);
  alerts.expire(kStart + 24h);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts.payload(kStart + 24h)[0]["labels"]["alertname"], "VantageSiteIntermittentErrors");
}

// The label names a rule keeps for the incident's series: "max by (a, b, c)
// (vantage_check_incident_open{...})" in its expression.
std::set<std::string> rule_labels(const YAML::Node& rule) {
  static const std::regex by(R"(max by \(([a-z_, ]+)\) \(vantage_check_incident_open)");
  std::smatch match;
  const std::string expr = rule["expr"].as<std::string>();
  if (!std::regex_search(expr, match, by)) return {};
  std::set<std::string> out;
  std::string list = match[1];
  std::regex name("[a-z_]+");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), name); it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

TEST(IncidentAlerts, LabelsAreThoseTheRulesGiveTheSameIncident) {
  const auto rules = YAML::LoadFile(std::string(VANTAGE_SOURCE_DIR) + "/alerts/vantage.rules.yml");
  std::map<std::string, YAML::Node> by_name;
  for (const auto& group : rules["groups"]) {
    for (const auto& rule : group["rules"]) by_name[rule["alert"].as<std::string>()] = YAML::Node(rule);
  }
  const std::vector<v1::Incident> incidents = {
      incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_GLOBAL), incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_REGION),
      incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_COLO), incident(v1::INCIDENT_KIND_OUTAGE, v1::SCOPE_PROBE),
      incident(v1::INCIDENT_KIND_INTERMITTENT, v1::SCOPE_REGION)};
  for (const auto& one : incidents) {
    SCOPED_TRACE(one.ShortDebugString());
    auto labels = incident_alert_labels(one);
    const std::string name = labels.at("alertname");
    ASSERT_TRUE(by_name.count(name)) << name << " is not a rule in alerts/vantage.rules.yml";
    const auto& rule = by_name[name];
    EXPECT_EQ(labels.at("severity"), rule["labels"]["severity"].as<std::string>());
    std::set<std::string> pushed;
    for (const auto& [key, value] : labels) {
      if (key != "alertname" && key != "severity") pushed.insert(key);
    }
    EXPECT_EQ(pushed, rule_labels(rule));
  }
}

}  // namespace
}  // namespace vantage::coordinator
