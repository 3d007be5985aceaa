#pragma once
// In-memory fakes of the storage interfaces that ingest and the incident
// tracker use (storage/store.h), keeping only what the interfaces promise:
// results stored once per (probe, sequence), events once per (incident,
// type, time, scope). Each fake has a StorageFaults through which a test
// makes the "database" fail or stall. Thread-safe: the code under test calls
// them from its own threads.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/proto_time.h"
#include "storage/store.h"

namespace vantage::testing {

// What the next calls of a fake do instead of (or before) their work: stall
// until released (a slow commit), then throw StorageError (a failed one).
class StorageFaults {
 public:
  static constexpr size_t kForever = std::numeric_limits<size_t>::max();

  // The next `n` calls throw StorageError of `kind` (kForever: until cleared).
  void fail_next(size_t n, storage::StorageError::Kind kind = storage::StorageError::Kind::kUnavailable) {
    std::lock_guard lock(mu_);
    failures_left_ = n;
    failure_kind_ = kind;
  }
  void stop_failing() { fail_next(0); }
  // The next `n` calls wait in the fake until release() (kForever: all).
  void hold_next(size_t n = 1) {
    std::lock_guard lock(mu_);
    holds_left_ = n;
  }
  // Lets every held call go on and holds no more.
  void release() {
    {
      std::lock_guard lock(mu_);
      holds_left_ = 0;
      ++generation_;
    }
    cv_.notify_all();
  }
  size_t held() const {
    std::lock_guard lock(mu_);
    return held_;
  }
  size_t calls() const {  // every call, failed ones included
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }

  // Called by a fake before it does anything.
  void enter(const std::string& what) {
    std::unique_lock lock(mu_);
    ++calls_;
    if (holds_left_ > 0) {
      if (holds_left_ != kForever) --holds_left_;
      ++held_;
      const uint64_t generation = generation_;
      cv_.wait(lock, [&] { return generation_ != generation; });
      --held_;
    }
    if (failures_left_ > 0) {
      if (failures_left_ != kForever) --failures_left_;
      ++failed_;
      throw storage::StorageError(failure_kind_, "fake storage: " + what + " failed");
    }
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t failures_left_ = 0;
  storage::StorageError::Kind failure_kind_ = storage::StorageError::Kind::kUnavailable;
  size_t holds_left_ = 0;
  uint64_t generation_ = 0;
  size_t held_ = 0;
  size_t calls_ = 0;
  size_t failed_ = 0;
};

// Results as the PostgreSQL store keeps them: ResultSink and ResultHistory.
// (The history gives back whole results; the real one rebuilds a success
// from its columns, which hold all the correlator reads of it.)
class FakeResultStore : public storage::ResultSink, public storage::ResultHistory {
 public:
  // The batches of one successful write_results call.
  struct Commit {
    std::vector<std::string> probes;                 // per batch
    std::vector<std::vector<uint64_t>> sequences;    // per batch
  };

  StorageFaults faults;

  // Data of this probe are refused (kInternal), as PostgreSQL refuses a row
  // it cannot store: the whole transaction fails.
  void refuse_probe(const std::string& name) {
    std::lock_guard lock(mu_);
    refused_.insert(name);
  }

  std::vector<storage::WriteOutcome> write_results(const std::vector<const storage::ResultBatch*>& batches) override {
    std::vector<storage::WriteOutcome> outcomes(batches.size());
    // As the real one: nothing to store or acknowledge, no transaction.
    if (std::all_of(batches.begin(), batches.end(), [](const auto* b) { return b->acknowledged_through() == 0; })) {
      return outcomes;
    }
    faults.enter("storing results");
    std::lock_guard lock(mu_);
    for (const auto* b : batches) {
      if (refused_.contains(b->probe.name)) {
        throw storage::StorageError(storage::StorageError::Kind::kInternal,
                                    "fake storage: results of " + b->probe.name + " refused");
      }
    }
    Commit commit;
    std::set<int32_t> acknowledging;  // probes whose sequence this call moves
    for (size_t i = 0; i < batches.size(); ++i) {
      const auto& b = *batches[i];
      commit.probes.push_back(b.probe.name);
      auto& sequences = commit.sequences.emplace_back();
      for (const auto& r : b.results) {
        sequences.push_back(r.sequence());
        if (rows_.try_emplace({b.probe.key, r.sequence()}, storage::StoredResult{b.probe.name, b.probe.region, r})
                .second) {
          ++outcomes[i].inserted;
        } else {
          ++outcomes[i].duplicates;
        }
      }
      if (b.acknowledged_through() > 0) {
        acknowledging.insert(b.probe.key);
        auto& last = last_sequence_[b.probe.key];
        last = std::max(last, b.acknowledged_through());
      }
    }
    for (size_t i = 0; i < batches.size(); ++i) {
      const int32_t probe = batches[i]->probe.key;
      if (acknowledging.contains(probe)) outcomes[i].acked_sequence = last_sequence_[probe];
    }
    commits_.push_back(std::move(commit));
    return outcomes;
  }

