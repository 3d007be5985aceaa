#pragma once
// The one owner of the probes' open streams: who is connected, what each was
// told to run, and every message sent to them besides acknowledgements
// (assignments, assignment diffs, re-checks). The probe service opens and
// closes sessions; the incident tracker asks for re-checks; a checks reload
// sends diffs; the API lists sessions. All of them share one ProbeSessions,
// built before them and passed in.
//
// Nothing here blocks on a probe (architecture.md, "Trust boundaries"):
// every message goes through the bounded queue of the stream's own writer
// thread (ProbeSession), and a probe whose queue is full has stopped reading
// and is ended.

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "coordinator/check_registry.h"
#include "coordinator/metrics.h"
#include "coordinator/phases.h"
#include "storage/store.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage::coordinator {

// What a probe accepts in one message (gRPC's default receive limit).
inline constexpr size_t kMaxProbeMessageBytes = 4 * 1024 * 1024;

// Why the coordinator ended a stream (vantage_probe_streams_ended_total).
enum class EndReason { kStoppedReading, kHelloTimeout, kUnreadableMessage, kAssignmentTooLarge };
const char* end_label(EndReason reason);

// One stream's outgoing side. gRPC's sync API allows one Write at a time per
// stream and a Write blocks while the peer does not read, so only this
// stream's writer thread writes; everyone else queues and never waits. The
// writer thread also enforces the hello deadline.
class ProbeSession {
 public:
  // The stream as bytes (see ProbeServiceImpl).
  using RawStream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

  ProbeSession(grpc::ServerContext* context, RawStream* stream, size_t max_queued_messages,
               std::chrono::milliseconds hello_timeout);
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  // Set once, before the session is shared with other threads: the probe as
  // registered (its region is never what a message says).
  storage::ProbeRecord probe;

  // Whether results of the check are accepted on this stream: every check
  // this stream was ever assigned (a probe may still send results of a check
  // just removed; results of checks removed before the stream began are refused).
  bool runs(int64_t check_id) const;
  // Whether the check is assigned now (re-checks go only there).
  bool assigned_now(int64_t check_id) const;
  size_t assigned_count() const;

  void hello_received();

  // The highest sequence number the probe says it has produced
  // (ResultBatch/Heartbeat.produced_sequence; 0 is "not told"), so the API
  // can show its spool backlog. A value below `stored` (what the coordinator
  // has stored of the probe) or beyond the largest sequence number is a
  // confused or hostile probe's: ignored, the last good value stays.
  void record_produced(uint64_t produced, uint64_t stored);
  // nullopt when the probe never said (an older probe).
  std::optional<uint64_t> produced_sequence() const;

  enum class Push { kQueued, kFull, kClosed };
  // Never blocks. `bounded` messages count against the queue's capacity; a
  // full queue means the probe stopped reading: the stream is ended.
  Push push(v1::CoordinatorMessage message, bool bounded = true);
  // Queues a diff of phases alone, or merges it into the one queued last if
  // that is a diff of phases alone not yet written: a burst of probes
  // joining and leaving makes one diff with the latest phases, not one each.
  Push push_phases(v1::CoordinatorMessage message);

  // Ends the stream from any thread: its handler's Read returns.
  void cancel();
  // The handler's last step: writes what is queued (for at most
  // `drain_timeout`), then stops the writer. The context is not touched after.
  void finish(std::chrono::milliseconds drain_timeout);

  std::optional<EndReason> end_reason() const;
  size_t queued() const;
  // Records why the coordinator ends the stream, when its handler returns
  // the status that says so (a cancelled stream would hide the status).
  void ending(EndReason reason);

 private:
  friend class ProbeSessions;
  struct Queued {
    v1::CoordinatorMessage message;
    bool bounded;
  };
  void end_locked(EndReason reason);
  void write_loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  grpc::ServerContext* context_;  // null once the handler has finished
  RawStream* stream_;
  const size_t capacity_;
  const std::chrono::steady_clock::time_point hello_deadline_;
  std::deque<Queued> queue_;
  size_t bounded_queued_ = 0;
  bool hello_ = false;
  bool finishing_ = false;  // the handler is done reading: drain, then stop
  bool closed_ = false;     // nothing more is written
  bool writer_done_ = false;
  std::optional<EndReason> end_reason_;

