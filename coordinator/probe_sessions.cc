#include "coordinator/probe_sessions.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/assignment.h"
#include "common/check_config.h"
#include "common/log.h"

namespace vantage::coordinator {

const char* end_label(EndReason reason) {
  switch (reason) {
    case EndReason::kStoppedReading: return "stopped_reading";
    case EndReason::kHelloTimeout: return "hello_timeout";
    case EndReason::kUnreadableMessage: return "unreadable_message";
    case EndReason::kAssignmentTooLarge: return "assignment_too_large";
  }
  return "unknown";
}

// --- ProbeSession ------------------------------------------------------------

ProbeSession::ProbeSession(grpc::ServerContext* context, RawStream* stream, size_t max_queued_messages,
                           std::chrono::milliseconds hello_timeout)
    : context_(context),
      stream_(stream),
      capacity_(max_queued_messages),
      hello_deadline_(std::chrono::steady_clock::now() + hello_timeout) {
  writer_ = std::thread([this] { write_loop(); });
}

ProbeSession::~ProbeSession() { finish(std::chrono::milliseconds(0)); }

bool ProbeSession::runs(int64_t check_id) const {
  std::lock_guard lock(assignment_mu_);
  return ever_assigned_.contains(check_id);
}

bool ProbeSession::assigned_now(int64_t check_id) const {
  std::lock_guard lock(assignment_mu_);
  return assigned_.contains(check_id);
}

size_t ProbeSession::assigned_count() const {
  std::lock_guard lock(assignment_mu_);
  return assigned_.size();
}

void ProbeSession::hello_received() {
  std::lock_guard lock(mu_);
  hello_ = true;
  cv_.notify_all();
}

void ProbeSession::record_produced(uint64_t produced, uint64_t stored) {
  if (produced == 0 || produced < stored || produced > static_cast<uint64_t>(INT64_MAX)) return;
  produced_.store(produced);
}

std::optional<uint64_t> ProbeSession::produced_sequence() const {
  const uint64_t produced = produced_.load();
  if (produced == 0) return std::nullopt;
  return produced;
}

ProbeSession::Push ProbeSession::push(v1::CoordinatorMessage message, bool bounded) {
  std::lock_guard lock(mu_);
  if (finishing_ || closed_) return Push::kClosed;
  if (bounded && bounded_queued_ >= capacity_) {
    end_locked(EndReason::kStoppedReading);
    return Push::kFull;
  }
  queue_.push_back({std::move(message), bounded});
  if (bounded) ++bounded_queued_;
  cv_.notify_all();
  return Push::kQueued;
}

ProbeSession::Push ProbeSession::push_phases(v1::CoordinatorMessage message) {
  {
    std::lock_guard lock(mu_);
    if (finishing_ || closed_) return Push::kClosed;
    if (!queue_.empty() && queue_.back().message.has_assignment_diff()) {
      auto& queued = *queue_.back().message.mutable_assignment_diff();
      if (queued.added().empty() && queued.updated().empty() && queued.removed_check_ids().empty()) {
        std::unordered_map<int64_t, int> at;  // check id -> index in `queued`
        for (int i = 0; i < queued.phases_size(); ++i) at[queued.phases(i).check_id()] = i;
        for (auto& phase : *message.mutable_assignment_diff()->mutable_phases()) {
          auto it = at.find(phase.check_id());
          if (it != at.end()) {
            queued.mutable_phases(it->second)->Swap(&phase);
          } else {
            *queued.add_phases() = std::move(phase);
          }
        }
        return Push::kQueued;
      }
    }
  }
  return push(std::move(message));
}

void ProbeSession::cancel() {
  std::lock_guard lock(mu_);
  if (context_) context_->TryCancel();
}

void ProbeSession::finish(std::chrono::milliseconds drain_timeout) {
  std::unique_lock lock(mu_);
  if (!context_) return;
  finishing_ = true;
  cv_.notify_all();
  if (!cv_.wait_for(lock, drain_timeout, [&] { return writer_done_; })) context_->TryCancel();
  lock.unlock();
  writer_.join();
  lock.lock();
  context_ = nullptr;
}

std::optional<EndReason> ProbeSession::end_reason() const {
  std::lock_guard lock(mu_);
  return end_reason_;
}

size_t ProbeSession::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void ProbeSession::ending(EndReason reason) {
  std::lock_guard lock(mu_);
  if (!end_reason_) end_reason_ = reason;
}

void ProbeSession::end_locked(EndReason reason) {
  if (!end_reason_) end_reason_ = reason;
  closed_ = true;
  queue_.clear();
  bounded_queued_ = 0;
  if (context_) context_->TryCancel();
  cv_.notify_all();
}

void ProbeSession::write_loop() {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, hello_deadline_, [&] { return hello_ || finishing_ || closed_; })) {
    end_locked(EndReason::kHelloTimeout);
  }
  for (;;) {
    cv_.wait(lock, [&] { return !queue_.empty() || finishing_ || closed_; });
    if (queue_.empty() || closed_) break;  // finishing and drained, or ended
    Queued next = std::move(queue_.front());
    queue_.pop_front();
    if (next.bounded) --bounded_queued_;
    lock.unlock();
    grpc::ByteBuffer bytes;
    bool own_buffer = false;
    bool ok = grpc::SerializationTraits<v1::CoordinatorMessage>::Serialize(next.message, &bytes, &own_buffer).ok();
    ok = ok && stream_->Write(bytes);
    lock.lock();
    if (!ok) {  // the stream is ending; its handler's Read returns too
      closed_ = true;
      queue_.clear();
      if (context_) context_->TryCancel();
      break;
    }
  }
  writer_done_ = true;
  cv_.notify_all();
}

