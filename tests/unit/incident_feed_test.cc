// The incident feed behind WatchIncidents: every subscriber gets every event
// in order, serialized once and shared; a full queue drops its subscriber
// (memory freed, others untouched); publishing never waits for a subscriber,
// and wakes come from the feed's own thread, which a wake may re-enter.
#include "coordinator/incident_feed.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace vantage::coordinator {
namespace {

// Wakes arrive on the feed's thread: poll for them.
template <typename Fn>
bool eventually(Fn done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// What a watcher receives: the event's bytes, parsed.
v1::WatchIncidentsResponse parsed(const IncidentFeed::Event& event) {
  grpc::Slice bytes;
  EXPECT_TRUE(event->message.DumpToSingleSlice(&bytes).ok());
  v1::WatchIncidentsResponse response;
  EXPECT_TRUE(response.ParseFromArray(bytes.begin(), static_cast<int>(bytes.size())));
  return response;
}

// Where a buffer's bytes are (compared, never read): two buffers sharing a
// slice give the same address.
uintptr_t bytes_of(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  EXPECT_TRUE(buffer.TrySingleSlice(&slice).ok());
  return reinterpret_cast<uintptr_t>(slice.begin());
}

std::vector<v1::IncidentEvent> events(int64_t first_id, int count, const std::string& incident = "7-1000") {
  std::vector<v1::IncidentEvent> out;
  for (int i = 0; i < count; ++i) {
    v1::IncidentEvent e;
    e.set_incident_id(incident);
    e.set_event_id(first_id + i);
    e.set_type(v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED);
    out.push_back(e);
  }
  return out;
}

std::map<std::string, v1::Incident> incidents(const std::string& id = "7-1000") {
  v1::Incident incident;
  incident.set_id(id);
  incident.set_check("shop");
  incident.add_timeline()->set_event_id(1);  // never sent on: the feed carries snapshots
  return {{id, incident}};
}

TEST(IncidentFeed, EverySubscriberGetsEveryEventInOrderWithItsIncidentSharedNotCopied) {
  IncidentFeed feed({.queue_limit = 10});
  std::atomic<int> wakes_a = 0, wakes_b = 0;
  auto a = feed.subscribe([&] { ++wakes_a; });
  auto b = feed.subscribe([&] { ++wakes_b; });
  feed.publish(events(1, 3), incidents());
  feed.publish(events(4, 2), incidents());
  EXPECT_TRUE(eventually([&] { return wakes_a >= 1 && wakes_b >= 1; }));
  for (int64_t id = 1; id <= 5; ++id) {
    auto from_a = a->pop();
    auto from_b = b->pop();
    ASSERT_TRUE(from_a && from_b) << id;
    EXPECT_EQ(from_a->event_id, id);
    EXPECT_EQ(from_a.get(), from_b.get()) << "one shared event per publish, not a copy per subscriber";
    EXPECT_EQ(from_a->check, "shop");
    const auto response = parsed(from_a);
    EXPECT_EQ(response.event().event_id(), id);
    EXPECT_EQ(response.event().type(), v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED);
    EXPECT_EQ(response.incident().id(), "7-1000");
    EXPECT_EQ(response.incident().check(), "shop");
    EXPECT_EQ(response.incident().timeline_size(), 0);
  }
  EXPECT_EQ(a->pop(), nullptr);
  EXPECT_FALSE(a->dropped());
}

TEST(IncidentFeed, AFullQueueDropsItsSubscriberAloneAndFreesTheQueue) {
  IncidentFeed feed({.queue_limit = 4});
  auto slow = feed.subscribe(nullptr);
  std::mutex mu;
  std::shared_ptr<IncidentFeed::Subscription> healthy;
  std::vector<int64_t> healthy_got;
  healthy = feed.subscribe([&] {
    std::lock_guard lock(mu);
    while (auto e = healthy->pop()) healthy_got.push_back(e->event_id);
  });
  auto healthy_has = [&](size_t n) {
    return eventually([&] {
      std::lock_guard lock(mu);
      return healthy_got.size() >= n;
    });
  };
  feed.publish(events(1, 4), incidents());
  ASSERT_TRUE(healthy_has(4));  // the healthy one reads as it is woken
  EXPECT_FALSE(slow->dropped());
  feed.publish(events(5, 1), incidents());  // the fifth does not fit
  EXPECT_TRUE(slow->dropped());
  EXPECT_EQ(slow->queued_when_dropped(), 4u);
  EXPECT_EQ(slow->pop(), nullptr) << "a dropped subscriber's queue is freed at once";
  EXPECT_EQ(feed.subscribers(), 1u);
  EXPECT_EQ(feed.dropped_total(), 1u);
  ASSERT_TRUE(healthy_has(5));
  feed.publish(events(6, 2), incidents());
  EXPECT_EQ(slow->pop(), nullptr) << "nothing is queued for a dropped subscriber";
  ASSERT_TRUE(healthy_has(7));
  std::lock_guard lock(mu);
  EXPECT_EQ(healthy_got, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_FALSE(healthy->dropped());
}

TEST(IncidentFeed, PublishingNeverWaitsForASubscriberThatNeverReads) {
  IncidentFeed feed({.queue_limit = 100});
  auto never_reads = feed.subscribe(nullptr);
  // Far more events than the bound: returns (it would hang if it waited for
  // room), holding at most the bound meanwhile.
  for (int64_t id = 1; id <= 100'000; id += 1000) feed.publish(events(id, 1000), incidents());
  EXPECT_TRUE(never_reads->dropped());
  EXPECT_EQ(never_reads->queued_when_dropped(), 100u);
  EXPECT_EQ(feed.subscribers(), 0u);
}

TEST(IncidentFeed, AWakeMayUnsubscribeOrSubscribeWithoutDeadlock) {
  IncidentFeed feed;
  std::shared_ptr<IncidentFeed::Subscription> self;
  std::shared_ptr<IncidentFeed::Subscription> added;
  std::atomic<bool> woken = false;
  self = feed.subscribe([&] {
    feed.unsubscribe(self);  // a cancelled watcher's last write completing inline
    added = feed.subscribe(nullptr);
    feed.publish(events(2, 1), incidents());  // and the feed itself, from its own thread
    woken = true;
  });
  feed.publish(events(1, 1), incidents());
  ASSERT_TRUE(eventually([&] { return woken.load(); }));
  EXPECT_EQ(feed.subscribers(), 1u);  // `added`
  EXPECT_EQ(added->pop()->event_id, 2);
  EXPECT_EQ(self->pop()->event_id, 1);
  EXPECT_EQ(self->pop(), nullptr) << "unsubscribed: nothing more";
}

TEST(IncidentFeed, PublishesWhileAWakeIsQueuedShareItAndLoseNoEvent) {
  IncidentFeed feed({.queue_limit = 1000});
  std::mutex mu;
  std::vector<int64_t> got;
  std::atomic<int> wakes = 0;
  std::shared_ptr<IncidentFeed::Subscription> s;
  s = feed.subscribe([&] {
    ++wakes;
    std::lock_guard lock(mu);
    while (auto e = s->pop()) got.push_back(e->event_id);
  });
  for (int64_t id = 1; id <= 500; ++id) feed.publish(events(id, 1), incidents());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return got.size() == 500;
  }));
  EXPECT_LE(wakes.load(), 500);
  for (int64_t i = 0; i < 500; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], i + 1);
}

