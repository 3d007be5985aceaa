#pragma once
// Pushes incidents to Alertmanager (POST /api/v2/alerts, the API Prometheus
// itself uses), so an incident pages the moment the coordinator opens,
// widens or resolves it, with Alertmanager's routing, grouping, silences and
// receivers. What to send is IncidentAlerts; this is the delivery.
//
// Alertmanager being slow or down must not slow anything else: changes are
// handed over under a short lock (never blocking on the network), one thread
// of its own posts, with a timeout, to each URL. A failed post is retried in
// a few seconds; every post carries every active alert, so a later success
// repairs whatever an earlier failure missed. Plain HTTP only.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/timer.h"
#include "coordinator/incident_alerts.h"
#include "coordinator/metrics.h"

namespace vantage::coordinator {

struct AlertmanagerOptions {
  // Base URLs, e.g. "http://127.0.0.1:9093" (a path prefix is kept).
  std::vector<std::string> urls;
  std::chrono::seconds resend_interval{60};
  std::chrono::seconds retry_interval{5};
  std::chrono::milliseconds timeout{5000};
};

class AlertmanagerPusher {
 public:
  // Throws OptionError (option "alertmanager_urls", as CoordinatorOptions
  // names it) naming a URL that is not http://host[:port][/path].
  // Its resends and retries wait on `timers`' clock, which outlives it.
  AlertmanagerPusher(AlertmanagerOptions options, CoordinatorMetrics& metrics, Timers& timers);
  ~AlertmanagerPusher();

  void start();
  void stop();

  // Incidents that changed (snapshots). Never blocks on the network.
  void update(const std::vector<v1::Incident>& incidents);

 private:
  struct Target {
    std::string url;  // as given, for logs
    std::string host;
    std::string port;
    std::string path;  // ".../api/v2/alerts"
  };
  void loop();
  // One POST; false (and `error` set) if it failed.
  bool post(const Target& target, const std::string& body, std::string* error) const;

  AlertmanagerOptions options_;
  CoordinatorMetrics& metrics_;
  Timers& timers_;
  const Clock& clock_;  // timers_' clock
  std::vector<Target> targets_;

  std::mutex mu_;
  ClockCondition cv_{timers_, mu_};  // updates, stop, and the next post
  std::vector<v1::Incident> pending_;
  bool stopping_ = false;
  IncidentAlerts alerts_;  // the loop thread's
  std::thread thread_;
};

}  // namespace vantage::coordinator