// --- Diffs -------------------------------------------------------------------

std::vector<v1::CoordinatorMessage> diff_messages(const std::map<int64_t, int64_t>& had,
                                                  const std::vector<v1::Check>& now) {
  std::vector<v1::CoordinatorMessage> messages;
  std::unordered_set<int64_t> present;
  std::vector<const v1::Check*> changed;  // added or updated, in `now`'s order
  for (const auto& check : now) {
    present.insert(check.id());
    auto it = had.find(check.id());
    if (it == had.end() || it->second != check.version()) changed.push_back(&check);
  }
  std::vector<int64_t> removed;
  for (const auto& [id, version] : had) {
    if (!present.contains(id)) removed.push_back(id);
  }
  if (changed.empty() && removed.empty()) return messages;
  // Ids are small (10,000 checks at most are far below a message's bound).
  auto* diff = messages.emplace_back().mutable_assignment_diff();
  for (auto id : removed) diff->add_removed_check_ids(id);
  size_t in_part = 0;
  size_t bytes = 0;
  for (const auto* check : changed) {
    const size_t size = check->ByteSizeLong() + 6;  // tag and length prefix
    if (in_part > 0 && (in_part >= kChecksPerAssignmentPart || bytes + size > kAssignmentPartBytes)) {
      diff = messages.emplace_back().mutable_assignment_diff();
      in_part = 0;
      bytes = 0;
    }
    *(had.contains(check->id()) ? diff->add_updated() : diff->add_added()) = *check;
    ++in_part;
    bytes += size;
  }
  return messages;
}

namespace {

void add_phase(google::protobuf::RepeatedPtrField<v1::CheckPhase>& phases, int64_t check_id,
               std::chrono::milliseconds offset) {
  auto* phase = phases.Add();
  phase->set_check_id(check_id);
  *phase->mutable_offset() = to_duration(offset);
}

}  // namespace

void attach_phases(std::vector<v1::CoordinatorMessage>& messages, const ProbePhases& had, const ProbePhases& now) {
  std::unordered_set<int64_t> carried;
  for (auto& message : messages) {
    auto* diff = message.mutable_assignment_diff();
    for (const auto* checks : {&diff->added(), &diff->updated()}) {
      for (const auto& check : *checks) {
        auto it = now.find(check.id());
        if (it == now.end()) continue;
        add_phase(*diff->mutable_phases(), check.id(), it->second);
        carried.insert(check.id());
      }
    }
  }
  v1::CheckAssignmentDiff* last = messages.empty() ? nullptr : messages.back().mutable_assignment_diff();
  for (const auto& [id, offset] : now) {
    if (carried.contains(id)) continue;
    auto it = had.find(id);
    if (it != had.end() && it->second == offset) continue;
    if (!last) last = messages.emplace_back().mutable_assignment_diff();
    add_phase(*last->mutable_phases(), id, offset);
  }
}

