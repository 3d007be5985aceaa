// Restart alone (coordinator/correlation/restart.h): what a stored incident
// and its timeline give back to a restarted correlator.

#include "coordinator/correlation/restart.h"

#include <gtest/gtest.h>

#include "common/proto_time.h"

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));

void add_event(v1::Incident& s, v1::IncidentEventType type, TimePoint t) {
  auto* e = s.add_timeline();
  e->set_type(type);
  *e->mutable_time() = to_timestamp(t);
}

v1::Incident stored_outage(bool open) {
  v1::Incident s;
  s.set_id("7-1700000000000");
  s.set_kind(v1::INCIDENT_KIND_OUTAGE);
  s.set_state(open ? v1::INCIDENT_STATE_OPEN : v1::INCIDENT_STATE_RESOLVED);
  s.add_affected_probes("eu-1");
  *s.mutable_first_failure_time() = to_timestamp(kT0);
  *s.mutable_confirm_time() = to_timestamp(kT0 + 60s);
  if (!open) *s.mutable_resolve_time() = to_timestamp(kT0 + 5min);
  return s;
}

TEST(CheckOf, TheCheckIdElseTheIdsPrefix) {
  v1::Incident s;
  s.set_id("42-1700000000000");
  EXPECT_EQ(check_of(s), 42);
  s.set_check_id(7);
  EXPECT_EQ(check_of(s), 7);
  s.set_check_id(0);
  s.set_id("shop");
  EXPECT_EQ(check_of(s), std::nullopt);
  s.set_id("42");
  EXPECT_EQ(check_of(s), std::nullopt);
}

TEST(FromProto, AResolvedIncidentWithoutAResolveTimeResolvedAtItsConfirmation) {
  auto s = stored_outage(false);
  s.clear_resolve_time();
  const Incident inc = from_proto(s);
  EXPECT_TRUE(inc.restored);
  EXPECT_FALSE(inc.open);
  ASSERT_TRUE(inc.resolve);
  EXPECT_EQ(*inc.resolve, kT0 + 60s);
}

TEST(History, OpeningsSpansAndTheNewestTimeFromTheTimeline) {
  auto s = stored_outage(true);
  add_event(s, v1::INCIDENT_EVENT_TYPE_RESOLVED, kT0 + 5min);  // out of order: sorted
  add_event(s, v1::INCIDENT_EVENT_TYPE_OPENED, kT0 + 60s);
  add_event(s, v1::INCIDENT_EVENT_TYPE_REOPENED, kT0 + 8min);
  add_event(s, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED, kT0 + 9min);
  const Incident inc = from_proto(s);
  const History h = history_of(s, inc);
  ASSERT_EQ(h.starts.size(), 2u);
  EXPECT_EQ(h.starts[1].time, kT0 + 8min);
  ASSERT_EQ(h.outage_spans.size(), 2u);
  EXPECT_EQ(h.outage_spans[0], Span(kT0 + 60s, kT0 + 5min));
  EXPECT_EQ(h.outage_spans[1], Span(kT0 + 8min, TimePoint::max()));  // still open
  EXPECT_EQ(h.known, kT0 + 9min);
}

TEST(History, WithoutATimelineTheSummarysTimes) {
  const auto s = stored_outage(false);
  const History h = history_of(s, from_proto(s));
  ASSERT_EQ(h.starts.size(), 1u);
  EXPECT_EQ(h.starts[0].time, kT0 + 60s);
  ASSERT_EQ(h.outage_spans.size(), 1u);
  EXPECT_EQ(h.outage_spans[0], Span(kT0, kT0 + 5min));
  EXPECT_EQ(h.known, kT0 + 5min);
}

TEST(Settle, AnOpenOutagesProbesOweTheirRecoveryAndItsSpanEndsWithTheKnowledge) {
  CheckState cs;
  cs.outage = from_proto(stored_outage(true));
  cs.restored_until = kT0 + 60s;
  cs.restored_spans.emplace_back(kT0, TimePoint::max());
  settle_restored(cs);
  ASSERT_EQ(cs.probes.size(), 1u);
  EXPECT_EQ(cs.probes[0].id, "eu-1");
  EXPECT_TRUE(cs.probes[0].owes_recovery);
  EXPECT_EQ(cs.restored_spans[0].second, kT0 + 60s + TimePoint::duration(1));
}

}  // namespace
}  // namespace vantage::correlation
