// The correlator (correlation.md): the five worked timelines, scope rules,
// hysteresis, late results, restart, rechecks, and properties over random
// result streams. The property tests run a dozen seeds each (a few seconds
// in a Debug build); VANTAGE_CORRELATOR_SEEDS=1000 runs that many (minutes).

#include "coordinator/correlator.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "common/check_config.h"
#include "common/proto_time.h"

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Duration = std::chrono::milliseconds;

constexpr int64_t kCheck = 7;
const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));

struct Probe {
  std::string id, region, colo;
};

const Probe kUs{"us-1", "us", "IAD"};
const Probe kEu{"eu-1", "eu", "FRA"};
const Probe kAp{"ap-1", "ap", "SIN"};

std::string event_name(v1::IncidentEventType t) {
  switch (t) {
    case v1::INCIDENT_EVENT_TYPE_OPENED: return "opened";
    case v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED: return "scope";
    case v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED: return "cause";
    case v1::INCIDENT_EVENT_TYPE_REOPENED: return "reopened";
    case v1::INCIDENT_EVENT_TYPE_RESOLVED: return "resolved";
    case v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED: return "flapping";
    default: return "?";
  }
}

std::string scope_text(v1::Scope s) {
  switch (s) {
    case v1::SCOPE_PROBE: return "probe";
    case v1::SCOPE_COLO: return "colo";
    case v1::SCOPE_REGION: return "region";
    case v1::SCOPE_GLOBAL: return "global";
    default: return "none";
  }
}

// "90s" from a time relative to kT0.
std::string at_text(const google::protobuf::Timestamp& ts) {
  const auto t = TimePoint(std::chrono::seconds(ts.seconds()) + std::chrono::nanoseconds(ts.nanos()));
  return fmt::format("{}s", std::chrono::duration_cast<std::chrono::seconds>(t - kT0).count());
}

std::string id_at(Duration first_failure) {
  return fmt::format("{}-{}", kCheck,
                     std::chrono::duration_cast<std::chrono::milliseconds>((kT0 + first_failure).time_since_epoch()).count());
}

// Feeds a correlator and keeps what came out.
struct Harness {
  explicit Harness(Settings settings = {}, Duration interval = 60s) {
    correlator.upsert_check(kCheck, "shop", interval, settings);
  }

  Observation make(const Probe& p, Duration at, bool ok, uint32_t code = 520, bool recheck = false) const {
    Observation o;
    o.check_id = kCheck;
    o.probe_id = p.id;
    o.region = p.region;
    o.time = kT0 + at;
    o.ok = ok;
    o.failure_class = ok ? v1::FAILURE_CLASS_OK : v1::FAILURE_CLASS_EDGE_ERROR;
    o.colo = p.colo;
    o.recheck = recheck;
    if (!ok) {
      o.edge_code = code;
      o.ray_id = fmt::format("{:016x}", (std::chrono::duration_cast<std::chrono::seconds>(at).count() + 1000) * 7919 +
                                            static_cast<int64_t>(std::hash<std::string>{}(p.id) % 1000));
      o.time_to_error = 40ms;
      o.cause_id = fmt::format("edge_{}", code);
      o.cause = fmt::format("the edge answered {}", code);
      o.advice = "look at the origin";
    }
    return o;
  }

  Output feed(const Observation& o) {
    auto out = correlator.observe(o);
    record(out);
    return out;
  }
  // Results committed together, as the coordinator hands them over.
  Output feed_batch(const std::vector<Observation>& batch) {
    auto out = correlator.observe(std::span<const Observation>(batch));
    record(out);
    return out;
  }
  Output ok(const Probe& p, Duration at, bool recheck = false) { return feed(make(p, at, true, 0, recheck)); }
  Output fail(const Probe& p, Duration at, uint32_t code = 520, bool recheck = false) {
    return feed(make(p, at, false, code, recheck));
  }
  Output tick(Duration at) {
    auto out = correlator.tick(kT0 + at);
    record(out);
    return out;
  }
  void all_ok(Duration at, std::initializer_list<Probe> probes = {kUs, kEu, kAp}) {
    for (const auto& p : probes) ok(p, at);
  }

  void record(const Output& out) {
    for (const auto& e : out.events) events.push_back(e);
    for (const auto& i : out.changed) incidents[i.id()] = i;
    for (const auto& r : out.rechecks) rechecks.push_back(r);
  }

  // "opened region 60s", in order.
  std::vector<std::string> log(std::set<v1::IncidentEventType> only = {}) const {
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (!only.empty() && !only.contains(e.type())) continue;
      out.push_back(fmt::format("{} {} {}", event_name(e.type()), scope_text(e.scope()), at_text(e.time())));
    }
    return out;
  }

  const v1::Incident& only_incident() const {
    EXPECT_EQ(incidents.size(), 1u);
    static const v1::Incident kNone;  // the expectation above has failed
    return incidents.empty() ? kNone : incidents.begin()->second;
  }

  Correlator correlator;
  std::vector<v1::IncidentEvent> events;
  std::map<std::string, v1::Incident> incidents;  // latest snapshot of each
  std::vector<RecheckWanted> rechecks;
};

const std::set<v1::IncidentEventType> kLifecycle = {
    v1::INCIDENT_EVENT_TYPE_OPENED, v1::INCIDENT_EVENT_TYPE_REOPENED, v1::INCIDENT_EVENT_TYPE_RESOLVED,
    v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED};

// ---------------------------------------------------------------------------
// The worked timelines of correlation.md: us, eu, ap, one probe each, 60 s.

TEST(WorkedTimelines, OneIsolatedFailureOpensNothing) {
  Harness h;
  h.all_ok(-60s);
  auto out = h.fail(kEu, 0s);
  ASSERT_EQ(out.rechecks.size(), 1u);
  EXPECT_EQ(out.rechecks[0].check_id, kCheck);
  EXPECT_THAT(out.rechecks[0].regions, ElementsAre("ap", "us"));
  EXPECT_EQ(out.rechecks[0].reason_probe, "eu-1");
  h.ok(kUs, 1s, true);
  h.ok(kAp, 1s, true);
  h.ok(kEu, 60s);
  EXPECT_THAT(h.events, IsEmpty());
  EXPECT_THAT(h.incidents, IsEmpty());
  EXPECT_EQ(h.correlator.stats().isolated_episodes, 1u);
  EXPECT_THAT(h.correlator.open_incidents(), IsEmpty());
}

