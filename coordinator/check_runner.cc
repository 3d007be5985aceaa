#include "coordinator/check_runner.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "common/log.h"
#include "common/proto_time.h"
#include "common/token.h"
#include "coordinator/api_auth.h"

namespace vantage::coordinator {

namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(100);
// Registered probes read to learn the regions of a check that names none:
// far more than a fleet has, so that one call stays bounded.
constexpr size_t kMaxProbesForRegions = 10'000;
constexpr size_t kProbesPage = 1'000;

}  // namespace

// --- RunWaiters --------------------------------------------------------------

struct RunWaiters::Wait::State {
  int64_t check_id = 0;
  std::string check_name;
  std::set<std::string> pending;  // regions whose result has not been stored yet
  std::vector<v1::StoredResult> results;
  std::condition_variable cv;
};

RunWaiters::Wait::Wait(RunWaiters& owner, std::string request_id, std::shared_ptr<State> state)
    : owner_(owner), request_id_(std::move(request_id)), state_(std::move(state)) {}

RunWaiters::Wait::~Wait() { owner_.remove(request_id_); }

void RunWaiters::Wait::expect_only(const std::vector<std::string>& asked) {
  std::lock_guard lock(owner_.mu_);
  std::erase_if(state_->pending,
                [&](const std::string& region) { return std::find(asked.begin(), asked.end(), region) == asked.end(); });
}

RunWaiters::Outcome RunWaiters::Wait::wait(std::chrono::steady_clock::time_point deadline,
                                           const std::function<bool()>& cancelled) {
  Outcome outcome;
  std::unique_lock lock(owner_.mu_);
  for (;;) {
    if (state_->pending.empty()) break;
    if (cancelled && cancelled()) {
      outcome.cancelled = true;
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    state_->cv.wait_until(lock, std::min(deadline, now + kCancelPoll));
  }
  outcome.results = std::move(state_->results);
  state_->results.clear();
  outcome.timed_out.assign(state_->pending.begin(), state_->pending.end());
  return outcome;
}

RunWaiters::RunWaiters(size_t max_waits, const Clock& clock) : max_waits_(max_waits), clock_(clock) {}

std::unique_ptr<RunWaiters::Wait> RunWaiters::add(int64_t check_id, const std::string& check_name,
                                                  const std::vector<std::string>& regions) {
  auto state = std::make_shared<Wait::State>();
  state->check_id = check_id;
  state->check_name = check_name;
  state->pending.insert(regions.begin(), regions.end());
  std::lock_guard lock(mu_);
  if (waits_.size() >= max_waits_) return nullptr;
  // 96 random bits: unique among the waits, and not guessable by a probe
  // that would answer someone else's run.
  std::string request_id;
  do {
    request_id = "run-" + generate_token().substr(0, 24);
  } while (waits_.contains(request_id));
  waits_.emplace(request_id, state);
  waiting_.store(waits_.size());
  return std::unique_ptr<Wait>(new Wait(*this, std::move(request_id), std::move(state)));
}

void RunWaiters::remove(const std::string& request_id) {
  std::lock_guard lock(mu_);
  waits_.erase(request_id);
  waiting_.store(waits_.size());
}

void RunWaiters::committed(const std::vector<const storage::ResultBatch*>& batches) {
  // The common case: nobody runs a check now. A wait is registered before
  // its probes are asked, so its results cannot be committed before this
  // count sees it.
  if (waiting_.load() == 0) return;
  const auto stored_at = to_timestamp(clock_.now());
  std::lock_guard lock(mu_);
  for (const auto* batch : batches) {
    for (const auto& result : batch->results) {
      if (result.recheck_request_id().empty()) continue;
      auto it = waits_.find(result.recheck_request_id());
      if (it == waits_.end()) continue;
      auto& state = *it->second;
      // Only the check asked for, and one result per region (the first).
      if (result.check_id() != state.check_id || state.pending.erase(batch->probe.region) == 0) continue;
      auto& out = state.results.emplace_back();
      out.set_probe_id(batch->probe.name);
      out.set_region(batch->probe.region);
      out.set_check(state.check_name);
      *out.mutable_result() = result;
      *out.mutable_receive_time() = stored_at;
      if (state.pending.empty()) state.cv.notify_all();
    }
  }
}

// --- CheckRunner -------------------------------------------------------------

CheckRunner::CheckRunner(AskFn ask, storage::ProbeDirectory& probes, const Clock& clock, CheckRunnerOptions options)
    : ask_(std::move(ask)), probes_(probes), options_(options), waiters_(options.max_waits, clock) {}

std::vector<std::string> CheckRunner::regions_of(const v1::Check& check) {
  std::set<std::string> regions(check.regions().begin(), check.regions().end());
  if (regions.empty()) {
    std::string after;
    for (size_t seen = 0; seen < kMaxProbesForRegions;) {
      auto page = probes_.list_probes(after, "", kProbesPage);
      for (const auto& probe : page) regions.insert(probe.region);
      if (page.size() < kProbesPage) break;
      seen += page.size();
      after = page.back().name;
    }
  }
  return {regions.begin(), regions.end()};
}

grpc::Status CheckRunner::run(const v1::Check& check, std::chrono::milliseconds timeout,
                              const std::function<bool()>& cancelled, v1::RunCheckResponse* response) {
  std::vector<std::string> regions;
  try {
    regions = regions_of(check);
  } catch (const storage::StorageError& e) {
    log::warn("cannot list the probes' regions", "check", check.name(), "error", e.what());
    return api_storage_status(e, "cannot list the probes' regions");
  }
  if (regions.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        fmt::format("check \"{}\" runs in every region, and no probe is registered", check.name()));
  }
  // Registered before asking: a result stored at once is not missed.
  auto wait = waiters_.add(check.id(), check.name(), regions);
  if (!wait) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        fmt::format("{} RunCheck calls are waiting already, the most this coordinator allows; try "
                                    "again when one has finished",
                                    options_.max_waits));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto asked = ask_(check.id(), regions, wait->request_id());
  wait->expect_only(asked);
  for (const auto& region : regions) {
    if (std::find(asked.begin(), asked.end(), region) == asked.end()) response->add_regions_without_probe(region);
  }
  if (asked.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        fmt::format("no probe of the regions of check \"{}\" is connected ({})", check.name(),
                                    fmt::join(regions, ", ")));
  }
  response->set_request_id(wait->request_id());
  auto outcome = wait->wait(deadline, cancelled);
  if (outcome.cancelled) return grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the call");
  for (auto& result : outcome.results) *response->add_results() = std::move(result);
  for (auto& region : outcome.timed_out) response->add_regions_timed_out(std::move(region));
  log::info("check run on request", "check", check.name(), "request_id", wait->request_id(), "regions_asked",
            asked.size(), "results", response->results_size(), "regions_timed_out", response->regions_timed_out_size(),
            "regions_without_probe", response->regions_without_probe_size());
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
