#pragma once
// Incident events as they are stored, to every WatchIncidents subscriber.
//
// The incident tracker publishes each batch of newly stored events right
// after save_incidents commits (on its own thread). Each event is serialized
// once, as the WatchIncidentsResponse every watcher is sent: 1,000 watchers
// cost one serialization and 1,000 references to the same bytes, not 1,000
// copies. Each subscriber has a bounded queue of its own: publishing appends
// the shared, immutable event to each queue and never waits for a
// subscriber. Subscribers are woken on the feed's own thread (named
// vantage-feed), never the publisher's: a wake costs what its subscriber
// makes it cost (WatchIncidents hands the watcher to its completion queue's
// thread, which starts the write), and 1,000 of them must not hold up the
// tracker. A subscriber
// whose queue is full is dropped on the spot (its queue freed): it ends with
// RESOURCE_EXHAUSTED and resumes from the last event it received, so a slow
// reader costs the coordinator at most its queue bound and never slows
// correlation or ingest.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "vantage/v1/incident_service.pb.h"

namespace vantage::coordinator {

// One incident event as a watcher is sent it. Immutable once made, so that
// any number of writes on any threads may send it at once: copying `message`
// (as gRPC does for each write) only takes a reference to its slices.
struct FeedEvent {
  int64_t event_id = 0;
  std::string check;         // the incident's check name, for a watcher's filter
  grpc::ByteBuffer message;  // the serialized WatchIncidentsResponse

  static std::shared_ptr<const FeedEvent> of(const v1::WatchIncidentsResponse& response);
};

struct IncidentFeedOptions {
  // Events a subscriber may have waiting. 1,000 subscribers at the bound hold
  // 1,000 x this many pointers; the events themselves are shared.
  size_t queue_limit = 1024;
};

class IncidentFeed {
 public:
  using Event = std::shared_ptr<const FeedEvent>;

  class Subscription {
   public:
    // The oldest waiting event, or nullptr when none waits (or dropped).
    Event pop();
    // Dropped because its queue was full; how many events were waiting then.
    bool dropped() const;
    size_t queued_when_dropped() const;

   private:
    friend class IncidentFeed;
    explicit Subscription(std::function<void()> wake) : wake_(std::move(wake)) {}
    // False (and dropped) when the queue is full.
    bool push(const Event& event, size_t limit);

    const std::function<void()> wake_;  // non-blocking: the subscriber pulls
    std::atomic<bool> wake_pending_{false};  // one wake queued at a time
    mutable std::mutex mu_;
    std::deque<Event> queue_;
    bool dropped_ = false;
    size_t queued_when_dropped_ = 0;
  };

  // With `registry`, exports vantage_incident_watchers (subscribers now) and
  // vantage_incident_watchers_dropped_total (dropped for falling behind).
  explicit IncidentFeed(IncidentFeedOptions options = {}, prometheus::Registry* registry = nullptr);
  ~IncidentFeed();

  // `wake` is called (on the feed's thread) after events were queued or the
  // subscription was dropped; it must not block.
  std::shared_ptr<Subscription> subscribe(std::function<void()> wake);
  void unsubscribe(const std::shared_ptr<Subscription>& subscription);

  // Newly stored events, in event_id order, and the incidents they belong
  // to (as saved with them, by id; sent without their timeline). Never
  // blocks on a subscriber.
  void publish(const std::vector<v1::IncidentEvent>& events, const std::map<std::string, v1::Incident>& incidents);

  size_t subscribers() const;
  uint64_t dropped_total() const;

 private:
  const IncidentFeedOptions options_;
  mutable std::mutex mu_;  // the set of subscriptions; never held while waking
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  uint64_t dropped_total_ = 0;
  prometheus::Gauge* watchers_metric_ = nullptr;
  prometheus::Counter* dropped_metric_ = nullptr;

  void wake_loop();
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::vector<std::shared_ptr<Subscription>> to_wake_;
  bool stopping_ = false;
  std::thread waker_;  // last: started once the rest is built
};

}  // namespace vantage::coordinator