TEST(WorkedTimelines, TwoFailuresInOneRegionOpenARegionOutage) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.ok(kUs, 1s, true);
  h.ok(kAp, 1s, true);
  h.fail(kEu, 60s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s"));
  const auto& inc = h.only_incident();
  EXPECT_EQ(inc.id(), id_at(0s));
  EXPECT_EQ(inc.check(), "shop");
  EXPECT_EQ(inc.check_id(), kCheck);
  EXPECT_EQ(inc.kind(), v1::INCIDENT_KIND_OUTAGE);
  EXPECT_EQ(inc.state(), v1::INCIDENT_STATE_OPEN);
  EXPECT_EQ(inc.scope(), v1::SCOPE_REGION);
  EXPECT_EQ(inc.widest_scope(), v1::SCOPE_REGION);
  EXPECT_THAT(inc.affected_regions(), ElementsAre("eu"));
  EXPECT_THAT(inc.affected_probes(), ElementsAre("eu-1"));
  EXPECT_THAT(inc.affected_colos(), ElementsAre("FRA"));
  EXPECT_EQ(inc.dominant_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(inc.dominant_edge_code(), 520u);
  EXPECT_EQ(inc.failure_count(), 2u);
  EXPECT_EQ(at_text(inc.first_failure_time()), "0s");
  EXPECT_EQ(at_text(inc.confirm_time()), "60s");
  EXPECT_FALSE(inc.has_resolve_time());
  EXPECT_EQ(inc.diagnosis().cause_id(), "edge_520");
  EXPECT_FALSE(inc.sample_ray_ids().empty());
  EXPECT_EQ(inc.recurrence_24h(), 1u);
  const auto& opened = h.events[0];
  EXPECT_EQ(opened.incident_id(), inc.id());
  EXPECT_EQ(opened.diagnosis().cause_id(), "edge_520");
  // Hysteresis: two successes from eu resolve it.
  h.ok(kEu, 120s);
  EXPECT_EQ(h.log().size(), 1u);
  h.ok(kEu, 180s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(at_text(h.only_incident().resolve_time()), "180s");
  EXPECT_EQ(h.only_incident().state(), v1::INCIDENT_STATE_RESOLVED);
}

TEST(WorkedTimelines, FailingRechecksOpenAGlobalOutageAtOnce) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  auto out = h.fail(kUs, 1s, 520, true);
  EXPECT_THAT(out.rechecks, IsEmpty()) << "a recheck's answer asks for no more rechecks";
  h.fail(kAp, 1s, 520, true);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1s"));
  const auto& inc = h.only_incident();
  EXPECT_EQ(inc.id(), id_at(0s));
  EXPECT_EQ(inc.scope(), v1::SCOPE_GLOBAL);
  EXPECT_THAT(inc.affected_regions(), ::testing::UnorderedElementsAre("eu", "us", "ap"));
  EXPECT_EQ(inc.failure_count(), 3u);
  EXPECT_EQ(at_text(inc.confirm_time()), "1s");
}

TEST(WorkedTimelines, ScatteredIsolatedFailuresOpenAnIntermittentIncident) {
  Harness h;
  const std::map<std::pair<std::string, int>, bool> failures = {
      {{"eu-1", 0}, true}, {{"us-1", 20 * 60}, true}, {{"ap-1", 40 * 60}, true}};
  std::string opened_when, resolved_when;
  for (int s = -60; s <= 2 * 3600; s += 60) {
    for (const auto& p : {kUs, kEu, kAp}) {
      if (failures.contains({p.id, s})) {
        h.fail(p, std::chrono::seconds(s));
        for (const auto& q : {kUs, kEu, kAp}) {
          if (q.id != p.id) h.ok(q, std::chrono::seconds(s) + 1s, true);
        }
      } else {
        h.ok(p, std::chrono::seconds(s));
      }
      if (opened_when.empty() && !h.events.empty()) opened_when = fmt::format("{}s", s);
    }
    h.tick(std::chrono::seconds(s) + 30s);
    if (resolved_when.empty() && h.events.size() > 1) resolved_when = fmt::format("{}s", s + 30);
  }
  EXPECT_THAT(h.log(), ElementsAre("opened global 2400s", "resolved global 6000s"));
  EXPECT_EQ(opened_when, "2460s") << "settled isolated by ap's next success, stamped with its failure";
  EXPECT_EQ(resolved_when, "6030s") << "not before t = 1 h 40 min";
  const auto& inc = h.only_incident();
  EXPECT_EQ(inc.kind(), v1::INCIDENT_KIND_INTERMITTENT);
  EXPECT_EQ(inc.id(), id_at(0s));
  EXPECT_EQ(inc.failure_count(), 3u);
  EXPECT_EQ(at_text(inc.first_failure_time()), "0s");
  EXPECT_EQ(at_text(inc.resolve_time()), "6000s");
  EXPECT_THAT(inc.affected_regions(), ElementsAre("eu", "us", "ap"));
  EXPECT_THAT(inc.affected_colos(), ElementsAre("FRA", "IAD", "SIN"));
  // 520s spread over colos: the keep-alive race of diagnosis.md section 5.
  EXPECT_EQ(inc.diagnosis().cause_id(), "keepalive_race");
  EXPECT_EQ(h.correlator.stats().isolated_episodes, 3u);
}

TEST(WorkedTimelines, AnOutageBackWithinTenMinutesReopensAndTheFourthFlaps) {
  Harness h;
  h.all_ok(-60s);
  // Fails (true) or succeeds everywhere at each minute.
  const std::vector<std::pair<int, bool>> minutes = {
      {0, true},  {1, true},  {2, true},  {3, true},  {4, false}, {5, false},   // 1st, resolved at 5 min
      {6, false}, {7, false}, {8, true},  {9, true},  {10, false}, {11, false},  // 2nd, back at 8 min
      {12, true}, {13, false}, {14, false},                                     // 3rd
      {15, true}, {16, true}};                                                  // 4th: flapping
  for (auto [m, failing] : minutes) {
    for (const auto& p : {kEu, kUs, kAp}) {
      if (failing) {
        h.fail(p, std::chrono::minutes(m));
      } else {
        h.ok(p, std::chrono::minutes(m));
      }
    }
  }
  EXPECT_THAT(h.log(kLifecycle),
              ElementsAre("opened global 0s", "resolved region 300s", "reopened global 480s", "resolved region 660s",
                          "reopened global 720s", "resolved region 840s", "reopened global 900s",
                          "flapping global 900s"));
  const auto& inc = h.only_incident();
  EXPECT_EQ(inc.id(), id_at(0s)) << "one incident throughout";
  EXPECT_TRUE(inc.flapping());
  EXPECT_EQ(inc.recurrence_24h(), 4u);
  EXPECT_EQ(inc.widest_scope(), v1::SCOPE_GLOBAL);
  // The third outage did not flap yet.
  auto flap = std::find_if(h.events.begin(), h.events.end(), [](const v1::IncidentEvent& e) {
    return e.type() == v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED;
  });
  ASSERT_NE(flap, h.events.end());
  EXPECT_EQ(at_text(flap->time()), "900s");
  // Recovery narrows the scope region by region before it resolves.
  EXPECT_THAT(h.log({v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED}),
              ElementsAre("scope region 240s", "scope region 600s", "scope region 780s"));
}

TEST(Flapping, EndsWhenTheOutagesLeaveTheWindow) {
  Settings s;
  s.flapping_window = 1h;
  Harness h(s);
  h.all_ok(-60s);
  int m = 0;
  for (int outage = 0; outage < 3; ++outage) {
    for (const auto& p : {kEu, kUs, kAp}) h.fail(p, std::chrono::minutes(m));
    ++m;
    for (int k = 0; k < 2; ++k, ++m) {
      for (const auto& p : {kEu, kUs, kAp}) h.ok(p, std::chrono::minutes(m));
    }
  }
  // The fourth outage (9 min) flaps; it stays open.
  for (const auto& p : {kEu, kUs, kAp}) h.fail(p, std::chrono::minutes(m));
  EXPECT_TRUE(h.only_incident().flapping());
  h.tick(59min);
  EXPECT_TRUE(h.only_incident().flapping());
  h.tick(61min);
  EXPECT_FALSE(h.only_incident().flapping());
  EXPECT_EQ(h.log({v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED}).back(), "flapping global 3600s")
      << "stamped when the first outage left the 1 h window";
}

// ---------------------------------------------------------------------------
// Opening at the scope the results in hand support (one batch, one decision)

TEST(Opening, RechecksCommittedWithTheConfirmationOpenAtTheirScope) {
  // eu's second 520 confirms alone; the re-checks' 520s from us and ap were
  // committed in the same batch, a few milliseconds later.
  auto batch = [](const Harness& h) {
    return std::vector<Observation>{h.make(kEu, 60s, false), h.make(kUs, 60s + 4ms, false, 520, true),
                                    h.make(kAp, 60s + 9ms, false, 520, true)};
  };
  Harness one_by_one;
  one_by_one.all_ok(-60s);
  one_by_one.fail(kEu, 0s);
  for (const auto& o : batch(one_by_one)) one_by_one.feed(o);
  EXPECT_THAT(one_by_one.log(), ElementsAre("opened region 60s", "scope global 60s"))
      << "fed one at a time, each result is a decision";

  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.feed_batch(batch(h));
  ASSERT_EQ(h.events.size(), 1u) << ::testing::PrintToString(h.log());
  const auto& opened = h.events[0];
  EXPECT_EQ(opened.type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(opened.scope(), v1::SCOPE_GLOBAL);
  EXPECT_THAT(opened.message(), ::testing::HasSubstr("scope global"));
  EXPECT_EQ(from_timestamp(opened.time()), kT0 + 60s + 4ms) << "stamped when the results showed its scope";
  const auto& inc = h.only_incident();
  EXPECT_EQ(inc.scope(), v1::SCOPE_GLOBAL);
  EXPECT_EQ(inc.widest_scope(), v1::SCOPE_GLOBAL);
  EXPECT_EQ(from_timestamp(inc.confirm_time()), kT0 + 60s) << "confirmed by eu's second failure";
  EXPECT_THAT(inc.affected_regions(), ::testing::UnorderedElementsAre("eu", "us", "ap"));
  EXPECT_EQ(inc.failure_count(), 4u);
  EXPECT_EQ(inc.recurrence_24h(), 1u);
}

TEST(Opening, ACauseSeenInTheSameBatchIsTheOpeningsCause) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s, 522);
  // eu's second failure confirms (522); us and ap report 520 in the same batch.
  h.feed_batch({h.make(kEu, 60s, false, 522), h.make(kUs, 61s, false, 520, true), h.make(kAp, 61s, false, 520, true)});
  EXPECT_THAT(h.log(), ElementsAre("opened global 61s"));
  EXPECT_EQ(h.events[0].diagnosis().cause_id(), "edge_520") << "the most common failure of the batch";
  EXPECT_EQ(h.only_incident().dominant_edge_code(), 520u);
}