// --- ProbeSessions -----------------------------------------------------------

ProbeSessions::ProbeSessions(const CheckRegistry& checks, CoordinatorMetrics& metrics)
    : checks_(checks), metrics_(metrics) {}

grpc::Status ProbeSessions::open(const std::shared_ptr<ProbeSession>& shared, v1::CoordinatorMessage welcome,
                                 bool accepts_parts) {
  ProbeSession& session = *shared;
  const auto& probe = session.probe;
  std::lock_guard lock(mu_);
  auto checks = checks_.for_region(probe.region);
  std::map<int64_t, int64_t> assigned;
  for (const auto& check : checks) assigned.emplace(check.id(), check.version());
  auto plan = plan_locked(&session);
  auto& phases = plan[probe.name];
  auto assignment = assignment_messages(std::move(checks), accepts_parts);
  for (auto& message : assignment) {
    auto* part = message.mutable_assignment();
    for (const auto& check : part->checks()) {
      auto it = phases.find(check.id());
      if (it != phases.end()) add_phase(*part->mutable_phases(), it->first, it->second);
    }
  }
  for (const auto& message : assignment) {
    const size_t bytes = message.ByteSizeLong();
    if (bytes > kMaxProbeMessageBytes) {
      metrics_.assignments_too_large.Increment();
      session.ending(EndReason::kAssignmentTooLarge);
      log::error("cannot send a probe its checks: one assignment message is larger than a probe accepts",
                 "probe", probe.name, "region", probe.region, "bytes", bytes, "limit", kMaxProbeMessageBytes,
                 "checks", message.assignment().checks_size(), "accepts_parts", accepts_parts);
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          fmt::format("the assignment of region {} needs a message of {} bytes ({} checks), more than the {} a probe "
                      "accepts; {}",
                      probe.region, bytes, message.assignment().checks_size(), kMaxProbeMessageBytes,
                      accepts_parts ? "a single check is too large" : "use a probe that accepts parts"));
    }
  }
  {
    std::lock_guard assignment_lock(session.assignment_mu_);
    for (const auto& [id, version] : assigned) session.ever_assigned_.insert(id);
    session.assigned_ = std::move(assigned);
  }
  // The welcome and the assignment do not count against the queue's bound:
  // their size is the coordinator's, not the peer's doing.
  bool open = session.push(std::move(welcome), /*bounded=*/false) == ProbeSession::Push::kQueued;
  for (auto& part : assignment) {
    if (!open) break;
    open = session.push(std::move(part), /*bounded=*/false) == ProbeSession::Push::kQueued;
  }
  session.phases_ = std::move(phases);
  // Shared only now, so that a re-check cannot come before the welcome.
  auto [it, inserted] = sessions_.emplace(probe.name, nullptr);
  if (!inserted) {
    it->second->cancel();  // the probe reconnected before the old stream died
  } else {
    metrics_.probes_connected.Increment();
  }
  it->second = shared;
  send_phases_locked(plan, &session);
  return grpc::Status::OK;
}

std::map<std::string, ProbePhases> ProbeSessions::plan_locked(const ProbeSession* joining) const {
  std::map<std::string, std::string> fleet;  // probe id -> region
  for (const auto& [name, session] : sessions_) fleet.emplace(name, session->probe.region);
  if (joining) fleet[joining->probe.name] = joining->probe.region;
  return plan_phases(checks_.all(), fleet);
}

void ProbeSessions::send_phases_locked(const std::map<std::string, ProbePhases>& plan, const ProbeSession* except) {
  static const ProbePhases kNone;
  for (const auto& [name, session] : sessions_) {
    if (session.get() == except) continue;
    auto it = plan.find(name);
    const auto& now = it == plan.end() ? kNone : it->second;
    std::vector<v1::CoordinatorMessage> messages;
    attach_phases(messages, session->phases_, now);
    session->phases_ = now;
    // Counted against the queue's bound, like any diff (send_changes).
    for (auto& message : messages) session->push_phases(std::move(message));
  }
}

bool ProbeSessions::close(const std::shared_ptr<ProbeSession>& session) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(session->probe.name);
  if (it == sessions_.end() || it->second != session) return false;
  sessions_.erase(it);
  metrics_.probes_connected.Decrement();
  send_phases_locked(plan_locked());
  return true;
}

