#pragma once
// IncidentService (public API, role read): incidents listed with filters and
// stable pages, one incident with its timeline and the failing results behind
// it, and WatchIncidents, every incident event as it is stored.
//
// WatchIncidents uses gRPC's asynchronous API on a completion queue of its
// own, drained by one thread of this service, so a subscriber waiting for
// events holds no thread: 1,000 subscribers cost 1,000 small Watch objects
// and their queues. A published event wakes that thread once; it starts
// every watcher's write, and the writes' completions come back to the same
// thread without waking another (with gRPC's callback API each completion
// woke one of its threads: 1,000 thread wake-ups per event, which took as
// much CPU as the writes). It is served raw (bytes, not messages): a live
// event is serialized once by the feed and the same bytes written to every
// watcher. What may block (authorization, reading stored events from
// PostgreSQL) runs on a few replay workers of this service, never on the
// queue's thread, the tracker's thread or a publisher.
//
// No event lost or repeated on resume: the call subscribes to the feed
// FIRST, then reads the stored events after `after_event_id` (or since
// `since`) in bounded batches, in event_id order, then sends the live events
// it queued meanwhile, skipping every event_id not above the last one sent.
// An event committed before the subscription is in the stored read; one
// committed after it is in the queue (the tracker publishes after its
// commit); one in both is sent once. Event ids grow in commit order because
// one tracker thread stores them.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include "common/clock.h"
#include "coordinator/api_auth.h"
#include "coordinator/api_pages.h"
#include "coordinator/incident_feed.h"
#include "storage/store.h"
#include "vantage/v1/incident_service.grpc.pb.h"

namespace vantage::coordinator {

struct IncidentServiceOptions {
  PageLimits pages;                // ListIncidents: 100 by default, at most 1000
  int32_t default_evidence = 20;   // GetIncident evidence_limit 0
  int32_t max_evidence = 500;
  size_t replay_batch = 500;       // stored events read at once by a resuming watcher
  size_t replay_workers = 2;       // threads for authorization and stored reads of watchers
};

class IncidentServiceImpl final : public v1::IncidentService::WithRawMethod_WatchIncidents<v1::IncidentService::Service> {
 public:
  IncidentServiceImpl(storage::IncidentStore& incidents, storage::IncidentQueries& queries, ApiAuthorizer& auth,
                      IncidentFeed& feed, const Clock& clock, IncidentServiceOptions options = {});
  // After the server's shutdown (which ends every watch).
  ~IncidentServiceImpl() override;

  // Registers the service and the completion queue WatchIncidents is served
  // on: instead of builder.RegisterService, before BuildAndStart.
  void register_with(grpc::ServerBuilder& builder);
  // After BuildAndStart: takes WatchIncidents calls.
  void start_watching();
  // After the server's Shutdown and before it is destroyed, as gRPC wants
  // its completion queues: stops the workers, shuts the queue down and
  // drains it. The destructor does it if it was not done.
  void stop_watching();

  grpc::Status ListIncidents(grpc::ServerContext* context, const v1::ListIncidentsRequest* request,
                             v1::ListIncidentsResponse* response) override;
  grpc::Status GetIncident(grpc::ServerContext* context, const v1::GetIncidentRequest* request,
                           v1::GetIncidentResponse* response) override;

  // Ends every watch with UNAVAILABLE and where to resume: called before the
  // server's shutdown, which would otherwise wait for them until its deadline.
  void end_watches();

 private:
  class Watch;
  // A completion's tag on the queue: what to do with its outcome.
  struct Tag {
    std::function<void(bool ok)> done;
  };
  // From the feed's thread: `watch` has events waiting. Its writes start on
  // the queue's thread, all those woken together after one alarm.
  void wake(const std::weak_ptr<Watch>& watch);
  void pump_woken();
  // Runs `task` on a replay worker.
  void post(std::function<void()> task);
  void work();

  storage::IncidentStore& incidents_;
  storage::IncidentQueries& queries_;
  ApiAuthorizer& auth_;
  IncidentFeed& feed_;
  const Clock& clock_;
  const IncidentServiceOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  std::mutex watches_mu_;
  std::unordered_map<const Watch*, std::weak_ptr<Watch>> watches_;  // until their call is over

  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread watcher_;  // drains cq_
  std::vector<std::shared_ptr<Watch>> released_;  // by the last completion handled; only watcher_ touches it
  std::mutex wake_mu_;
  std::vector<std::weak_ptr<Watch>> to_pump_;
  bool wake_pending_ = false;  // wake_alarm_ is set
  bool queue_closed_ = false;  // cq_ shut down: no alarm may be set
  grpc::Alarm wake_alarm_;
  Tag woken_{[this](bool) { pump_woken(); }};
};

}  // namespace vantage::coordinator