TEST(Opening, ResultsBeyondOneIntervalOfTheConfirmationAreChangesOfTheirOwn) {
  // A spool catching up: minutes of results in one batch.
  Harness h;
  h.all_ok(-60s);
  h.feed_batch({h.make(kEu, 0s, false), h.make(kEu, 60s, false), h.make(kUs, 50s, true), h.make(kUs, 130s, false),
                h.make(kAp, 60s, true), h.make(kAp, 135s, false)});
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "scope global 130s"));
  EXPECT_EQ(h.events[0].scope(), v1::SCOPE_REGION);
}

TEST(Opening, AResolutionInTheSameBatchComesAfterTheOpening) {
  Harness h;
  h.all_ok(-60s);
  h.feed_batch({h.make(kEu, 0s, false), h.make(kEu, 60s, false), h.make(kEu, 120s, true), h.make(kEu, 180s, true)});
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(h.only_incident().state(), v1::INCIDENT_STATE_RESOLVED);
}

// ---------------------------------------------------------------------------
// Event stamps: monotonic per incident

TEST(Stamps, AnEarlierResultThatWidensIsStampedNoEarlierThanTheOpening) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  // us's 520 started at 30 s but arrives after eu's confirmation.
  h.fail(kUs, 30s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "scope global 60s"));
  EXPECT_EQ(h.events[1].type(), v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED);
  EXPECT_GE(from_timestamp(h.events[1].time()), from_timestamp(h.events[0].time()));
}

TEST(Stamps, TheResolutionIsNeverBeforeTheLastChange) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  h.fail(kUs, 90s);
  h.ok(kUs, 95s);
  h.ok(kUs, 100s);
  // eu's recoveries started before us's but arrive after them.
  h.ok(kEu, 70s);
  h.ok(kEu, 80s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "scope global 90s", "scope region 95s", "resolved region 95s"));
  EXPECT_EQ(at_text(h.only_incident().resolve_time()), "95s");
}

// ---------------------------------------------------------------------------
// Scope

TEST(Scope, OneProbeFailingWhileItsRegionPeerSucceedsIsProbeScope) {
  const Probe eu2{"eu-2", "eu", "FRA"};  // same colo: nothing says the colo is at fault
  Harness h;
  h.all_ok(-60s, {kUs, kEu, eu2, kAp});
  h.fail(kEu, 0s);
  h.ok(eu2, 10s);
  h.fail(kEu, 60s);
  EXPECT_THAT(h.log(), ElementsAre("opened probe 60s"));
  // Its peer fails too: the whole region.
  h.fail(eu2, 70s);
  EXPECT_THAT(h.log(), ElementsAre("opened probe 60s", "scope region 70s"));
  // The peer recovers: narrower again, widest kept.
  h.ok(eu2, 130s);
  EXPECT_THAT(h.log(), ElementsAre("opened probe 60s", "scope region 70s", "scope probe 130s"));
  EXPECT_EQ(h.only_incident().scope(), v1::SCOPE_PROBE);
  EXPECT_EQ(h.only_incident().widest_scope(), v1::SCOPE_REGION);
  EXPECT_EQ(h.correlator.check_up(kCheck), (std::map<std::string, bool>{{"ap", true}, {"eu", true}, {"us", true}}));
}

TEST(Scope, ProbeWithoutColoEvidenceStaysProbe) {
  const Probe eu1{"eu-1", "eu", ""}, eu2{"eu-2", "eu", ""};  // no cf-ray: e.g. DNS failures
  Harness h;
  h.all_ok(-60s, {kUs, eu1, eu2, kAp});
  h.fail(eu1, 0s);
  h.fail(eu1, 60s);
  EXPECT_THAT(h.log(), ElementsAre("opened probe 60s"));
}

TEST(Scope, APeerServedThroughAnotherColoMakesItColo) {
  const Probe eu2{"eu-2", "eu", "AMS"};
  Harness h;
  h.all_ok(-60s, {kUs, kEu, eu2, kAp});
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  EXPECT_THAT(h.log(), ElementsAre("opened colo 60s"));
  EXPECT_THAT(h.only_incident().affected_colos(), ElementsAre("FRA"));
}

TEST(Scope, OneColoFailingAcrossRegionsIsColoUntilAQuorumOfRegionsFails) {
  // Five regions (quorum 3); de and nl both reach the edge through FRA.
  const Probe de{"de-1", "de", "FRA"}, nl{"nl-1", "nl", "FRA"}, us{"us-1", "us", "IAD"}, ap{"ap-1", "ap", "SIN"},
      br{"br-1", "br", "GRU"};
  Harness h;
  h.all_ok(-60s, {de, nl, us, ap, br});
  h.fail(de, 0s);
  h.fail(nl, 5s);
  EXPECT_THAT(h.log(), ElementsAre("opened colo 5s")) << "two regions within one interval, one colo";
  h.fail(us, 10s);
  EXPECT_THAT(h.log(), ElementsAre("opened colo 5s", "scope global 10s"));
  h.ok(us, 70s);
  EXPECT_THAT(h.log(), ElementsAre("opened colo 5s", "scope global 10s", "scope colo 70s"));
  EXPECT_EQ(h.only_incident().widest_scope(), v1::SCOPE_GLOBAL);
}

TEST(Scope, ALoneFailingRegionWithOneColoIsRegion) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  EXPECT_EQ(h.only_incident().scope(), v1::SCOPE_REGION);
  EXPECT_EQ(h.correlator.check_up(kCheck), (std::map<std::string, bool>{{"ap", true}, {"eu", false}, {"us", true}}));
}

TEST(Scope, StaleResultsLeaveTheScopeAtTheTick) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kUs, 1s);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1s"));
  // us goes silent; eu keeps failing, ap keeps succeeding.
  for (int s = 60; s <= 120; s += 60) {
    h.fail(kEu, std::chrono::seconds(s));
    h.ok(kAp, std::chrono::seconds(s));
    h.tick(std::chrono::seconds(s) + 1s);
  }
  // us's last result (1 s) is stale after 150 s: seen at the next tick,
  // stamped with when it went stale.
  h.tick(170s);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1s", "scope region 151s"));
  EXPECT_EQ(h.correlator.check_up(kCheck), (std::map<std::string, bool>{{"ap", true}, {"eu", false}}));
}

