#include "coordinator/correlator.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "common/check_config.h"
#include "common/failure_class.h"
#include "common/proto_time.h"
#include "coordinator/correlation/diagnosis_text.h"
#include "coordinator/correlation/events.h"
#include "coordinator/correlation/outage.h"
#include "coordinator/correlation/recurrence.h"
#include "coordinator/correlation/restart.h"
#include "coordinator/correlation/scope.h"
#include "coordinator/correlation/state.h"

// The facade: keeps each check's state, feeds it results and time, asks the
// units of coordinator/correlation/ (scope, outage, recurrence, diagnosis
// text, restart) their questions, and has their answers announced as events
// (correlation/events.h).

namespace vantage::correlation {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

std::string incident_id(int64_t check_id, TimePoint first_failure) {
  const auto ms = std::chrono::duration_cast<milliseconds>(first_failure.time_since_epoch()).count();
  return fmt::format("{}-{}", check_id, ms);
}

}  // namespace

// ---------------------------------------------------------------------------

Settings settings_for(const v1::Check& check, const Settings& defaults) {
  Settings s = defaults;
  if (!check.has_correlation()) return s;
  const auto& c = check.correlation();
  auto count = [](bool has, uint32_t value, uint32_t& field) {
    if (has && value > 0) field = value;
  };
  auto duration = [](bool has, const google::protobuf::Duration& value, milliseconds& field) {
    if (has && to_millis(value) > milliseconds(0)) field = to_millis(value);
  };
  count(c.has_confirm_consecutive(), c.confirm_consecutive(), s.confirm_consecutive);
  count(c.has_resolve_consecutive(), c.resolve_consecutive(), s.resolve_consecutive);
  duration(c.has_stale_after(), c.stale_after(), s.stale_after);
  count(c.has_global_quorum(), c.global_quorum(), s.global_quorum);
  duration(c.has_reopen_within(), c.reopen_within(), s.reopen_within);
  count(c.has_recurring_min(), c.recurring_min(), s.recurring_min);
  duration(c.has_recurring_window(), c.recurring_window(), s.recurring_window);
  duration(c.has_recheck_min_interval(), c.recheck_min_interval(), s.recheck_min_interval);
  return s;
}

Observation from_result(const v1::CheckResult& result, std::string probe_id, std::string region) {
  Observation o;
  o.check_id = result.check_id();
  o.probe_id = std::move(probe_id);
  o.region = std::move(region);
  o.time = from_timestamp(result.start_time());
  const auto& edge = result.edge();
  o.failure_class = edge.failure_class();
  o.ok = ok_class(o.failure_class);
  o.edge_code = edge.edge().edge_code();
  o.colo = !edge.edge().colo().empty() ? edge.edge().colo() : edge.edge().trace_colo();
  o.time_to_error = microseconds(edge.timings().time_to_error_us());
  if (result.has_origin()) o.origin_class = result.origin().failure_class();
  if (!o.ok) {
    o.ray_id = edge.edge().ray_id();
    o.cause_id = result.diagnosis().cause_id();
    o.cause = result.diagnosis().cause();
    o.advice = result.diagnosis().advice();
  }
  o.recheck = !result.recheck_request_id().empty();
  if (result.has_keep_alive() && result.keep_alive().error().empty()) {
    o.keep_alive = KeepAlive{to_millis(result.keep_alive().idle_close_after()),
                             result.keep_alive().requests_per_connection()};
  }
  return o;
}

// ---------------------------------------------------------------------------

struct Correlator::Impl {
  std::unordered_map<int64_t, CheckState> checks;
  Stats stats;
  std::optional<TimePoint> seen_until;  // restore(): results the previous run processed

  // A restored incident's scope, cause and count changes up to seen_until
  // were announced by the previous run: applied without events.
  bool quiet(const Incident& inc, TimePoint t) const { return inc.restored && seen_until && t <= *seen_until; }

  // --- outage ---

