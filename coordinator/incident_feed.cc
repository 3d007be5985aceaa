#include "coordinator/incident_feed.h"

#include <grpcpp/support/slice.h>

#include <pthread.h>

#include <algorithm>

namespace vantage::coordinator {

std::shared_ptr<const FeedEvent> FeedEvent::of(const v1::WatchIncidentsResponse& response) {
  auto event = std::make_shared<FeedEvent>();
  event->event_id = response.event().event_id();
  event->check = response.incident().check();
  // One reference-counted slice: each write's copy of the buffer refers to it.
  grpc::Slice bytes(response.ByteSizeLong());
  response.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(bytes.begin()));
  event->message = grpc::ByteBuffer(&bytes, 1);
  return event;
}

IncidentFeed::Event IncidentFeed::Subscription::pop() {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return nullptr;
  auto event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

bool IncidentFeed::Subscription::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

size_t IncidentFeed::Subscription::queued_when_dropped() const {
  std::lock_guard lock(mu_);
  return queued_when_dropped_;
}

bool IncidentFeed::Subscription::push(const Event& event, size_t limit) {
  std::lock_guard lock(mu_);
  if (dropped_) return false;
  if (queue_.size() >= limit) {
    dropped_ = true;
    queued_when_dropped_ = queue_.size();
    queue_.clear();  // its memory goes now, not when the subscriber gets around to it
    return false;
  }
  queue_.push_back(event);
  return true;
}

IncidentFeed::IncidentFeed(IncidentFeedOptions options, prometheus::Registry* registry) : options_(options) {
  waker_ = std::thread([this] { wake_loop(); });
  if (!registry) return;
  watchers_metric_ = &prometheus::BuildGauge()
                          .Name("vantage_incident_watchers")
                          .Help("WatchIncidents subscribers receiving live incident events.")
                          .Register(*registry)
                          .Add({});
  dropped_metric_ = &prometheus::BuildCounter()
                         .Name("vantage_incident_watchers_dropped_total")
                         .Help("WatchIncidents subscribers ended (RESOURCE_EXHAUSTED) because their queue of "
                               "events was full: they did not read fast enough.")
                         .Register(*registry)
                         .Add({});
}

IncidentFeed::~IncidentFeed() {
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  waker_.join();
}

void IncidentFeed::wake_loop() {
  pthread_setname_np(pthread_self(), "vantage-feed");
  for (;;) {
    std::vector<std::shared_ptr<Subscription>> batch;
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait(lock, [&] { return stopping_ || !to_wake_.empty(); });
      if (stopping_) return;
      batch.swap(to_wake_);
    }
    for (const auto& subscription : batch) {
      // Cleared first: events published during the wake ask for another.
      subscription->wake_pending_ = false;
      if (subscription->wake_) subscription->wake_();
    }
  }
}

std::shared_ptr<IncidentFeed::Subscription> IncidentFeed::subscribe(std::function<void()> wake) {
  std::shared_ptr<Subscription> subscription(new Subscription(std::move(wake)));
  std::lock_guard lock(mu_);
  subscriptions_.push_back(subscription);
  if (watchers_metric_) watchers_metric_->Set(static_cast<double>(subscriptions_.size()));
  return subscription;
}

void IncidentFeed::unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  std::lock_guard lock(mu_);
  std::erase(subscriptions_, subscription);
  if (watchers_metric_) watchers_metric_->Set(static_cast<double>(subscriptions_.size()));
}

void IncidentFeed::publish(const std::vector<v1::IncidentEvent>& events,
                           const std::map<std::string, v1::Incident>& incidents) {
  if (events.empty()) return;
  std::vector<Event> shared;
  shared.reserve(events.size());
  v1::WatchIncidentsResponse response;
  for (const auto& event : events) {
    *response.mutable_event() = event;
    if (auto it = incidents.find(event.incident_id()); it != incidents.end()) {
      *response.mutable_incident() = it->second;
      response.mutable_incident()->clear_timeline();  // GetIncident has it; a watcher has the events
    } else {
      response.clear_incident();
    }
    shared.push_back(FeedEvent::of(response));
  }
  std::vector<std::shared_ptr<Subscription>> to_wake;
  {
    std::lock_guard lock(mu_);
    to_wake.reserve(subscriptions_.size());
    for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
      bool kept = true;
      for (const auto& event : shared) {
        if (!(*it)->push(event, options_.queue_limit)) {
          kept = false;
          break;
        }
      }
      to_wake.push_back(*it);
      if (kept) {
        ++it;
      } else {
        ++dropped_total_;
        if (dropped_metric_) dropped_metric_->Increment();
        it = subscriptions_.erase(it);  // nothing more is queued for it
      }
    }
    if (watchers_metric_) watchers_metric_->Set(static_cast<double>(subscriptions_.size()));
  }
  std::erase_if(to_wake, [](const auto& subscription) { return subscription->wake_pending_.exchange(true); });
  if (to_wake.empty()) return;
  {
    std::lock_guard lock(wake_mu_);
    to_wake_.insert(to_wake_.end(), to_wake.begin(), to_wake.end());
  }
  wake_cv_.notify_one();
}

size_t IncidentFeed::subscribers() const {
  std::lock_guard lock(mu_);
  return subscriptions_.size();
}

uint64_t IncidentFeed::dropped_total() const {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

}  // namespace vantage::coordinator