  // In start-time order, then probe and sequence, as the real store reads.
  void for_each_result_since(std::chrono::system_clock::time_point since,
                             const std::function<void(storage::StoredResult&&)>& fn) override {
    faults.enter("reading recent results");
    std::vector<std::tuple<std::chrono::system_clock::time_point, int32_t, uint64_t, storage::StoredResult>> recent;
    {
      std::lock_guard lock(mu_);
      for (const auto& [key, stored] : rows_) {
        const auto start = from_timestamp(stored.result.start_time());
        if (start >= since) recent.emplace_back(start, key.first, key.second, stored);
      }
    }
    std::sort(recent.begin(), recent.end(),
              [](const auto& a, const auto& b) {
                return std::tie(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
                       std::tie(std::get<0>(b), std::get<1>(b), std::get<2>(b));
              });
    for (auto& row : recent) fn(std::move(std::get<3>(row)));
  }

  bool contains(int32_t probe_key, uint64_t sequence) const {
    std::lock_guard lock(mu_);
    return rows_.contains({probe_key, sequence});
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return rows_.size();
  }
  std::vector<Commit> commits() const {
    std::lock_guard lock(mu_);
    return commits_;
  }
  uint64_t last_sequence(int32_t probe_key) const {
    std::lock_guard lock(mu_);
    auto it = last_sequence_.find(probe_key);
    return it == last_sequence_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<int32_t, uint64_t>, storage::StoredResult> rows_;  // (probe key, sequence)
  std::map<int32_t, uint64_t> last_sequence_;
  std::vector<Commit> commits_;
  std::set<std::string> refused_;
};

// Incidents and their events as the PostgreSQL store keeps them.
class FakeIncidentStore : public storage::IncidentStore {
 public:
  StorageFaults faults;

  std::vector<v1::IncidentEvent> save_incidents(const std::vector<v1::Incident>& changed,
                                                const std::vector<v1::IncidentEvent>& events) override {
    if (changed.empty() && events.empty()) return {};  // as the real one: no transaction
    faults.enter("storing incidents");
    std::lock_guard lock(mu_);
    for (v1::Incident incident : changed) {
      incident.clear_timeline();
      incident.set_widest_scope(std::max(incident.widest_scope(), incident.scope()));
      incidents_[incident.id()] = std::move(incident);
    }
    std::vector<v1::IncidentEvent> fresh;
    for (const auto& event : events) {
      if (!event_keys_.insert(key(event)).second) continue;  // stored before
      auto& stored = events_.emplace_back(event);
      stored.set_event_id(static_cast<int64_t>(events_.size()));
      fresh.push_back(stored);
    }
    ++saves_;
    return fresh;
  }

  std::vector<v1::Incident> load_incidents(std::chrono::system_clock::time_point resolved_since) override {
    faults.enter("loading incidents");
    std::lock_guard lock(mu_);
    std::vector<v1::Incident> out;
    for (const auto& [id, incident] : incidents_) {
      if (incident.has_resolve_time() && from_timestamp(incident.resolve_time()) < resolved_since) continue;
      out.push_back(with_timeline(incident));
    }
    std::sort(out.begin(), out.end(), [](const v1::Incident& a, const v1::Incident& b) {
      return std::pair(from_timestamp(a.first_failure_time()), a.id()) <
             std::pair(from_timestamp(b.first_failure_time()), b.id());
    });
    return out;
  }

  std::optional<v1::Incident> get_incident(const std::string& id) override {
    faults.enter("reading an incident");
    std::lock_guard lock(mu_);
    auto it = incidents_.find(id);
    if (it == incidents_.end()) return std::nullopt;
    return with_timeline(it->second);
  }

  // Every event stored, in event_id order.
  std::vector<v1::IncidentEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::map<std::string, v1::Incident> incidents() const {  // without timelines
    std::lock_guard lock(mu_);
    return incidents_;
  }
  size_t saves() const {  // successful save_incidents calls
    std::lock_guard lock(mu_);
    return saves_;
  }

 private:
  using EventKey = std::tuple<std::string, int, int64_t, int>;  // the table's unique key
  static EventKey key(const v1::IncidentEvent& e) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(from_timestamp(e.time()).time_since_epoch());
    return {e.incident_id(), e.type(), us.count(), e.scope()};
  }
  // Under mu_. Ordered by time, then event id.
  v1::Incident with_timeline(const v1::Incident& incident) const {
    v1::Incident out = incident;
    std::vector<const v1::IncidentEvent*> timeline;
    for (const auto& e : events_) {
      if (e.incident_id() == incident.id()) timeline.push_back(&e);
    }
    std::stable_sort(timeline.begin(), timeline.end(), [](const auto* a, const auto* b) {
      return from_timestamp(a->time()) < from_timestamp(b->time());
    });
    for (const auto* e : timeline) *out.add_timeline() = *e;
    return out;
  }

  mutable std::mutex mu_;
  std::map<std::string, v1::Incident> incidents_;
  std::vector<v1::IncidentEvent> events_;  // event_id = index + 1
  std::set<EventKey> event_keys_;
  size_t saves_ = 0;
};

}  // namespace vantage::testing