  // Recomputes an open outage's scope and cause; events when they change.
  void refresh_outage(CheckState& cs, Incident& inc, TimePoint as_of, TimePoint stamp, Call& call) {
    const bool silent = quiet(inc, as_of);
    const auto scope = current_scope(cs, as_of);
    if (scope != v1::SCOPE_UNSPECIFIED && scope != inc.scope) change_scope(call, cs, inc, scope, stamp, silent);
    const Failure* f = dominant_failure(cs, inc, as_of);
    if (!f) return;
    const auto old_class = inc.dominant_class;
    const auto old_code = inc.dominant_code;
    const std::string old_cause = inc.cause_id;
    set_outage_cause(inc, *f);
    if (silent) {
      touch(call, cs, inc);  // applied, not announced
    } else if (inc.cause_id != old_cause) {
      emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, stamp,
           fmt::format("cause {} -> {}", old_cause, inc.cause_id));
    } else if (inc.dominant_class != old_class || inc.dominant_code != old_code) {
      emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, stamp,
           fmt::format("dominant failure {} {} -> {} {}", failure_class_name(old_class), old_code,
                       failure_class_name(inc.dominant_class), inc.dominant_code));
    }
  }

  // Opens the check's incident of `kind` in `slot` (first failure `first`,
  // confirmed at `confirm`), or reopens the one resolved no longer than
  // reopen_within before `reopen_at`, or continues it silently when a replay
  // derives the same opening (UNSPECIFIED). Returns the event type.
  v1::IncidentEventType open_slot(CheckState& cs, std::optional<Incident>& slot, v1::IncidentKind kind,
                                  TimePoint first, TimePoint confirm, TimePoint reopen_at, Call& call) {
    const auto id = incident_id(cs.id, first);
    auto type = v1::INCIDENT_EVENT_TYPE_OPENED;
    if (slot && slot->resolve && reopen_at <= *slot->resolve + cs.settings.reopen_within) {
      type = v1::INCIDENT_EVENT_TYPE_REOPENED;
    } else if (slot && slot->id == id) {
      type = v1::INCIDENT_EVENT_TYPE_UNSPECIFIED;
    } else {
      if (slot) release(call, cs, *slot);
      slot.emplace();
      slot->id = id;
      slot->kind = kind;
      slot->first_failure = first;
      slot->confirm = confirm;
    }
    slot->open = true;
    slot->resolve.reset();
    return type;
  }

  void confirm_outage(CheckState& cs, TimePoint t, Call& call) {
    const OutageStart start = outage_start(cs, t);
    const auto type = open_slot(cs, cs.outage, v1::INCIDENT_KIND_OUTAGE, start.first_failure, t,
                                /*reopen_at=*/start.first_failure, call);
    Incident& inc = *cs.outage;
    for (auto& p : cs.probes) {
      if (p.failing && cs.fresh(p, t)) attach(inc, p);
    }
    inc.failures += start.failures;
    inc.scope = current_scope(cs, t);
    inc.widest = std::max(inc.widest, inc.scope);
    if (const Failure* f = dominant_failure(cs, inc, t)) set_outage_cause(inc, *f);
    touch(call, cs, inc);
    if (type != v1::INCIDENT_EVENT_TYPE_UNSPECIFIED) defer_opening(call, cs, inc, type, t, 0);
  }

  void resolve_outage(CheckState& cs, Incident& inc, TimePoint t, Call& call) {
    if (inc.pending_opening) announce(call, cs, inc);
    inc.open = false;
    inc.resolve = std::max(t, inc.last_stamp);  // as its event is stamped
    for (auto& p : cs.probes) p.owes_recovery = false;
    emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_RESOLVED, *inc.resolve,
         fmt::format("resolved: {} successes from every probe that failed", cs.settings.resolve_consecutive));
  }

  // --- intermittent ---

  v1::Scope scope_of_intermittent(const CheckState& cs, const Incident& inc, TimePoint t) const {
    const auto reporting = region_count(fresh_verdicts(cs, t));
    return intermittent_scope(spread_of(inc), global_quorum(cs.settings.global_quorum, reporting));
  }

  static void set_intermittent_cause(Incident& inc) {
    auto [dominant, cause] = intermittent_cause(inc);
    if (dominant) std::tie(inc.dominant_class, inc.dominant_code) = *dominant;
    if (!cause) return;
    inc.cause_id = std::move(cause->id);
    inc.cause = std::move(cause->text);
    inc.advice = std::move(cause->advice);
  }

  // An isolated episode `p` ended at `now`: remembered for the recurring
  // window; it joins the open intermittent incident or may open one.
  void record_isolated(CheckState& cs, const ProbeState& p, TimePoint now, bool suppressed, Call& call) {
    ++stats.isolated_episodes;
    Episode e = episode_of(p);
    cs.last_isolated = cs.last_isolated ? std::max(*cs.last_isolated, e.last) : e.last;
    remember_episode(cs.episodes, e, cs.settings.recurring_window);
    if (suppressed) return;
    if (Incident* open = cs.open_intermittent()) {
      if (!quiet(*open, now)) add_episode(cs, *open, e, call);  // else the restored incident holds it already
    } else if (cs.episodes.size() >= cs.settings.recurring_min) {
      open_intermittent(cs, call);
    }
  }

  void add_episode(CheckState& cs, Incident& inc, const Episode& e, Call& call) {
    fold(inc, e);
    const std::string old = inc.cause_id;
    set_intermittent_cause(inc);
    touch(call, cs, inc);
    if (inc.cause_id != old) {
      emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED, e.first,
           fmt::format("cause {} -> {}", old, inc.cause_id));
    }
    const auto scope = scope_of_intermittent(cs, inc, e.first);
    if (scope != inc.scope) change_scope(call, cs, inc, scope, e.first, /*silent=*/false);
  }

  // Every remembered episode lies within one window ending at the newest.
  void open_intermittent(CheckState& cs, Call& call) {
    const TimePoint t = cs.episodes.back().first;
    const TimePoint first = cs.episodes.front().first;
    const auto type = open_slot(cs, cs.intermittent, v1::INCIDENT_KIND_INTERMITTENT, first, t, /*reopen_at=*/t, call);
    Incident& inc = *cs.intermittent;
    for (const auto& ep : cs.episodes) fold(inc, ep);
    set_intermittent_cause(inc);
    inc.scope = scope_of_intermittent(cs, inc, t);
    inc.widest = std::max(inc.widest, inc.scope);
    touch(call, cs, inc);
    if (type != v1::INCIDENT_EVENT_TYPE_UNSPECIFIED) defer_opening(call, cs, inc, type, t, cs.episodes.size());
  }

  // --- time-driven transitions ---

  void advance(CheckState& cs, TimePoint now, bool staleness, Call& call) {
    if (cs.restored_until && now <= *cs.restored_until) return;
    if (staleness) mark_stale(cs, now, call);
    if (Incident* inc = cs.open_intermittent()) resolve_intermittent_if_due(cs, *inc, now, call);
    if (Incident* inc = cs.open_outage(); inc && inc->flapping) {
      if (auto ended = flapping_ended(cs.starts, cs.settings, now)) {
        inc->flapping = false;
        emit(call, cs, *inc, v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED, *ended, "no longer flapping");
      }
    }
  }

  // Probes whose latest result went stale leave the outage's scope, stamped
  // when the last of them went stale.
  void mark_stale(CheckState& cs, TimePoint now, Call& call) {
    std::optional<TimePoint> became;
    for (auto& p : cs.probes) {
      if (p.has_latest && !p.stale && now - p.latest > cs.stale_after()) {
        p.stale = true;
        const auto at = p.latest + cs.stale_after();
        became = became ? std::max(*became, at) : at;
      }
    }
    if (!became) return;
    if (Incident* inc = cs.open_outage()) refresh_outage(cs, *inc, now, *became, call);
  }

  void resolve_intermittent_if_due(CheckState& cs, Incident& inc, TimePoint now, Call& call) {
    const TimePoint due = intermittent_due(cs, inc);
    if (now < due || episode_pending(cs, due, now)) return;
    inc.open = false;
    inc.resolve = std::max(due, inc.last_stamp);  // as its event is stamped
    emit(call, cs, inc, v1::INCIDENT_EVENT_TYPE_RESOLVED, *inc.resolve,
         fmt::format("resolved: no isolated failure for {}", duration_text(cs.settings.recurring_window)));
  }

  // --- results ---

  ProbeState& probe_for(CheckState& cs, const Observation& o) {
    for (auto& p : cs.probes) {
      if (p.id == o.probe_id) {
        if (p.region != o.region) p.region = o.region;
        return p;
      }
    }
    auto& p = cs.probes.emplace_back();
    p.id = o.probe_id;
    p.region = o.region;
    return p;
  }

  // Every other region that has reported the check, at most once per
  // recheck_min_interval.
  void maybe_recheck(CheckState& cs, const ProbeState& p, TimePoint t, Call& call) {
    if (cs.last_recheck && (t < *cs.last_recheck || t - *cs.last_recheck < cs.settings.recheck_min_interval)) {
      ++stats.rechecks_rate_limited;
      return;
    }
    RecheckWanted want;
    for (const auto& q : cs.probes) {
      if (q.has_latest && !q.region.empty() && q.region != p.region &&
          std::find(want.regions.begin(), want.regions.end(), q.region) == want.regions.end()) {
        want.regions.push_back(q.region);
      }
    }
    if (want.regions.empty()) return;
    std::sort(want.regions.begin(), want.regions.end());
    want.check_id = cs.id;
    want.reason_probe = p.id;
    cs.last_recheck = t;
    ++stats.rechecks_wanted;
    call.out.rechecks.push_back(std::move(want));
  }

  void on_failure(CheckState& cs, ProbeState& p, const Observation& o, bool suppressed, Call& call) {
    const bool first = !p.failing;
    p.failing = true;
    p.ok_run = 0;
    if (first) {
      p.fail_run = 0;
      p.episode_start = o.time;
      p.episode_confirmed = false;
    }
    ++p.fail_run;
    p.last_failure.assign(o);
    if (first && !o.recheck && !suppressed) maybe_recheck(cs, p, o.time, call);

    // Before restored_until the restored outage's state is not that of the
    // result's time: its spans settle isolation when the episode ends.
    Incident* open = suppressed ? nullptr : cs.open_outage();
    if (!open && !confirms_outage(cs, p, o.time)) return;
    if (suppressed) {
      for (auto& q : cs.probes) {
        if (q.failing && cs.fresh(q, o.time)) q.episode_confirmed = true;
      }
    } else if (!open) {
      confirm_outage(cs, o.time, call);
    } else {
      attach(*open, p);
      if (!quiet(*open, o.time)) ++open->failures;
      touch(call, cs, *open);
      refresh_outage(cs, *open, o.time, o.time, call);
    }
  }

  void on_success(CheckState& cs, ProbeState& p, const Observation& o, bool suppressed, Call& call) {
    const bool was_failing = p.failing;
    p.failing = false;
    if (was_failing) {
      if (!p.episode_confirmed && !in_restored_outage(cs, p, o.time)) record_isolated(cs, p, o.time, suppressed, call);
      p.fail_run = 0;
      p.ok_run = 0;
      p.episode_confirmed = false;
    }
    ++p.ok_run;
    if (suppressed) return;
    Incident* open = cs.open_outage();
    if (!open) return;
    if (outage_recovered(cs, p, o.time)) {
      resolve_outage(cs, *open, o.time, call);
    } else if (was_failing) {
      refresh_outage(cs, *open, o.time, o.time, call);
    }
  }

  Output observe(std::span<const Observation> batch) {
    Call call;
    for (const auto& o : batch) take(o, call);
    finish(call);
    return std::move(call.out);
  }

  void take(const Observation& o, Call& call) {
    auto it = checks.find(o.check_id);
    if (it == checks.end() || !it->second.configured) {
      ++stats.unknown_check;
      return;
    }
    CheckState& cs = it->second;
    ProbeState& p = probe_for(cs, o);
    if (p.has_latest && o.time <= p.latest) {
      ++stats.late_results;
      return;
    }
    ++stats.observed;
    // A result beyond one interval of a pending opening's confirmation is no
    // part of it: the opening is announced as it stands before the result counts.
    for (auto* slot : {&cs.outage, &cs.intermittent}) {
      if (*slot && (*slot)->pending_opening && o.time - (*slot)->pending_opening->confirmed > cs.interval) {
        announce(call, cs, **slot);
      }
    }
    advance(cs, o.time, false, call);
    const bool suppressed = cs.restored_until && o.time <= *cs.restored_until;
    p.has_latest = true;
    p.stale = false;
    p.latest = o.time;
    if (p.colo != o.colo) p.colo = o.colo;
    if (o.keep_alive && o.keep_alive != cs.keep_alive) {
      cs.keep_alive = o.keep_alive;
      if (Incident* inc = cs.open_intermittent()) inc->diagnosis_cache.reset();  // its evidence names it
    }
    if (o.ok) {
      on_success(cs, p, o, suppressed, call);
    } else {
      on_failure(cs, p, o, suppressed, call);
    }
  }

  Output tick(TimePoint now) {
    Call call;
    for (auto& [id, cs] : checks) {
      if (cs.configured) advance(cs, now, true, call);
    }
    finish(call);
    return std::move(call.out);
  }

  // --- restart ---

  size_t restore(const std::vector<v1::Incident>& incidents, std::optional<TimePoint> until) {
    seen_until = until;
    size_t taken = 0;
    std::vector<int64_t> restored_checks;
    for (const auto& s : incidents) {
      const auto check_id = check_of(s);
      if (!check_id || (s.kind() != v1::INCIDENT_KIND_OUTAGE && s.kind() != v1::INCIDENT_KIND_INTERMITTENT)) continue;
      auto [it, inserted] = checks.try_emplace(*check_id);
      CheckState& cs = it->second;
      if (inserted) {
        cs.id = *check_id;
        cs.name = s.check();
      }
      take_restored(cs, s);
      restored_checks.push_back(*check_id);
      ++taken;
    }
    std::sort(restored_checks.begin(), restored_checks.end());
    restored_checks.erase(std::unique(restored_checks.begin(), restored_checks.end()), restored_checks.end());
    for (int64_t id : restored_checks) settle_restored(checks[id]);
    return taken;
  }

  // One stored incident into its check: its history, and its slot when it is
  // the open one or the latest.
  static void take_restored(CheckState& cs, const v1::Incident& s) {
    Incident inc = from_proto(s);
    History history = history_of(s, inc);
    cs.starts.insert(cs.starts.end(), history.starts.begin(), history.starts.end());
    cs.restored_spans.insert(cs.restored_spans.end(), history.outage_spans.begin(), history.outage_spans.end());
    inc.last_stamp = history.known;
    cs.restored_until = cs.restored_until ? std::max(*cs.restored_until, history.known) : history.known;
    if (inc.kind == v1::INCIDENT_KIND_INTERMITTENT && inc.open) {
      cs.last_isolated = cs.last_isolated ? std::max(*cs.last_isolated, inc.confirm) : inc.confirm;
    }
    auto& slot = inc.kind == v1::INCIDENT_KIND_OUTAGE ? cs.outage : cs.intermittent;
    const bool take = !slot || (inc.open && !slot->open) ||
                      (inc.open == slot->open && inc.first_failure > slot->first_failure);
    if (take) slot = std::move(inc);
  }
};

