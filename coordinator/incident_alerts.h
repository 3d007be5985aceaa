#pragma once
// What Alertmanager should hear about incidents, as Prometheus tells it about
// its alerts: every firing alert again and again (each post says "firing
// until endsAt", a few resend intervals ahead, so an alert the coordinator
// stops sending expires by itself), and a resolved alert with its end time for
// a while after it resolved. Pure (time comes in as an argument); the HTTP
// side is AlertmanagerPusher.
//
// An incident becomes the alert the rules in alerts/vantage.rules.yml raise
// for it, with the same name and labels (check, incident, cause, and scope
// where the rule keeps it): when both paths are in use, Alertmanager sees one
// alert. A change of scope or cause changes the labels: the alert under the
// old labels is resolved and one under the new labels fires (an outage that
// widens to global pages again, as critical).

#include <chrono>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

using AlertLabels = std::map<std::string, std::string>;

// The labels of the alert for `incident` (alertname and severity included).
AlertLabels incident_alert_labels(const v1::Incident& incident);

class IncidentAlerts {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  explicit IncidentAlerts(std::chrono::seconds resend_interval) : resend_(resend_interval) {}

  // The latest snapshot of an incident.
  void update(const v1::Incident& incident, TimePoint now);
  // Forgets alerts resolved more than `keep_resolved` ago.
  void expire(TimePoint now);
  // The body of a POST /api/v2/alerts: every alert firing or recently ended.
  nlohmann::json payload(TimePoint now) const;
  size_t size() const { return alerts_.size(); }

  // How long a resolved alert keeps being sent (Prometheus: 15 minutes).
  static constexpr std::chrono::minutes keep_resolved{15};

 private:
  struct Alert {
    AlertLabels labels;
    std::map<std::string, std::string> annotations;
    TimePoint starts;
    std::optional<TimePoint> ends;  // set once resolved or replaced
  };
  std::chrono::seconds resend_;
  // By incident id: its current alert; replaced ones keyed "id#n".
  std::map<std::string, Alert> alerts_;
  size_t replaced_ = 0;
};

// vantage_check_incident_open{check, incident, kind, scope, cause}: 1 for
// each open incident, the series the rules on incidents select. A change of
// scope or cause moves the incident to a new series; resolving removes it.
// Used from one thread at a time.
class OpenIncidentSeries {
 public:
  explicit OpenIncidentSeries(prometheus::Family<prometheus::Gauge>& family) : family_(family) {}
  void update(const v1::Incident& incident);

 private:
  prometheus::Family<prometheus::Gauge>& family_;
  std::map<std::string, std::map<std::string, std::string>> labels_;  // by incident id, while open
};

}  // namespace vantage::coordinator