// ---------------------------------------------------------------------------
// Time

TEST(Hysteresis, ASuccessBetweenFailuresDoesNotResolve) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  h.ok(kEu, 120s);
  h.fail(kEu, 180s);
  h.ok(kEu, 240s);
  h.ok(kEu, 300s);
  EXPECT_THAT(h.log(kLifecycle), ElementsAre("opened region 60s", "resolved region 300s"));
  EXPECT_EQ(h.only_incident().failure_count(), 3u);
}

TEST(Hysteresis, EveryProbeThatFailedMustRecover) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kUs, 10s);  // two regions: global
  h.ok(kUs, 70s);
  h.ok(kUs, 130s);
  h.fail(kEu, 60s);  // eu's own stream: 0 s, 60 s failing
  h.ok(kEu, 120s);
  EXPECT_THAT(h.log(kLifecycle), ElementsAre("opened global 10s"));
  h.ok(kEu, 180s);
  EXPECT_THAT(h.log(kLifecycle), ElementsAre("opened global 10s", "resolved region 180s"));
}

TEST(Reopen, AfterTheWindowANewIncidentOpens) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  h.ok(kEu, 120s);
  h.ok(kEu, 180s);      // resolved at 3 min
  h.fail(kEu, 900s);    // 12 min later
  h.fail(kEu, 960s);
  EXPECT_THAT(h.log(kLifecycle), ElementsAre("opened region 60s", "resolved region 180s", "opened region 960s"));
  EXPECT_EQ(h.incidents.size(), 2u);
  EXPECT_TRUE(h.incidents.contains(id_at(900s)));
  EXPECT_EQ(h.incidents.at(id_at(900s)).recurrence_24h(), 2u);
}

TEST(Reopen, ALoneBlipAfterResolutionDoesNotReopen) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  h.ok(kEu, 120s);
  h.ok(kEu, 180s);
  h.fail(kEu, 240s);
  h.ok(kEu, 300s);
  EXPECT_THAT(h.log(kLifecycle), ElementsAre("opened region 60s", "resolved region 180s"));
}

TEST(Cause, ADifferentDominantFailureIsACauseChange) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 0s, 520);
  h.fail(kEu, 60s, 520);
  h.fail(kEu, 120s, 521);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "cause region 120s"));
  EXPECT_EQ(h.events.back().diagnosis().cause_id(), "edge_521");
  EXPECT_EQ(h.only_incident().dominant_edge_code(), 521u);
  h.fail(kEu, 180s, 521);
  EXPECT_EQ(h.events.size(), 2u) << "the same cause again is no change";
}

TEST(Diagnosis, OutageEvidenceNamesTheOriginLegColosAndTimeToError) {
  Harness h;
  h.all_ok(-60s);
  auto fail = [&](Duration at) {
    auto o = h.make(kEu, at, false, 520);
    o.origin_class = v1::FAILURE_CLASS_EMPTY_REPLY;
    o.cause_id = "origin_empty_reply";
    o.cause = "the origin returns an empty response";
    o.time_to_error = 1500ms;
    h.feed(o);
  };
  fail(0s);
  fail(60s);
  const auto& d = h.only_incident().diagnosis();
  EXPECT_EQ(d.cause_id(), "origin_empty_reply");
  const std::string evidence = fmt::format("{}", fmt::join(d.evidence(), " | "));
  EXPECT_NE(evidence.find("origin leg: empty_reply"), std::string::npos) << evidence;
  EXPECT_NE(evidence.find("colo FRA"), std::string::npos) << evidence;
  EXPECT_NE(evidence.find("time to error: 1.50 s"), std::string::npos) << evidence;
  EXPECT_NE(evidence.find("sample ray ids: "), std::string::npos) << evidence;
}

// Three isolated 520s from one probe, the origin leg fine each time.
Harness intermittent_from_one_probe(std::optional<v1::FailureClass> origin, std::optional<KeepAlive> keep_alive) {
  Harness h;
  h.all_ok(-60s);
  for (int k = 0; k < 3; ++k) {
    const auto at = std::chrono::minutes(10 * k);
    auto o = h.make(kEu, at, false, 520);
    o.origin_class = origin;
    o.keep_alive = keep_alive;
    if (origin && *origin != v1::FAILURE_CLASS_OK) o.cause_id = "origin_resets_connections";
    h.feed(o);
    h.ok(kEu, at + 60s);
  }
  return h;
}

TEST(Diagnosis, IsolatedEdge520sWithAHealthyOriginAreTheKeepAliveRace) {
  auto h = intermittent_from_one_probe(v1::FAILURE_CLASS_OK, KeepAlive{5s, 0});
  EXPECT_THAT(h.log(), ElementsAre("opened probe 1200s"));
  const auto& d = h.only_incident().diagnosis();
  EXPECT_EQ(d.cause_id(), "keepalive_race");
  const std::string evidence = fmt::format("{}", fmt::join(d.evidence(), " | "));
  EXPECT_NE(evidence.find("origin leg: ok in 3 of 3"), std::string::npos) << evidence;
  EXPECT_NE(evidence.find("after 5 s, shorter than the edge's reuse of idle connections (about 900 s)"),
            std::string::npos)
      << evidence;
  EXPECT_NE(evidence.find("FRA x3"), std::string::npos) << evidence;
}

TEST(Diagnosis, AFailingOriginLegIsNotTheKeepAliveRace) {
  auto h = intermittent_from_one_probe(v1::FAILURE_CLASS_CONNECTION_RESET, std::nullopt);
  EXPECT_EQ(h.only_incident().diagnosis().cause_id(), "origin_resets_connections");
}

TEST(Diagnosis, OneColoAndNoOriginLegIsNotEnoughForTheKeepAliveRace) {
  auto h = intermittent_from_one_probe(std::nullopt, std::nullopt);
  EXPECT_EQ(h.only_incident().diagnosis().cause_id(), "edge_520");
}

TEST(Intermittent, APendingEpisodeDelaysTheResolution) {
  Harness h;
  h.all_ok(-60s);
  for (auto [p, at] : {std::pair{kEu, 0min}, {kUs, 10min}, {kAp, 20min}}) {
    h.fail(p, at);
    h.ok(p, at + 1min);
  }
  ASSERT_THAT(h.log(), ElementsAre("opened global 1200s"));
  h.all_ok(79min);
  h.fail(kEu, 79min + 30s);  // unsettled when the window would end at 80 min
  h.tick(80min);
  h.tick(80min + 40s);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1200s"));
  h.ok(kEu, 81min);  // isolated after all: a new window from 79.5 min
  h.tick(139min);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1200s"));
  h.all_ok(139min + 10s);
  h.tick(140min);
  EXPECT_THAT(h.log(), ElementsAre("opened global 1200s", "resolved global 8370s"));
  EXPECT_EQ(h.only_incident().failure_count(), 4u);
}

TEST(Intermittent, OutageFailuresAreNotIsolated) {
  Harness h;
  h.all_ok(-60s);
  for (int k = 0; k < 4; ++k) {
    const auto at = std::chrono::minutes(10 * k);
    h.fail(kEu, at);
    h.fail(kEu, at + 1min);
    h.ok(kEu, at + 2min);
    h.ok(kEu, at + 3min);
  }
  for (const auto& [id, inc] : h.incidents) EXPECT_EQ(inc.kind(), v1::INCIDENT_KIND_OUTAGE) << id;
  EXPECT_EQ(h.correlator.stats().isolated_episodes, 0u);
}

// ---------------------------------------------------------------------------
// Late results, rechecks, restart

