#include "coordinator/incident_alerts.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include "common/incident_names.h"
#include "common/proto_time.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

std::string rfc3339(std::chrono::system_clock::time_point t) {
  return google::protobuf::util::TimeUtil::ToString(to_timestamp(t));
}

std::string cause_of(const v1::Incident& incident) {
  return incident.diagnosis().cause_id().empty() ? "unknown" : incident.diagnosis().cause_id();
}

std::map<std::string, std::string> annotations_of(const v1::Incident& incident, const AlertLabels& labels) {
  const std::string name = labels.at("alertname");
  const std::string scope = scope_name(incident.scope());
  std::map<std::string, std::string> out;
  std::string summary;
  if (name == "VantageSiteDownGlobally") {
    summary = "A site fails from several regions or globally.";
  } else if (name == "VantageSiteDownInRegion") {
    summary = "A site fails from one region or one Cloudflare data centre.";
  } else if (name == "VantageSiteFailingForOneProbe") {
    summary = "A site fails for one probe only.";
  } else {
    summary = "A site fails now and then (intermittent errors such as 520s).";
  }
  out["summary"] = summary;
  std::string where;
  if (!incident.affected_regions().empty()) {
    where = fmt::format(" Regions: {}.", fmt::join(incident.affected_regions(), ", "));
  }
  if (!incident.affected_colos().empty()) {
    where += fmt::format(" Colos: {}.", fmt::join(incident.affected_colos(), ", "));
  }
  out["description"] = fmt::format("Check {} has an {} incident {} of {} scope (cause: {}): {}.{}{}", incident.check(),
                                    incident_kind_name(incident.kind()), incident.id(), scope, cause_of(incident),
                                    incident.diagnosis().cause().empty() ? "no diagnosis yet"
                                                                         : incident.diagnosis().cause(),
                                    where,
                                    incident.diagnosis().advice().empty()
                                        ? std::string()
                                        : fmt::format(" Advice: {}.", incident.diagnosis().advice()));
  out["runbook_url"] = "docs/runbook.md#" + ascii_lower(name);
  out["kind"] = incident_kind_name(incident.kind());
  out["scope"] = scope;
  out["incident"] = incident.id();
  return out;
}

}  // namespace

AlertLabels incident_alert_labels(const v1::Incident& incident) {
  AlertLabels labels{{"check", incident.check()}, {"incident", incident.id()}, {"cause", cause_of(incident)}};
  if (incident.kind() == v1::INCIDENT_KIND_INTERMITTENT) {
    labels["alertname"] = "VantageSiteIntermittentErrors";
    labels["severity"] = "warning";
    labels["scope"] = scope_name(incident.scope());
  } else if (incident.scope() == v1::SCOPE_GLOBAL) {
    labels["alertname"] = "VantageSiteDownGlobally";
    labels["severity"] = "critical";
  } else if (incident.scope() == v1::SCOPE_PROBE) {
    labels["alertname"] = "VantageSiteFailingForOneProbe";
    labels["severity"] = "info";
  } else {
    labels["alertname"] = "VantageSiteDownInRegion";
    labels["severity"] = "warning";
    labels["scope"] = scope_name(incident.scope());
  }
  return labels;
}

void IncidentAlerts::update(const v1::Incident& incident, TimePoint now) {
  AlertLabels labels = incident_alert_labels(incident);
  auto it = alerts_.find(incident.id());
  if (it != alerts_.end() && it->second.labels != labels && !it->second.ends) {
    // Resolved under its old labels; kept (and sent) until it expires.
    it->second.ends = now;
    alerts_.emplace(fmt::format("{}#{}", incident.id(), ++replaced_), std::move(it->second));
    alerts_.erase(it);
    it = alerts_.end();
  }
  Alert& alert = alerts_[incident.id()];
  alert.labels = std::move(labels);
  alert.annotations = annotations_of(incident, alert.labels);
  alert.starts = incident.has_confirm_time() ? from_timestamp(incident.confirm_time())
                                             : from_timestamp(incident.first_failure_time());
  if (incident.state() == v1::INCIDENT_STATE_RESOLVED) {
    alert.ends = incident.has_resolve_time() ? from_timestamp(incident.resolve_time()) : now;
  } else {
    alert.ends.reset();  // open (again)
  }
}

void IncidentAlerts::expire(TimePoint now) {
  std::erase_if(alerts_, [&](const auto& entry) { return entry.second.ends && *entry.second.ends + keep_resolved < now; });
}

nlohmann::json IncidentAlerts::payload(TimePoint now) const {
  auto out = nlohmann::json::array();
  for (const auto& [key, alert] : alerts_) {
    // A firing alert is valid for four resend intervals, as Prometheus does:
    // missing one or two posts does not resolve it.
    const TimePoint ends = alert.ends ? *alert.ends : now + 4 * resend_;
    out.push_back({{"labels", alert.labels},
                   {"annotations", alert.annotations},
                   {"startsAt", rfc3339(alert.starts)},
                   {"endsAt", rfc3339(std::max(ends, alert.starts))}});
  }
  return out;
}

void OpenIncidentSeries::update(const v1::Incident& incident) {
  auto it = labels_.find(incident.id());
  std::map<std::string, std::string> labels{{"check", incident.check()},
                                            {"incident", incident.id()},
                                            {"kind", incident_kind_name(incident.kind())},
                                            {"scope", scope_name(incident.scope())},
                                            {"cause", cause_of(incident)}};
  const bool open = incident.state() == v1::INCIDENT_STATE_OPEN;
  if (it != labels_.end() && (!open || it->second != labels)) {
    family_.Remove(&family_.Add(it->second));
    labels_.erase(it);
  }
  if (open) {
    family_.Add(labels).Set(1);
    labels_[incident.id()] = std::move(labels);
  }
}

}  // namespace vantage::coordinator
