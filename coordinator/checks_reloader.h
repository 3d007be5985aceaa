#pragma once
// The checks file, live: loaded at start, then again whenever it changes
// (polled) and on SIGHUP (Coordinator::reload_checks).
//
// A file is taken whole or not at all: any error (the file's, or storage's,
// such as a name owned by the API) rejects it, logs every problem as
// file:line:column, counts a failure, and the last good set stays in force.
// A good file is synced to PostgreSQL (only changed checks get a new
// version), becomes the registry's set, is given to the incident tracker,
// and every connected probe gets a CheckAssignmentDiff of what changed for
// its region (probe_sessions.h).
//
// Change detection: every `poll` the path is stat()ed (following symlinks,
// so a Kubernetes ConfigMap's `..data` swap is seen) and compared by device,
// inode, size and modification time, so an editor's write-and-rename is seen
// too; a difference is taken once the file looked the same for one more poll
// (a file written in place is not read half-written), then the content is
// hashed and only new content is loaded (a touch is not a reload). A file
// refused because PostgreSQL was unavailable is tried again every 10 s.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/timer.h"
#include "coordinator/check_registry.h"
#include "coordinator/incident_tracker.h"
#include "coordinator/metrics.h"
#include "coordinator/probe_sessions.h"
#include "storage/store.h"

namespace vantage::coordinator {

// The one step after the stored set of checks changed, whether by the file
// or by CheckService: the registry, the checks gauge and the incident tracker
// get the set, then every connected probe a diff. One change at a time, the
// set read inside it, so the last change published is the latest stored.
class CheckPublisher {
 public:
  // `after_replace`: called once the registry has the new set (the
  // certificate series forget removed checks, cert_series.h).
  CheckPublisher(CheckRegistry& registry, ProbeSessions& sessions, IncidentTracker& incidents,
                 CoordinatorMetrics& metrics, std::function<void()> after_replace = {})
      : registry_(registry),
        sessions_(sessions),
        incidents_(incidents),
        metrics_(metrics),
        after_replace_(std::move(after_replace)) {}
  // `store_and_read` changes storage if it needs to and returns every stored
  // check; may throw (storage), then nothing is published. `changes`: what
  // the probes were sent (nullptr: at start, nobody to send to).
  std::vector<v1::Check> publish(const std::function<std::vector<v1::Check>()>& store_and_read,
                                 AssignmentChanges* changes);

 private:
  std::mutex mu_;
  CheckRegistry& registry_;
  ProbeSessions& sessions_;
  IncidentTracker& incidents_;
  CoordinatorMetrics& metrics_;
  std::function<void()> after_replace_;
};

struct ReloadOutcome {
  bool ok = false;
  std::vector<std::string> problems;  // why the file was rejected, one line each
  size_t checks = 0;                  // in force after the reload
  AssignmentChanges changes;          // what the probes were sent
};

class ChecksReloader {
 public:
  ChecksReloader(std::string path, storage::CheckRepository& store, CheckRegistry& registry, CheckPublisher& publisher,
                 CoordinatorMetrics& metrics, std::chrono::milliseconds poll,
                 Timers& timers = RealTimers::instance());  // the polls' and retries' time
  ~ChecksReloader();

  // The first load, at start: throws ConfigError or storage::StorageError
  // (a coordinator does not start on a bad file).
  void load_initial();
  // Polls the file until stop().
  void start_watching();
  void stop();

  // Loads the file now, whether or not it changed (SIGHUP). Never throws.
  ReloadOutcome reload();

 private:
  // What stat() says of the file; a change of any field is a change.
  struct Stat {
    bool exists = false;
    uint64_t device = 0, inode = 0, size = 0;
    int64_t modified_ns = 0;
    bool operator==(const Stat&) const = default;
  };
  Stat stat_file() const;
  std::optional<size_t> content_hash() const;  // nullopt when unreadable
  void poll_once();
  void watch_loop();
  // Loads, syncs and sends; reload_mu_ held.
  ReloadOutcome reload_locked();
  std::vector<v1::Check> apply(const std::vector<v1::Check>& file_checks, AssignmentChanges* changes);

  const std::string path_;
  storage::CheckRepository& store_;
  CheckRegistry& registry_;  // read only: how many checks are in force
  CheckPublisher& publisher_;
  CoordinatorMetrics& metrics_;
  const std::chrono::milliseconds poll_;
  Timers& timers_;

  std::mutex reload_mu_;  // one reload at a time
  Stat seen_;
  std::optional<Stat> settling_;  // changed, waiting to look the same for a poll
  std::optional<std::chrono::steady_clock::time_point> retry_at_;  // PostgreSQL was unavailable
  std::optional<size_t> seen_hash_;

  std::mutex watch_mu_;
  ClockCondition watch_cv_{timers_, watch_mu_};  // stop, and the next poll
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace vantage::coordinator