TEST(LateResults, OlderThanTheProbesLatestAreIgnored) {
  Harness h;
  h.all_ok(-60s);
  h.fail(kEu, 60s);
  auto out = h.ok(kEu, 30s);  // replayed from a spool after a later result
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(h.correlator.stats().late_results, 1u);
  h.fail(kEu, 60s);  // the same result again
  EXPECT_EQ(h.correlator.stats().late_results, 2u);
  EXPECT_THAT(h.events, IsEmpty());
  h.fail(kEu, 120s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 120s"));
  EXPECT_EQ(h.only_incident().failure_count(), 2u);
}

TEST(LateResults, ASpooledProbeCatchesUpBehindTheOthers) {
  Harness h;
  h.all_ok(-60s);
  // eu was cut off; the others reported up to 300 s meanwhile.
  for (int s = 0; s <= 300; s += 60) {
    h.ok(kUs, std::chrono::seconds(s));
    h.ok(kAp, std::chrono::seconds(s));
  }
  // eu replays its spool: 520s at 0 and 60 s, then fine.
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  h.ok(kEu, 120s);
  h.ok(kEu, 180s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 60s", "resolved region 180s"));
}

TEST(Rechecks, RateLimitedPerCheck) {
  Settings s;
  s.recheck_min_interval = 30s;
  Harness h(s);
  h.all_ok(-60s);
  EXPECT_EQ(h.fail(kEu, 0s).rechecks.size(), 1u);
  EXPECT_THAT(h.fail(kEu, 5s).rechecks, IsEmpty()) << "not a first failure";
  h.ok(kEu, 10s);
  EXPECT_THAT(h.fail(kUs, 20s).rechecks, IsEmpty()) << "within 30 s of the last";
  h.ok(kUs, 25s);
  auto out = h.fail(kAp, 31s);
  ASSERT_EQ(out.rechecks.size(), 1u);
  EXPECT_THAT(out.rechecks[0].regions, ElementsAre("eu", "us"));
  EXPECT_EQ(out.rechecks[0].reason_probe, "ap-1");
  EXPECT_EQ(h.correlator.stats().rechecks_wanted, 2u);
  EXPECT_EQ(h.correlator.stats().rechecks_rate_limited, 1u);
}

TEST(Rechecks, NoneWithoutAnotherRegion) {
  Harness h;
  h.ok(kEu, -60s);
  EXPECT_THAT(h.fail(kEu, 0s).rechecks, IsEmpty());
}

// A scripted stream: every probe every minute from -60 s (us 5 s later),
// eu failing from 2 to 6 min, then us and eu from 20 to 23 min: a new
// outage, 12 min after the first resolved.
std::vector<Observation> scripted_stream(const Harness& h) {
  std::vector<Observation> out;
  for (int m = -1; m <= 40; ++m) {
    for (const auto& p : {kUs, kEu, kAp}) {
      const bool failing = (p.id == "eu-1" && m >= 2 && m <= 6) || ((p.id == "eu-1" || p.id == "us-1") && m >= 20 && m <= 23);
      out.push_back(h.make(p, std::chrono::minutes(m) + std::chrono::seconds(p.id == "us-1" ? 5 : 0), !failing));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Observation& a, const Observation& b) { return a.time < b.time; });
  return out;
}

struct StreamRun {
  std::vector<v1::IncidentEvent> events;
  std::map<std::string, v1::Incident> incidents;
};

// Runs the stream through a fresh correlator; with a cut, restarts at the cut
// (restoring what was saved until then and replaying the last hour).
StreamRun run_stream(const std::vector<Observation>& stream, std::optional<TimePoint> cut, bool save_incidents = true) {
  Harness h;
  StreamRun run;
  Harness* current = &h;
  std::optional<Harness> restarted;
  for (const auto& o : stream) {
    if (cut && o.time > *cut && !restarted) {
      restarted.emplace();
      std::vector<v1::Incident> saved;
      // As storage loads them: latest snapshots with their timelines.
      for (const auto& [id, inc] : current->incidents) {
        saved.push_back(inc);
        for (const auto& e : current->events) {
          if (e.incident_id() == id) *saved.back().add_timeline() = e;
        }
      }
      if (save_incidents) restarted->correlator.restore(saved, *cut);
      for (const auto& old : stream) {
        if (old.time <= *cut && old.time >= *cut - 1h) restarted->feed(old);
      }
      current = &*restarted;
    }
    current->feed(o);
  }
  // What storage would hold: events de-duplicated by (incident, type, time).
  std::set<std::tuple<std::string, int, int64_t>> seen;
  for (Harness* hh : {&h, restarted ? &*restarted : nullptr}) {
    if (!hh) continue;
    for (const auto& e : hh->events) {
      if (seen.insert({e.incident_id(), e.type(), e.time().seconds()}).second) run.events.push_back(e);
    }
    for (const auto& [id, inc] : hh->incidents) run.incidents[id] = inc;
  }
  return run;
}

std::vector<std::string> describe(const std::vector<v1::IncidentEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(fmt::format("{} {} {}", e.incident_id(), event_name(e.type()), at_text(e.time())));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Restart, RestoreAndReplayContinueTheOpenIncident) {
  Harness probe_maker;
  const auto stream = scripted_stream(probe_maker);
  const auto reference = run_stream(stream, std::nullopt);
  ASSERT_THAT(describe(reference.events),
              ::testing::UnorderedElementsAre(id_at(120s) + " opened 180s", id_at(120s) + " resolved 480s",
                                              id_at(1200s) + " opened 1205s", id_at(1200s) + " scope 1440s",
                                              id_at(1200s) + " resolved 1505s"));
  // Restart at every minute: while an incident is open, just after it
  // opened, after it resolved. Stored events are the same, never a second
  // "opened".
  for (int m = 0; m <= 40; ++m) {
    const auto cut = kT0 + std::chrono::minutes(m) + 2s;
    const auto run = run_stream(stream, cut);
    EXPECT_EQ(describe(run.events), describe(reference.events)) << "restart at " << m << " min";
    for (const auto& [id, inc] : reference.incidents) {
      ASSERT_TRUE(run.incidents.contains(id)) << id;
      EXPECT_EQ(run.incidents.at(id).state(), inc.state()) << id << " restart at " << m << " min";
    }
  }
}

TEST(Restart, NothingStoredYetReplaysToTheSameIdsAndTimes) {
  Harness probe_maker;
  const auto stream = scripted_stream(probe_maker);
  const auto reference = run_stream(stream, std::nullopt);
  // The coordinator died before it stored anything about the first outage.
  const auto run = run_stream(stream, kT0 + 4min + 2s, /*save_incidents=*/false);
  EXPECT_EQ(describe(run.events), describe(reference.events));
}

TEST(Restart, RestoredOpenOutageIsNotOpenedAgainAndResolvesOnRecovery) {
  Correlator c;
  c.upsert_check(kCheck, "shop", 60s, {});
  v1::Incident stored;
  stored.set_id(id_at(-3h));
  stored.set_check("shop");
  stored.set_kind(v1::INCIDENT_KIND_OUTAGE);
  stored.set_state(v1::INCIDENT_STATE_OPEN);
  stored.set_scope(v1::SCOPE_REGION);
  stored.set_widest_scope(v1::SCOPE_REGION);
  stored.add_affected_regions("eu");
  stored.add_affected_probes("eu-1");
  stored.mutable_diagnosis()->set_cause_id("edge_520");
  stored.mutable_diagnosis()->add_evidence("restored evidence");
  stored.set_dominant_class(v1::FAILURE_CLASS_EDGE_ERROR);
  stored.set_dominant_edge_code(520);
  stored.mutable_first_failure_time()->set_seconds((kT0 - 3h).time_since_epoch() / 1s);
  stored.mutable_confirm_time()->set_seconds((kT0 - 3h + 1min).time_since_epoch() / 1s);
  stored.set_failure_count(180);
  EXPECT_EQ(c.restore({stored}), 1u);
  ASSERT_EQ(c.open_incidents().size(), 1u);
  EXPECT_EQ(c.open_incidents()[0].check_id(), kCheck);
  Harness h;  // for make()
  std::vector<v1::IncidentEvent> events;
  for (int m = -60; m <= 0; ++m) {  // the last hour: eu still failing
    for (const auto& p : {kUs, kEu, kAp}) {
      auto out = c.observe(h.make(p, std::chrono::minutes(m), p.id != "eu-1"));
      events.insert(events.end(), out.events.begin(), out.events.end());
    }
  }
  for (const auto& e : events) EXPECT_NE(e.type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(c.open_incidents()[0].id(), id_at(-3h));
  EXPECT_EQ(c.open_incidents()[0].failure_count(), 180u + 61u);
  for (int m = 1; m <= 2; ++m) {
    auto out = c.observe(h.make(kEu, std::chrono::minutes(m), true));
    events.insert(events.end(), out.events.begin(), out.events.end());
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), v1::INCIDENT_EVENT_TYPE_RESOLVED);
  EXPECT_EQ(events.back().incident_id(), id_at(-3h));
  EXPECT_THAT(c.open_incidents(), IsEmpty());
}

TEST(Restart, RestoredTimelineCountsTowardsFlapping) {
  Correlator c;
  c.upsert_check(kCheck, "shop", 60s, {});
  v1::Incident stored;
  stored.set_id(id_at(-2h));
  stored.set_kind(v1::INCIDENT_KIND_OUTAGE);
  stored.set_state(v1::INCIDENT_STATE_RESOLVED);
  stored.mutable_first_failure_time()->set_seconds((kT0 - 2h).time_since_epoch() / 1s);
  stored.mutable_confirm_time()->set_seconds((kT0 - 2h).time_since_epoch() / 1s);
  stored.mutable_resolve_time()->set_seconds((kT0 - 5min).time_since_epoch() / 1s);
  for (Duration at : {Duration(-2h), Duration(-1h), Duration(-30min)}) {
    auto* e = stored.add_timeline();
    e->set_type(at == Duration(-2h) ? v1::INCIDENT_EVENT_TYPE_OPENED : v1::INCIDENT_EVENT_TYPE_REOPENED);
    e->mutable_time()->set_seconds((kT0 + std::chrono::duration_cast<std::chrono::seconds>(at)).time_since_epoch() / 1s);
  }
  c.restore({stored});
  Harness h;
  std::vector<v1::IncidentEvent> events;
  for (const auto& p : {kUs, kEu, kAp}) c.observe(h.make(p, -4min, true));
  for (const auto& p : {kUs, kEu, kAp}) {
    auto out = c.observe(h.make(p, 0s, false));
    events.insert(events.end(), out.events.begin(), out.events.end());
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::INCIDENT_EVENT_TYPE_REOPENED);
  EXPECT_EQ(events[0].incident_id(), id_at(-2h));
  EXPECT_EQ(events[1].type(), v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED);
}

// ---------------------------------------------------------------------------
// Settings

TEST(Settings, CheckSettingsOverrideTheDefaults) {
  Settings defaults;
  defaults.recurring_min = 5;
  v1::Check check;
  auto* c = check.mutable_correlation();
  c->set_confirm_consecutive(3);
  c->set_global_quorum(0);  // zero: keep the default
  *c->mutable_reopen_within() = to_duration(std::chrono::minutes(30));
  *c->mutable_stale_after() = to_duration(std::chrono::seconds(0));
  const auto s = settings_for(check, defaults);
  EXPECT_EQ(s.confirm_consecutive, 3u);
  EXPECT_EQ(s.resolve_consecutive, 2u);
  EXPECT_EQ(s.global_quorum, 0u);
  EXPECT_EQ(s.reopen_within, std::chrono::minutes(30));
  EXPECT_EQ(s.stale_after, Duration(0));
  EXPECT_EQ(s.recurring_min, 5u);
  EXPECT_EQ(s.flapping_outages, 3u);
}

TEST(Settings, ConfirmConsecutiveThreeWaitsForTheThird) {
  Settings s;
  s.confirm_consecutive = 3;
  Harness h(s);
  h.all_ok(-60s);
  h.fail(kEu, 0s);
  h.fail(kEu, 60s);
  EXPECT_THAT(h.events, IsEmpty());
  h.fail(kEu, 120s);
  EXPECT_THAT(h.log(), ElementsAre("opened region 120s"));
}

TEST(FromResult, ReadsTheEdgeLegOriginLegAndDiagnosis) {
  v1::CheckResult r;
  r.set_check_id(42);
  r.mutable_start_time()->set_seconds(1'700'000'000);
  r.mutable_start_time()->set_nanos(5'000'000);
  auto* edge = r.mutable_edge();
  edge->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
  edge->mutable_edge()->set_edge_code(520);
  edge->mutable_edge()->set_colo("FRA");
  edge->mutable_edge()->set_ray_id("8f1a2b3c4d5e6f70");
  edge->mutable_timings()->set_time_to_error_us(1234);
  r.mutable_origin()->set_failure_class(v1::FAILURE_CLASS_OK);
  r.mutable_diagnosis()->set_cause_id("edge_only_520");
  r.set_recheck_request_id("rq-1");
  *r.mutable_keep_alive()->mutable_idle_close_after() = to_duration(std::chrono::seconds(5));
  const auto o = from_result(r, "eu-1", "eu");
  EXPECT_EQ(o.check_id, 42);
  EXPECT_EQ(o.probe_id, "eu-1");
  EXPECT_EQ(o.region, "eu");
  EXPECT_EQ(o.time, kT0 + 5ms);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.edge_code, 520u);
  EXPECT_EQ(o.colo, "FRA");
  EXPECT_EQ(o.ray_id, "8f1a2b3c4d5e6f70");
  EXPECT_EQ(o.time_to_error, std::chrono::microseconds(1234));
  EXPECT_EQ(o.origin_class, v1::FAILURE_CLASS_OK);
  EXPECT_EQ(o.cause_id, "edge_only_520");
  EXPECT_TRUE(o.recheck);
  ASSERT_TRUE(o.keep_alive);
  EXPECT_EQ(o.keep_alive->idle_close_after, std::chrono::seconds(5));

  v1::CheckResult fine;
  fine.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT);
  fine.mutable_edge()->mutable_edge()->set_trace_colo("AMS");
  const auto f = from_result(fine, "p", "r");
  EXPECT_TRUE(f.ok) << "near the header limit is a warning, not a failure";
  EXPECT_EQ(f.colo, "AMS");
  EXPECT_FALSE(f.origin_class);
}

TEST(Checks, UnknownAndRemovedChecksAreIgnored) {
  Harness h;
  auto o = h.make(kEu, 0s, false);
  o.check_id = 99;
  EXPECT_TRUE(h.correlator.observe(o).empty());
  h.correlator.remove_check(kCheck);
  EXPECT_TRUE(h.correlator.observe(h.make(kEu, 0s, false)).empty());
  EXPECT_EQ(h.correlator.stats().unknown_check, 2u);
}

// ---------------------------------------------------------------------------
// Properties over random result streams

struct SimProbe {
  Probe p;
  int offset_s;  // within the interval
};

struct Sim {
  std::vector<SimProbe> probes;
  std::vector<std::string> regions;
  std::vector<Observation> stream;  // in time order
};

// Regions whose health changes at random (healthy, degraded, down), probes
// that sometimes go silent, occasional rechecks.
Sim random_stream(uint32_t seed, bool colos, int rounds) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  Sim sim;
  const int regions = uniform(2, 5);
  const std::vector<std::string> colo_names = {"FRA", "AMS", "IAD", "SIN", "GRU"};
  for (int r = 0; r < regions; ++r) {
    sim.regions.push_back(fmt::format("r{}", r));
    const int n = uniform(1, 2);
    for (int k = 0; k < n; ++k) {
      std::string colo = colos ? colo_names[static_cast<size_t>(uniform(0, 4))] : "";
      sim.probes.push_back({Probe{fmt::format("r{}-p{}", r, k), sim.regions.back(), colo}, uniform(0, 59)});
    }
  }
  std::vector<int> mode(static_cast<size_t>(regions), 0);  // 0 healthy, 1 degraded, 2 down
  bool global_down = false;
  std::vector<int> silent(sim.probes.size(), 0);
  Harness maker;
  for (int round = 0; round < rounds; ++round) {
    for (auto& m : mode) {
      if (chance(0.04)) m = uniform(0, 2);
    }
    if (chance(0.02)) global_down = !global_down;
    std::vector<std::pair<int, Observation>> batch;
    for (size_t i = 0; i < sim.probes.size(); ++i) {
      if (silent[i] > 0) {
        --silent[i];
        continue;
      }
      if (chance(0.01)) silent[i] = uniform(1, 6);
      const auto& sp = sim.probes[i];
      const size_t r = static_cast<size_t>(std::stoi(sp.p.region.substr(1)));
      const double p_fail = global_down ? 0.95 : mode[r] == 2 ? 0.97 : mode[r] == 1 ? 0.4 : 0.03;
      const bool ok = !chance(p_fail);
      const int at = round * 60 + sp.offset_s;
      batch.emplace_back(at, maker.make(sp.p, std::chrono::seconds(at), ok, chance(0.8) ? 520 : 522));
      if (!ok && chance(0.5)) {  // rechecks from the other regions, a second later
        for (const auto& other : sim.probes) {
          if (other.p.region == sp.p.region) continue;
          const size_t orr = static_cast<size_t>(std::stoi(other.p.region.substr(1)));
          const bool other_ok = !chance(global_down ? 0.95 : mode[orr] == 2 ? 0.97 : mode[orr] == 1 ? 0.4 : 0.03);
          batch.emplace_back(at + 1, maker.make(other.p, std::chrono::seconds(at + 1), other_ok, 520, true));
        }
      }
    }
    std::vector<size_t> order(batch.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return batch[a].first < batch[b].first; });
    for (size_t i : order) sim.stream.push_back(std::move(batch[i].second));
  }
  return sim;
}