  // What the probe was told to run: check id -> version sent. Changed only
  // by ProbeSessions under its lock; read by the stream's handler.
  mutable std::mutex assignment_mu_;
  std::map<int64_t, int64_t> assigned_;
  std::unordered_set<int64_t> ever_assigned_;

  // The phases the probe was told (check id -> offset). ProbeSessions::mu_ only.
  ProbePhases phases_;

  std::atomic<uint64_t> produced_{0};  // 0: not told

  std::thread writer_;  // last: started once everything above exists
};

// An open stream as the API shows it.
struct OpenSession {
  std::string probe;
  std::string region;
  size_t assigned_checks = 0;
  std::optional<uint64_t> produced_sequence;  // ProbeSession::produced_sequence()
};

// What one reload changed, summed over the probes it was sent to.
struct AssignmentChanges {
  size_t probes = 0;  // probes sent a diff
  size_t added = 0;
  size_t updated = 0;
  size_t removed = 0;
};

class ProbeSessions {
 public:
  ProbeSessions(const CheckRegistry& checks, CoordinatorMetrics& metrics);

  // Queues `welcome`, then the checks of the probe's region (in parts when
  // the probe accepts them) with their phases, and registers the session,
  // replacing (and cancelling) an older stream of the same probe; the other
  // probes whose phases the newcomer changes get them in a diff. One step
  // under the lock that send_changes() takes, so a probe that connects
  // during a reload gets either the old set and the diff, or the new set.
  // Not OK (and not registered) when an assignment message would be larger
  // than a probe accepts.
  grpc::Status open(const std::shared_ptr<ProbeSession>& session, v1::CoordinatorMessage welcome,
                    bool accepts_parts);
  // Unregisters the session if it is still the probe's current one (true if
  // it was); the probes that shared its checks get their new phases.
  bool close(const std::shared_ptr<ProbeSession>& session);
  // Ends every open stream (on shutdown).
  void cancel_all();

  // Asks the connected probes of `regions` that run the check for an
  // immediate attempt. Never blocks on a probe. Returns how many were asked.
  size_t request_recheck(int64_t check_id, const std::vector<std::string>& regions, const std::string& request_id,
                         const std::string& reason);
  // "Run now" (CheckService.RunCheck): asks ONE connected probe of each of
  // `regions` that runs the check (the first by name whose queue takes it),
  // so that a run costs the checked site one request per region. Never
  // blocks on a probe. Returns the regions asked.
  std::vector<std::string> request_run(int64_t check_id, const std::vector<std::string>& regions,
                                       const std::string& request_id);

  // Sends every open session a CheckAssignmentDiff from what it was told to
  // run to what the registry now says for its region: added, updated (the
  // version changed) and removed checks, the phases of the added and
  // updated ones and the phases that changed (the probes running a check
  // changed with its regions, or its interval did); nothing to a probe
  // whose checks and phases did not change. One diff (or one per bounded
  // part) per probe, whatever the number of checks changed.
  AssignmentChanges send_changes();

  std::vector<OpenSession> list() const;

 private:
  // The phases every probe should have now, with the open sessions as the
  // fleet (plus `joining`, not registered yet). mu_ held.
  std::map<std::string, ProbePhases> plan_locked(const ProbeSession* joining = nullptr) const;
  // Sends each open session but `except` a diff of the phases that changed
  // for it (phases alone), and records them. mu_ held.
  void send_phases_locked(const std::map<std::string, ProbePhases>& plan, const ProbeSession* except = nullptr);

  const CheckRegistry& checks_;
  CoordinatorMetrics& metrics_;
  mutable std::mutex mu_;
  // One open stream per probe: a newer one replaces (cancels) an older one.
  std::map<std::string, std::shared_ptr<ProbeSession>> sessions_;
};

// The messages that carry a diff: removals first, then added and updated
// checks in parts of at most kChecksPerAssignmentPart checks and
// kAssignmentPartBytes (each part applies on its own). Empty when nothing changed.
std::vector<v1::CoordinatorMessage> diff_messages(const std::map<int64_t, int64_t>& had,
                                                  const std::vector<v1::Check>& now);

// Adds to the diff `messages` the phases a probe is to be told, going from
// `had` to `now`: each added or updated check's phase in the message that
// carries the check (a check started anew takes it at once), and every other
// phase that changed in the last message, or in a diff of phases alone when
// there is none.
void attach_phases(std::vector<v1::CoordinatorMessage>& messages, const ProbePhases& had, const ProbePhases& now);

}  // namespace vantage::coordinator
