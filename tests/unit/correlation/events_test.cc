// Events alone (coordinator/correlation/events.h): openings announced once
// with what the call showed, stamps that never go back, flapping with the
// opening that makes it.

#include "coordinator/correlation/events.h"

#include <gtest/gtest.h>

#include "common/proto_time.h"

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));

struct OneOutage {
  CheckState cs;
  Incident& inc;
  OneOutage() : inc(cs.outage.emplace()) {
    cs.interval = 60s;
    inc.id = "7-1700000000000";
    inc.scope = inc.widest = v1::SCOPE_REGION;
  }
};

TimePoint at(const v1::IncidentEvent& e) { return from_timestamp(e.time()); }

TEST(Opening, AChangeWithinOneIntervalIsFoldedIntoTheOneOpenedEvent) {
  OneOutage o;
  Call call;
  defer_opening(call, o.cs, o.inc, v1::INCIDENT_EVENT_TYPE_OPENED, kT0, 0);
  change_scope(call, o.cs, o.inc, v1::SCOPE_GLOBAL, kT0 + 1s, /*silent=*/false);
  EXPECT_TRUE(call.out.events.empty());
  finish(call);
  ASSERT_EQ(call.out.events.size(), 1u);
  EXPECT_EQ(call.out.events[0].type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(call.out.events[0].scope(), v1::SCOPE_GLOBAL);
  EXPECT_EQ(at(call.out.events[0]), kT0 + 1s);  // the latest result folded in
  ASSERT_EQ(call.out.changed.size(), 1u);
  EXPECT_EQ(call.out.changed[0].widest_scope(), v1::SCOPE_GLOBAL);
}

TEST(Opening, ALaterChangeAnnouncesTheOpeningFirst) {
  OneOutage o;
  Call call;
  defer_opening(call, o.cs, o.inc, v1::INCIDENT_EVENT_TYPE_OPENED, kT0, 0);
  change_scope(call, o.cs, o.inc, v1::SCOPE_GLOBAL, kT0 + 61s, /*silent=*/false);
  finish(call);
  ASSERT_EQ(call.out.events.size(), 2u);
  EXPECT_EQ(call.out.events[0].type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(at(call.out.events[0]), kT0);
  EXPECT_EQ(call.out.events[1].type(), v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED);
  EXPECT_EQ(at(call.out.events[1]), kT0 + 61s);
  EXPECT_EQ(call.out.changed.size(), 1u);  // one snapshot per incident
}

TEST(Opening, ASilentChangeIsAppliedWithoutAnEvent) {
  OneOutage o;
  Call call;
  change_scope(call, o.cs, o.inc, v1::SCOPE_GLOBAL, kT0, /*silent=*/true);
  finish(call);
  EXPECT_TRUE(call.out.events.empty());
  ASSERT_EQ(call.out.changed.size(), 1u);
  EXPECT_EQ(call.out.changed[0].scope(), v1::SCOPE_GLOBAL);
}

TEST(Stamps, AnEventIsNeverStampedBeforeTheIncidentsPreviousOne) {
  OneOutage o;
  o.inc.last_stamp = kT0 + 10s;
  Call call;
  emit(call, o.cs, o.inc, v1::INCIDENT_EVENT_TYPE_RESOLVED, kT0, "resolved");
  ASSERT_EQ(call.out.events.size(), 1u);
  EXPECT_EQ(at(call.out.events[0]), kT0 + 10s);
}

TEST(Flapping, TheFourthOutageIn24hIsAnnouncedWithItsOpening) {
  OneOutage o;
  for (auto ago : {3h, 2h, 1h}) o.cs.starts.push_back({kT0 - ago, v1::INCIDENT_KIND_OUTAGE});
  Call call;
  defer_opening(call, o.cs, o.inc, v1::INCIDENT_EVENT_TYPE_REOPENED, kT0, 0);
  finish(call);
  ASSERT_EQ(call.out.events.size(), 2u);
  EXPECT_EQ(call.out.events[0].type(), v1::INCIDENT_EVENT_TYPE_REOPENED);
  EXPECT_EQ(call.out.events[1].type(), v1::INCIDENT_EVENT_TYPE_FLAPPING_CHANGED);
  EXPECT_TRUE(o.inc.flapping);
  EXPECT_EQ(o.inc.recurrence_24h, 4u);
}

}  // namespace
}  // namespace vantage::correlation