// What the latest fresh results say, independently of the correlator.
struct Evidence {
  size_t failing_probes = 0;
  size_t failing_regions = 0;
  size_t reporting_regions = 0;
};

struct Latest {
  TimePoint time;
  bool ok;
  int trailing_ok = 0;
  int trailing_fail = 0;
};

Evidence evidence_at(const std::map<std::string, Latest>& latest, const Sim& sim, TimePoint as_of, Duration stale_after) {
  Evidence e;
  for (const auto& region : sim.regions) {
    size_t fresh = 0, failing = 0;
    for (const auto& sp : sim.probes) {
      if (sp.p.region != region) continue;
      auto it = latest.find(sp.p.id);
      if (it == latest.end() || as_of - it->second.time > stale_after) continue;
      ++fresh;
      failing += !it->second.ok;
    }
    e.failing_probes += failing;
    if (fresh > 0) ++e.reporting_regions;
    if (fresh > 0 && failing == fresh) ++e.failing_regions;
  }
  return e;
}

v1::Scope narrowest_allowed(const Evidence& e, bool colos) {
  const size_t quorum = std::max<size_t>(2, (e.reporting_regions + 1) / 2);
  if (e.failing_regions >= quorum) return v1::SCOPE_GLOBAL;
  if (e.failing_regions > 0) return colos ? v1::SCOPE_COLO : v1::SCOPE_REGION;
  return v1::SCOPE_PROBE;
}

