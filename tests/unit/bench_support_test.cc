// The benches' cheap WatchIncidents subscriber reads only the event_id of
// each response from its bytes (bench/support.h watch_event_id): it must
// agree with a full parse, or the benches' in-order checks would mean nothing.
#include <gtest/gtest.h>

#include "bench/support.h"

namespace vantage::bench {
namespace {

int64_t event_id_of(const std::string& bytes) {
  return watch_event_id(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(WatchEventId, AgreesWithAFullParseOfWhatTheCoordinatorSends) {
  for (int64_t id : {int64_t{1}, int64_t{127}, int64_t{128}, int64_t{1} << 40, int64_t{9'223'372'036'854'775'807}}) {
    v1::WatchIncidentsResponse response;
    response.mutable_event()->set_incident_id("7-1000");
    response.mutable_event()->set_event_id(id);
    response.mutable_event()->set_type(v1::INCIDENT_EVENT_TYPE_OPENED);
    response.mutable_event()->mutable_diagnosis()->add_evidence("edge 520 from FRA");
    response.mutable_incident()->set_id("7-1000");
    response.mutable_incident()->set_check("shop");
    response.mutable_incident()->add_sample_ray_ids("8f1a2b3c4d5e6f70-FRA");
    const auto bytes = response.SerializeAsString();
    v1::WatchIncidentsResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    EXPECT_EQ(event_id_of(bytes), parsed.event().event_id()) << id;
  }
}

TEST(WatchEventId, FindsTheEventWhereverItIsAndTakesTheLastAsAParseDoes) {
  v1::WatchIncidentsResponse incident_only;
  incident_only.mutable_incident()->set_check("shop");
  v1::WatchIncidentsResponse first, second;
  first.mutable_event()->set_event_id(5);
  second.mutable_event()->set_event_id(6);
  // The incident before the event, and the event twice (a parse merges: 6).
  const auto bytes = incident_only.SerializeAsString() + first.SerializeAsString() + second.SerializeAsString();
  v1::WatchIncidentsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.event().event_id(), 6);
  EXPECT_EQ(event_id_of(bytes), 6);
}

TEST(WatchEventId, IsZeroWithoutAnEventAndRefusesWhatIsNotAMessage) {
  EXPECT_EQ(event_id_of(""), 0);
  v1::WatchIncidentsResponse no_event;
  no_event.mutable_incident()->set_check("shop");
  EXPECT_EQ(event_id_of(no_event.SerializeAsString()), 0);

  v1::WatchIncidentsResponse response;
  response.mutable_event()->set_event_id(300);
  const auto bytes = response.SerializeAsString();
  EXPECT_EQ(event_id_of(bytes.substr(0, bytes.size() - 1)), -1) << "cut short";
  EXPECT_EQ(event_id_of(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)), -1) << "not a tag";
  EXPECT_EQ(event_id_of(std::string("\x0a\x05\x10", 3)), -1) << "an event longer than the bytes";
}

}  // namespace
}  // namespace vantage::bench
