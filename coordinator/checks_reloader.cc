#include "coordinator/checks_reloader.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <map>

#include "common/check_config.h"
#include "common/log.h"

namespace vantage::coordinator {

namespace {
// Between tries of a file that PostgreSQL was not there to take (each logged).
constexpr auto kStorageRetryInterval = std::chrono::seconds(10);
}  // namespace

std::vector<v1::Check> CheckPublisher::publish(const std::function<std::vector<v1::Check>()>& store_and_read,
                                               AssignmentChanges* changes) {
  std::lock_guard lock(mu_);
  auto stored = store_and_read();
  registry_.replace(stored);
  if (after_replace_) after_replace_();
  metrics_.checks.Set(static_cast<double>(stored.size()));
  incidents_.set_checks(stored);
  // After the registry: a probe connecting now gets the new set, or the old
  // one and this diff (ProbeSessions::open).
  if (changes) *changes = sessions_.send_changes();
  return stored;
}

ChecksReloader::ChecksReloader(std::string path, storage::CheckRepository& store, CheckRegistry& registry,
                               CheckPublisher& publisher, CoordinatorMetrics& metrics, std::chrono::milliseconds poll,
                               Timers& timers)
    : path_(std::move(path)),
      store_(store),
      registry_(registry),
      publisher_(publisher),
      metrics_(metrics),
      poll_(poll),
      timers_(timers) {}

ChecksReloader::~ChecksReloader() { stop(); }

ChecksReloader::Stat ChecksReloader::stat_file() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return {};
  return {true, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::optional<size_t> ChecksReloader::content_hash() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return std::nullopt;
  // Bounded like load_checks_file: past the limit the file is refused anyway.
  std::string text;
  char piece[64 * 1024];
  while (text.size() <= check_limits::kMaxFileBytes && in.read(piece, sizeof piece).gcount() > 0) {
    text.append(piece, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return std::nullopt;
  return std::hash<std::string>{}(text);
}

std::vector<v1::Check> ChecksReloader::apply(const std::vector<v1::Check>& file_checks, AssignmentChanges* changes) {
  auto stored = publisher_.publish([&] { return store_.sync_file_checks(file_checks); }, changes);
  metrics_.config_last_reload_success.Set(static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()));
  return stored;
}

void ChecksReloader::load_initial() {
  std::lock_guard lock(reload_mu_);
  seen_ = stat_file();
  seen_hash_ = content_hash();
  apply(load_checks_file(path_), nullptr);
}

ReloadOutcome ChecksReloader::reload() {
  std::lock_guard lock(reload_mu_);
  seen_ = stat_file();
  seen_hash_ = content_hash();
  return reload_locked();
}

void ChecksReloader::poll_once() {
  std::lock_guard lock(reload_mu_);
  // A good file that storage could not take (PostgreSQL down) is tried
  // again, not forgotten until the next edit.
  if (retry_at_ && timers_.clock().steady_now() >= *retry_at_) {
    reload_locked();
    return;
  }
  const auto now = stat_file();
  if (now == seen_) {
    settling_.reset();
    return;
  }
  // A file written in place may be seen half-written (a valid prefix of its
  // checks would remove the rest): taken only once it looked the same for
  // one poll.
  if (settling_ != now) {
    settling_ = now;
    return;
  }
  settling_.reset();
  seen_ = now;
  const auto hash = content_hash();
  if (hash && hash == seen_hash_) return;  // touched, or written back unchanged
  seen_hash_ = hash;
  reload_locked();
}

ReloadOutcome ChecksReloader::reload_locked() {
  const auto started = timers_.clock().steady_now();
  retry_at_.reset();
  ReloadOutcome outcome;
  try {
    auto file_checks = load_checks_file(path_);
    // A name the API owns is the file's error, every one named (the sync
    // below refuses them too, inside its transaction, should the API create
    // one meanwhile).
    std::map<std::string, const v1::Check*> named;
    for (const auto& check : file_checks) named.emplace(check.name(), &check);
    for (const auto& stored : store_.list_checks()) {
      if (stored.source() != v1::CHECK_SOURCE_FILE && named.contains(stored.name())) {
        outcome.problems.push_back(fmt::format(
            "{}: check \"{}\": owned by the API (created through CheckService): the file cannot change it; rename "
            "it in the file, or delete it through the API first",
            path_, stored.name()));
      }
    }
    if (outcome.problems.empty()) {
      outcome.checks = apply(file_checks, &outcome.changes).size();
      outcome.ok = true;
    }
  } catch (const ConfigError& e) {
    outcome.problems = e.problems();
  } catch (const storage::StorageError& e) {
    outcome.problems.push_back(fmt::format("{}: not stored: {}", path_, e.what()));
    if (e.kind() == storage::StorageError::Kind::kUnavailable) retry_at_ = started + kStorageRetryInterval;
  } catch (const std::exception& e) {
    outcome.problems.push_back(fmt::format("{}: {}", path_, e.what()));
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(timers_.clock().steady_now() - started).count();
  if (outcome.ok) {
    metrics_.config_reloads.Add({{"result", "success"}}).Increment();
    log::info("checks file reloaded", "file", path_, "checks", outcome.checks, "probes_changed",
              outcome.changes.probes, "added", outcome.changes.added, "updated", outcome.changes.updated, "removed",
              outcome.changes.removed, "ms", ms);
  } else {
    metrics_.config_reloads.Add({{"result", "failure"}}).Increment();
    // One line per problem (a file has at most a bounded number: its checks
    // are bounded), then what it means.
    for (const auto& problem : outcome.problems) log::error("checks file problem", "problem", problem);
    log::error("checks file rejected whole; the last good checks stay in force", "file", path_, "problems",
               outcome.problems.size(), "checks_in_force", registry_.size());
  }
  return outcome;
}

void ChecksReloader::start_watching() {
  watcher_ = std::thread([this] { watch_loop(); });
}

void ChecksReloader::watch_loop() {
  std::unique_lock lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, poll_, [&] { return stopping_; })) {
    lock.unlock();
    poll_once();  // never throws: reload_locked() catches
    lock.lock();
  }
}

void ChecksReloader::stop() {
  {
    std::lock_guard lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace vantage::coordinator