void check_properties(uint32_t seed, bool colos) {
  SCOPED_TRACE(fmt::format("seed {} colos {}", seed, colos));
  const Sim sim = random_stream(seed, colos, 300);
  const Settings settings;
  const Duration interval = 60s;
  const Duration stale_after = 150s;
  Harness h(settings, interval);
  std::map<std::string, Latest> latest;
  std::map<std::string, std::vector<TimePoint>> episode_starts;  // per probe
  std::map<v1::IncidentKind, std::string> open_by_kind;
  TimePoint last_tick = kT0;

  // Scope never narrower than the evidence, checked whenever the correlator
  // re-evaluated an open outage (a result touching it, or a tick).
  auto check_open_scopes = [&](TimePoint as_of, const Output& out) {
    for (const auto& inc : out.changed) {
      if (inc.kind() != v1::INCIDENT_KIND_OUTAGE || inc.state() != v1::INCIDENT_STATE_OPEN) continue;
      const auto e = evidence_at(latest, sim, as_of, stale_after);
      EXPECT_GE(inc.widest_scope(), inc.scope());
      if (e.failing_probes == 0) continue;
      const auto allowed = narrowest_allowed(e, colos);
      EXPECT_GE(inc.scope(), allowed) << "scope " << scope_text(inc.scope()) << " narrower than the evidence ("
                                      << e.failing_regions << " of " << e.reporting_regions << " regions failing) at "
                                      << (as_of - kT0) / 1s << "s";
      if (!colos) {
        EXPECT_EQ(inc.scope(), allowed) << "at " << (as_of - kT0) / 1s << "s";
      }
    }
  };

  // Read in time order (ties in emission order), a timeline begins with its
  // opening and never goes back in time.
  std::map<std::string, TimePoint> last_stamp;
  auto check_stamps = [&](const Output& out) {
    for (const auto& e : out.events) {
      const auto t = from_timestamp(e.time());
      auto [it, first] = last_stamp.emplace(e.incident_id(), t);
      if (first) {
        EXPECT_EQ(e.type(), v1::INCIDENT_EVENT_TYPE_OPENED) << e.incident_id();
      } else {
        EXPECT_GE(t, it->second) << e.incident_id() << " " << event_name(e.type());
        it->second = t;
      }
    }
  };

  for (const auto& o : sim.stream) {
    // Ticks every 20 s of stream time, as the coordinator would.
    while (o.time - last_tick >= 20s) {
      last_tick += 20s;
      auto out = h.tick(std::chrono::duration_cast<Duration>(last_tick - kT0));
      check_stamps(out);
      for (const auto& e : out.events) {
        EXPECT_NE(e.type(), v1::INCIDENT_EVENT_TYPE_OPENED) << "a tick opens nothing";
        if (e.type() == v1::INCIDENT_EVENT_TYPE_RESOLVED) open_by_kind.erase(h.incidents.at(e.incident_id()).kind());
      }
      check_open_scopes(last_tick, out);
    }
    auto& l = latest[o.probe_id];
    const bool late = l.time != TimePoint{} && o.time <= l.time;
    if (!late) {
      if (!o.ok && (l.time == TimePoint{} || l.ok)) episode_starts[o.probe_id].push_back(o.time);
      l.trailing_ok = o.ok ? l.trailing_ok + 1 : 0;
      l.trailing_fail = o.ok ? 0 : l.trailing_fail + 1;
      l.time = o.time;
      l.ok = o.ok;
    }
    auto out = h.feed(o);
    check_stamps(out);
    for (const auto& e : out.events) {
      const auto& inc = h.incidents.at(e.incident_id());
      if (e.type() == v1::INCIDENT_EVENT_TYPE_OPENED || e.type() == v1::INCIDENT_EVENT_TYPE_REOPENED) {
        EXPECT_FALSE(open_by_kind.contains(inc.kind())) << "two open incidents of one kind";
        open_by_kind[inc.kind()] = inc.id();
        if (inc.kind() == v1::INCIDENT_KIND_OUTAGE) {
          // No outage without a confirmed failure: this failure is the
          // confirm_consecutive-th of its probe, or matches a failure of
          // another region within one interval.
          ASSERT_FALSE(o.ok) << "opened on a success";
          bool matched = l.trailing_fail >= static_cast<int>(settings.confirm_consecutive);
          for (const auto& sp : sim.probes) {
            if (sp.p.region == o.region) continue;
            auto it = latest.find(sp.p.id);
            if (it != latest.end() && !it->second.ok &&
                (it->second.time > o.time ? it->second.time - o.time : o.time - it->second.time) <= interval) {
              matched = true;
            }
          }
          EXPECT_TRUE(matched) << "outage opened without confirmation at " << (o.time - kT0) / 1s << "s";
        } else {
          // recurring_min failure episodes within the window before it.
          const auto t = TimePoint(std::chrono::seconds(e.time().seconds()) + std::chrono::nanoseconds(e.time().nanos()));
          size_t episodes = 0;
          for (const auto& [probe, starts] : episode_starts) {
            for (auto s : starts) episodes += s <= t && s >= t - settings.recurring_window;
          }
          EXPECT_GE(episodes, settings.recurring_min) << "intermittent without recurrence";
        }
      } else if (e.type() == v1::INCIDENT_EVENT_TYPE_RESOLVED) {
        open_by_kind.erase(inc.kind());
      }
    }
    for (const auto& inc : out.changed) {
      EXPECT_GE(inc.failure_count(), 1u);
      EXPECT_LE(inc.first_failure_time().seconds(), inc.confirm_time().seconds());
    }
    check_open_scopes(o.time, out);
    // Recovered everywhere for long enough: no outage may stay open.
    bool all_recovered = true;
    for (const auto& [probe, lt] : latest) {
      all_recovered &= lt.ok && lt.trailing_ok >= static_cast<int>(settings.resolve_consecutive);
    }
    if (all_recovered) {
      EXPECT_FALSE(open_by_kind.contains(v1::INCIDENT_KIND_OUTAGE))
          << "every probe recovered but the outage is open at " << (o.time - kT0) / 1s << "s";
    }
  }
  // Everything recovers; ticks carry time past every window.
  const auto end = std::chrono::duration_cast<Duration>(sim.stream.back().time - kT0);
  for (int round = 1; round <= 3; ++round) {
    for (const auto& sp : sim.probes) h.ok(sp.p, end + std::chrono::minutes(round) + std::chrono::seconds(sp.offset_s));
  }
  h.tick(end + 3h);
  EXPECT_THAT(h.correlator.open_incidents(), IsEmpty());
  for (const auto& [id, inc] : h.incidents) EXPECT_EQ(inc.state(), v1::INCIDENT_STATE_RESOLVED) << id;
}