void ProbeSessions::cancel_all() {
  std::lock_guard lock(mu_);
  for (auto& [name, session] : sessions_) session->cancel();
}

size_t ProbeSessions::request_recheck(int64_t check_id, const std::vector<std::string>& regions,
                                      const std::string& request_id, const std::string& reason) {
  std::vector<std::shared_ptr<ProbeSession>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, session] : sessions_) {
      if (std::find(regions.begin(), regions.end(), session->probe.region) != regions.end()) {
        targets.push_back(session);
      }
    }
  }
  v1::CoordinatorMessage out;
  auto* recheck = out.mutable_recheck();
  recheck->set_check_id(check_id);
  recheck->set_request_id(request_id);
  recheck->set_reason(reason);
  size_t asked = 0;
  for (const auto& session : targets) {
    if (!session->assigned_now(check_id)) continue;
    // Queued, never written here: a probe that stopped reading cannot hold
    // up the caller (the incident tracker's thread).
    if (session->push(out) == ProbeSession::Push::kQueued) ++asked;
  }
  metrics_.rechecks_requested.Increment(static_cast<double>(asked));
  return asked;
}

std::vector<std::string> ProbeSessions::request_run(int64_t check_id, const std::vector<std::string>& regions,
                                                    const std::string& request_id) {
  std::vector<std::shared_ptr<ProbeSession>> candidates;  // in name order
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, session] : sessions_) {
      if (std::find(regions.begin(), regions.end(), session->probe.region) != regions.end()) {
        candidates.push_back(session);
      }
    }
  }
  v1::CoordinatorMessage out;
  auto* recheck = out.mutable_recheck();
  recheck->set_check_id(check_id);
  recheck->set_request_id(request_id);
  recheck->set_reason("run requested through the API");
  std::vector<std::string> asked;
  for (const auto& session : candidates) {
    const auto& region = session->probe.region;
    if (std::find(asked.begin(), asked.end(), region) != asked.end()) continue;
    if (!session->assigned_now(check_id)) continue;
    // A full queue ends that stream; the region's next probe is tried.
    if (session->push(out) == ProbeSession::Push::kQueued) asked.push_back(region);
  }
  metrics_.rechecks_requested.Increment(static_cast<double>(asked.size()));
  return asked;
}

AssignmentChanges ProbeSessions::send_changes() {
  AssignmentChanges changes;
  std::lock_guard lock(mu_);
  std::map<std::string, std::vector<v1::Check>> by_region;  // computed once per region
  auto plan = plan_locked();
  for (const auto& [name, session] : sessions_) {
    auto [region, fresh] = by_region.try_emplace(session->probe.region);
    if (fresh) region->second = checks_.for_region(session->probe.region);
    const auto& now = region->second;
    std::lock_guard assignment_lock(session->assignment_mu_);
    auto messages = diff_messages(session->assigned_, now);
    auto& phases = plan[name];
    attach_phases(messages, session->phases_, phases);
    session->phases_ = std::move(phases);
    if (messages.empty()) continue;
    ++changes.probes;
    for (const auto& message : messages) {
      const auto& diff = message.assignment_diff();
      changes.added += diff.added_size();
      changes.updated += diff.updated_size();
      changes.removed += diff.removed_check_ids_size();
    }
    session->assigned_.clear();
    for (const auto& check : now) {
      session->assigned_.emplace(check.id(), check.version());
      session->ever_assigned_.insert(check.id());
    }
    // Counted against the queue's bound: a probe that does not read its
    // stream cannot make the coordinator hold reload after reload for it;
    // it is ended, and gets the whole set when it connects again.
    for (auto& message : messages) {
      if (session->push(std::move(message)) != ProbeSession::Push::kQueued) break;
    }
  }
  return changes;
}

std::vector<OpenSession> ProbeSessions::list() const {
  std::lock_guard lock(mu_);
  std::vector<OpenSession> out;
  out.reserve(sessions_.size());
  for (const auto& [name, session] : sessions_) {
    out.push_back({session->probe.name, session->probe.region, session->assigned_count(),
                   session->produced_sequence()});
  }
  return out;
}

}  // namespace vantage::coordinator