// ---------------------------------------------------------------------------

Correlator::Correlator() : impl_(std::make_unique<Impl>()) {}
Correlator::~Correlator() = default;
Correlator::Correlator(Correlator&&) noexcept = default;
Correlator& Correlator::operator=(Correlator&&) noexcept = default;

void Correlator::upsert_check(int64_t check_id, std::string name, std::chrono::milliseconds interval,
                              Settings settings) {
  auto& cs = impl_->checks[check_id];
  cs.id = check_id;
  cs.name = std::move(name);
  cs.interval = interval > milliseconds(0) ? interval : milliseconds(60'000);
  cs.settings = settings;
  cs.configured = true;
  for (auto* slot : {&cs.outage, &cs.intermittent}) {
    if (*slot) (*slot)->diagnosis_cache.reset();  // the settings appear in the evidence
  }
}

void Correlator::remove_check(int64_t check_id) { impl_->checks.erase(check_id); }

Output Correlator::observe(const Observation& observation) { return impl_->observe({&observation, 1}); }

Output Correlator::observe(std::span<const Observation> batch) { return impl_->observe(batch); }

Output Correlator::tick(TimePoint now) { return impl_->tick(now); }

size_t Correlator::restore(const std::vector<v1::Incident>& incidents, std::optional<TimePoint> seen_until) {
  return impl_->restore(incidents, seen_until);
}

std::vector<v1::Incident> Correlator::open_incidents() const {
  std::vector<v1::Incident> out;
  for (const auto& [id, cs] : impl_->checks) {
    for (const auto* slot : {&cs.outage, &cs.intermittent}) {
      if (*slot && (*slot)->open) out.push_back(snapshot(cs, **slot));
    }
  }
  std::sort(out.begin(), out.end(), [](const v1::Incident& a, const v1::Incident& b) { return a.id() < b.id(); });
  return out;
}

std::map<std::string, bool> Correlator::check_up(int64_t check_id) const {
  std::map<std::string, bool> up;
  auto it = impl_->checks.find(check_id);
  if (it == impl_->checks.end()) return up;
  for (const auto& p : it->second.probes) {
    if (!p.has_latest || p.stale) continue;
    auto [entry, inserted] = up.emplace(p.region, !p.failing);
    if (!inserted) entry->second = entry->second || !p.failing;
  }
  return up;
}

const Stats& Correlator::stats() const { return impl_->stats; }

}  // namespace vantage::correlation