// VANTAGE_CORRELATOR_SEEDS if set, else `fallback`.
uint32_t seed_count(uint32_t fallback) {
  const char* env = std::getenv("VANTAGE_CORRELATOR_SEEDS");
  return env ? static_cast<uint32_t>(std::atoi(env)) : fallback;
}

TEST(Properties, RandomStreamsWithoutColos) {
  const uint32_t seeds = seed_count(12);
  for (uint32_t seed = 1; seed <= seeds; ++seed) check_properties(seed, false);
}

TEST(Properties, RandomStreamsWithColos) {
  const uint32_t seeds = seed_count(12);
  for (uint32_t seed = 1001; seed < 1001 + seeds; ++seed) check_properties(seed, true);
}

TEST(Properties, SameStreamSameEvents) {
  for (uint32_t seed : {3u, 17u}) {
    const Sim sim = random_stream(seed, true, 200);
    auto run = [&] {
      Harness h;
      for (const auto& o : sim.stream) h.feed(o);
      return describe(h.events);
    };
    EXPECT_EQ(run(), run()) << "seed " << seed;
  }
}

TEST(Properties, BatchesOpenTheSameIncidentsInOrderedTimelines) {
  for (uint32_t seed = 501; seed < 501 + seed_count(12); ++seed) {
    SCOPED_TRACE(fmt::format("seed {}", seed));
    const Sim sim = random_stream(seed, seed % 2 == 0, 200);
    Harness single, batched;
    for (const auto& o : sim.stream) single.feed(o);
    std::mt19937 rng(seed);
    for (size_t i = 0; i < sim.stream.size();) {
      const size_t n = std::min<size_t>(sim.stream.size() - i, std::uniform_int_distribution<size_t>(1, 12)(rng));
      batched.feed_batch(std::vector<Observation>(sim.stream.begin() + static_cast<std::ptrdiff_t>(i),
                                                  sim.stream.begin() + static_cast<std::ptrdiff_t>(i + n)));
      i += n;
    }
    // The same decisions; only what a batch folds into an opening differs.
    auto ids = [](const Harness& h) {
      std::vector<std::string> out;
      for (const auto& [id, inc] : h.incidents) out.push_back(fmt::format("{} {}", id, inc.state()));
      return out;
    };
    EXPECT_EQ(ids(batched), ids(single));
    auto count = [](const Harness& h, v1::IncidentEventType type) {
      return std::count_if(h.events.begin(), h.events.end(), [&](const auto& e) { return e.type() == type; });
    };
    for (auto type :
         {v1::INCIDENT_EVENT_TYPE_OPENED, v1::INCIDENT_EVENT_TYPE_REOPENED, v1::INCIDENT_EVENT_TYPE_RESOLVED}) {
      EXPECT_EQ(count(batched, type), count(single, type)) << event_name(type);
    }
    EXPECT_LE(count(batched, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED),
              count(single, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED));
    std::map<std::string, TimePoint> last;
    for (const auto& e : batched.events) {
      const auto t = from_timestamp(e.time());
      auto [it, first] = last.emplace(e.incident_id(), t);
      if (first) {
        EXPECT_EQ(e.type(), v1::INCIDENT_EVENT_TYPE_OPENED);
      } else {
        EXPECT_GE(t, it->second) << e.incident_id() << " " << event_name(e.type());
        it->second = t;
      }
    }
  }
}

TEST(Properties, RestartAnywhereNeverOpensAStoredIncidentAgain) {
  const uint32_t last_seed = 200 + seed_count(8);
  for (uint32_t seed = 201; seed <= last_seed; ++seed) {
    const Sim sim = random_stream(seed, seed % 2 == 0, 200);
    const auto reference = run_stream(sim.stream, std::nullopt);
    std::set<std::string> reference_ids;
    for (const auto& [id, inc] : reference.incidents) reference_ids.insert(id);
    std::mt19937 rng(seed);
    for (int cut_min : {30, 77, 150, std::uniform_int_distribution<int>(1, 199)(rng)}) {
      const auto run = run_stream(sim.stream, kT0 + std::chrono::minutes(cut_min) + 7s);
      std::map<std::string, int> opened;
      for (const auto& e : run.events) opened[e.incident_id()] += e.type() == v1::INCIDENT_EVENT_TYPE_OPENED;
      for (const auto& [id, n] : opened) EXPECT_LE(n, 1) << "seed " << seed << " cut " << cut_min << " id " << id;
      // The same timeline as without a restart, but for the cause of an
      // intermittent incident: after a restart it rests on the stored
      // summary of the episodes, not on every episode.
      auto comparable = [&](const StreamRun& r) {
        std::vector<v1::IncidentEvent> out;
        for (const auto& e : r.events) {
          const auto it = r.incidents.find(e.incident_id());
          if (e.type() == v1::INCIDENT_EVENT_TYPE_CAUSE_CHANGED && it != r.incidents.end() &&
              it->second.kind() == v1::INCIDENT_KIND_INTERMITTENT) {
            continue;
          }
          out.push_back(e);
        }
        return describe(out);
      };
      EXPECT_EQ(comparable(run), comparable(reference)) << "seed " << seed << " cut " << cut_min;
      for (const auto& [id, inc] : run.incidents) {
        // Incidents up to the cut keep their ids.
        if (TimePoint(std::chrono::seconds(inc.first_failure_time().seconds())) < kT0 + std::chrono::minutes(cut_min)) {
          EXPECT_TRUE(reference_ids.contains(id)) << "seed " << seed << " cut " << cut_min << " id " << id;
        }
      }
    }
  }
}

}  // namespace
}  // namespace vantage::correlation