TEST(IncidentFeed, ExportsItsWatchersAndDropsFromZero) {
  prometheus::Registry registry;
  IncidentFeed feed({.queue_limit = 1}, &registry);
  auto value = [&](const std::string& name) {
    for (const auto& family : registry.Collect()) {
      if (family.name != name) continue;
      const auto& m = family.metric.at(0);
      return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
    return -1.0;
  };
  EXPECT_EQ(value("vantage_incident_watchers"), 0);
  EXPECT_EQ(value("vantage_incident_watchers_dropped_total"), 0);
  auto slow = feed.subscribe(nullptr);
  auto other = feed.subscribe(nullptr);
  EXPECT_EQ(value("vantage_incident_watchers"), 2);
  feed.unsubscribe(other);
  feed.publish(events(1, 2), incidents());
  EXPECT_EQ(value("vantage_incident_watchers"), 0);
  EXPECT_EQ(value("vantage_incident_watchers_dropped_total"), 1);
}

TEST(IncidentFeed, AnEventWhoseIncidentIsMissingStillGoesOut) {
  IncidentFeed feed;
  auto s = feed.subscribe(nullptr);
  feed.publish(events(1, 1, "9-1"), incidents("7-1000"));
  auto e = s->pop();
  ASSERT_TRUE(e);
  EXPECT_EQ(parsed(e).event().incident_id(), "9-1");
  EXPECT_FALSE(parsed(e).has_incident());
  EXPECT_EQ(e->check, "");
}

TEST(FeedEvent, IsTheResponseSerializedOnceAndEveryCopySharesItsBytes) {
  v1::WatchIncidentsResponse response;
  response.mutable_event()->set_event_id(42);
  response.mutable_event()->set_incident_id("7-1000");
  response.mutable_event()->mutable_diagnosis()->set_cause(std::string(2000, 'c'));  // past any inlined size
  response.mutable_incident()->set_id("7-1000");
  response.mutable_incident()->set_check("shop");
  response.mutable_incident()->add_affected_regions("eu-west");
  const auto event = FeedEvent::of(response);
  EXPECT_EQ(event->event_id, 42);
  EXPECT_EQ(event->check, "shop");
  EXPECT_EQ(event->message.Length(), response.ByteSizeLong());
  EXPECT_EQ(parsed(event).SerializeAsString(), response.SerializeAsString()) << "the same message, byte for byte";
  // What gRPC does for each write: a copy of the buffer, which refers to the
  // same bytes, from many threads at once.
  std::vector<std::thread> writers;
  std::vector<uintptr_t> seen(8);
  for (size_t i = 0; i < seen.size(); ++i) {
    writers.emplace_back([&, i] {
      for (int n = 0; n < 1000; ++n) {
        grpc::ByteBuffer copy(event->message);
        seen[i] = bytes_of(copy);
      }
    });
  }
  for (auto& writer : writers) writer.join();
  for (const auto bytes : seen) EXPECT_EQ(bytes, bytes_of(event->message)) << "each copy refers to the same bytes";
  EXPECT_EQ(parsed(event).event().event_id(), 42) << "the shared bytes are intact after every copy";
}

}  // namespace
}  // namespace vantage::coordinator
