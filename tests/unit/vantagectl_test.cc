// vantagectl's pure helpers: the plan of `checks apply`, flag parsing, and
// what it prints for people (times, durations, tables, hostile text).
#include <gtest/gtest.h>

#include "cli/apply_plan.h"
#include "cli/client.h"
#include "cli/format.h"
#include "common/check_config.h"
#include "common/proto_time.h"

namespace vantage::ctl {
namespace {

using namespace std::chrono_literals;
using Action = PlannedChange::Action;

v1::Check check(const std::string& name, v1::CheckSource source = v1::CHECK_SOURCE_API) {
  v1::Check c;
  c.set_name(name);
  c.set_url("https://" + name + ".example.com/");
  *c.mutable_interval() = to_duration(30s);
  std::string problem;
  EXPECT_TRUE(normalize_check(c, &problem)) << problem;  // defaults filled, as load_checks_file() does
  c.set_source(source);
  return c;
}

TEST(ChangedFields, IgnoresWhatTheCoordinatorAssigns) {
  auto stored = check("shop");
  stored.set_id(42);
  stored.set_version(7);
  *stored.mutable_create_time() = to_timestamp(std::chrono::system_clock::now());
  *stored.mutable_update_time() = to_timestamp(std::chrono::system_clock::now());
  auto desired = check("shop", v1::CHECK_SOURCE_UNSPECIFIED);
  EXPECT_TRUE(changed_fields(stored, desired).empty());
}

TEST(ChangedFields, NamesEachFieldThatDiffersInProtoOrder) {
  auto stored = check("shop");
  auto desired = stored;
  *desired.mutable_interval() = to_duration(60s);
  (*desired.mutable_labels())["team"] = "shop";
  desired.set_url("https://shop.example.com/new");
  EXPECT_EQ(changed_fields(stored, desired), (std::vector<std::string>{"url", "interval", "labels"}));
}

TEST(ChangedFields, MapsCompareAsMapsAndAnEmptyMessageIsUnset) {
  auto a = check("shop");
  auto b = a;
  (*a.mutable_labels())["team"] = "shop";
  (*a.mutable_labels())["tier"] = "1";
  (*b.mutable_labels())["tier"] = "1";
  (*b.mutable_labels())["team"] = "shop";
  b.mutable_origin();       // set, but empty
  b.mutable_correlation();  // idem
  EXPECT_TRUE(changed_fields(a, b).empty());
  b.mutable_correlation()->set_confirm_consecutive(3);
  EXPECT_EQ(changed_fields(a, b), std::vector<std::string>{"correlation"});
}

TEST(ChangedFields, RegionOrderIsADifference) {
  auto a = check("shop");
  a.add_regions("us");
  a.add_regions("eu");
  auto b = check("shop");
  b.add_regions("eu");
  b.add_regions("us");
  EXPECT_EQ(changed_fields(a, b), std::vector<std::string>{"regions"});
}

TEST(PlanApply, CreatesUpdatesAndKeepsWhatTheFileDoesNotNameWithoutPrune) {
  auto changed = check("b");
  *changed.mutable_interval() = to_duration(2min);
  auto stored_b = check("b");
  stored_b.set_version(4);
  const std::vector<v1::Check> desired{check("c"), changed, check("a", v1::CHECK_SOURCE_UNSPECIFIED),
                                       check("home", v1::CHECK_SOURCE_UNSPECIFIED)};
  const std::vector<v1::Check> stored{check("a"), stored_b, check("home", v1::CHECK_SOURCE_FILE), check("old"),
                                      check("filed", v1::CHECK_SOURCE_FILE)};
  const auto plan = plan_apply(desired, stored, /*prune=*/false);
  ASSERT_EQ(plan.size(), 5u);  // "filed" is the coordinator file's business alone
  EXPECT_EQ(plan[0].name, "a");
  EXPECT_EQ(plan[0].action, Action::kUnchanged);
  EXPECT_EQ(plan[1].name, "b");
  EXPECT_EQ(plan[1].action, Action::kUpdate);
  EXPECT_EQ(plan[1].expected_version, 4);
  EXPECT_EQ(plan[1].fields, std::vector<std::string>{"interval"});
  EXPECT_EQ(plan[1].desired.interval().seconds(), 120);
  EXPECT_EQ(plan[2].name, "c");
  EXPECT_EQ(plan[2].action, Action::kCreate);
  EXPECT_EQ(plan[3].name, "home");
  EXPECT_EQ(plan[3].action, Action::kFileOwned);
  EXPECT_EQ(plan[4].name, "old");
  EXPECT_EQ(plan[4].action, Action::kNotInFile);

  EXPECT_EQ(describe(plan[0]), "");
  EXPECT_EQ(describe(plan[1]), "~ b (interval)");
  EXPECT_EQ(describe(plan[2]), "+ c");
  EXPECT_EQ(describe(plan[3]).rfind("! home (owned by the coordinator's checks file", 0), 0u) << describe(plan[3]);
  EXPECT_EQ(describe(plan[4]).rfind("? old (not in the file", 0), 0u) << describe(plan[4]);
  EXPECT_EQ(std::count_if(plan.begin(), plan.end(), is_change), 2);
}

TEST(PlanApply, PruneDeletesOnlyApiChecks) {
  const auto plan = plan_apply({}, {check("old"), check("home", v1::CHECK_SOURCE_FILE)}, /*prune=*/true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].action, Action::kDelete);
  EXPECT_EQ(describe(plan[0]), "- old");
  EXPECT_EQ(action_name(plan[0].action), "delete");
}

TEST(PlanApply, AFileThatMatchesChangesNothing) {
  const auto plan = plan_apply({check("a"), check("b")}, {check("b"), check("a")}, /*prune=*/true);
  ASSERT_EQ(plan.size(), 2u);
  for (const auto& c : plan) EXPECT_EQ(c.action, Action::kUnchanged) << c.name;
}

TEST(CliDuration, ReadsTheChecksFileNotationAndDays) {
  EXPECT_EQ(parse_cli_duration("30s"), 30s);
  EXPECT_EQ(parse_cli_duration("1m30s"), 90s);
  EXPECT_EQ(parse_cli_duration("500ms"), 500ms);
  EXPECT_EQ(parse_cli_duration("24h"), 24h);
  EXPECT_EQ(parse_cli_duration("7d"), std::chrono::hours(7 * 24));
  EXPECT_EQ(parse_cli_duration("1d12h"), 36h);
  for (const char* bad : {"", "0s", "0d", "30", "d", "7dd", "-1s", "1d-1h", "x7d", "1.5h", "99999999999d", "1 h"}) {
    EXPECT_FALSE(parse_cli_duration(bad)) << bad;
  }
}

TEST(Since, IsADurationBackOrAnRfc3339Time) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'796'040'000));
  auto ago = parse_since("90m", now);
  ASSERT_TRUE(ago);
  EXPECT_EQ(ago->seconds(), 1'796'040'000 - 5400);
  auto at = parse_since("2026-11-30T12:00:05Z", now);
  ASSERT_TRUE(at);
  EXPECT_EQ(format_time(*at), "2026-11-30T12:00:05Z");
  auto offset = parse_since("2026-11-30T13:00:05+01:00", now);
  ASSERT_TRUE(offset);
  EXPECT_EQ(offset->seconds(), at->seconds());
  for (const char* bad : {"", "yesterday", "2026-11-30", "2026-13-40T00:00:00Z", "12:00"}) {
    EXPECT_FALSE(parse_since(bad, now)) << bad;
  }
}

TEST(Format, TimesInUtcDurationsInMs) {
  google::protobuf::Timestamp unset;
  EXPECT_EQ(format_time(unset), "-");
  google::protobuf::Timestamp t;
  t.set_seconds(1'796'040'005);  // 2026-11-30T12:00:05Z
  t.set_nanos(123'456'789);
  EXPECT_EQ(format_time(t), "2026-11-30T12:00:05Z");
  EXPECT_EQ(format_time(t, true), "2026-11-30T12:00:05.123Z");
  EXPECT_EQ(format_interval(to_duration(90s)), "1m30s");
  EXPECT_EQ(format_interval(to_duration(500ms)), "500ms");
  EXPECT_EQ(format_interval(to_duration(0ms)), "0s");
  EXPECT_EQ(format_us_as_ms(12'345), "12.3 ms");
  EXPECT_EQ(format_us_as_ms(0), "-");
  EXPECT_EQ(format_ms(to_duration(1500ms)), "1500.0 ms");
  EXPECT_EQ(format_percent(0.99524), "99.52%");
}

TEST(Format, HostileTextCannotDriveTheTerminal) {
  EXPECT_EQ(printable("ok \x1b[2Jcleared"), "ok ?[2Jcleared");
  EXPECT_EQ(printable("csi \xc2\x9b"
                      "2J"),
            "csi ?2J");  // C1 CSI
  EXPECT_EQ(printable("a\tb\x7f"
                      "c\nd"),
            "a?b?c?d");
  EXPECT_EQ(printable("bad \xff utf8"), "bad \xef\xbf\xbd utf8");  // U+FFFD
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_LE(printable(std::string(10'000, 'x'), 100).size(), 100u);
}

TEST(Table, AlignsByCharactersAndLeavesTheLastColumnUnpadded) {
  Table table({"NAME", "COLO", "CAUSE"});
  table.add_row({"caf\xc3\xa9", "FRA", "origin closed"});
  table.add_row({"shop-home", "SIN"});  // a missing cell is empty
  table.add_row({"x\x1b[31m", "IAD", "red"});
  EXPECT_EQ(table.render(),
            "NAME       COLO  CAUSE\n"
            "caf\xc3\xa9       FRA   origin closed\n"
            "shop-home  SIN\n"
            "x?[31m     IAD   red\n");
  EXPECT_EQ(table.rows(), 3u);
}

TEST(EnumNames, AreTheStableLowerCaseNames) {
  EXPECT_EQ(enum_from_name(v1::IncidentState_descriptor(), "INCIDENT_STATE_", "open"), v1::INCIDENT_STATE_OPEN);
  EXPECT_EQ(enum_from_name(v1::Scope_descriptor(), "SCOPE_", "global"), v1::SCOPE_GLOBAL);
  EXPECT_FALSE(enum_from_name(v1::Scope_descriptor(), "SCOPE_", "unspecified"));
  EXPECT_FALSE(enum_from_name(v1::Scope_descriptor(), "SCOPE_", "GLOBAL"));
  EXPECT_EQ(enum_names(v1::IncidentKind_descriptor(), "INCIDENT_KIND_"), "outage|intermittent");
}

TEST(ExitCodes, SayWhatKindOfFailureItWas) {
  using grpc::StatusCode;
  EXPECT_EQ(exit_code_for(StatusCode::OK), 0);
  for (auto code :
       {StatusCode::INVALID_ARGUMENT, StatusCode::NOT_FOUND, StatusCode::ALREADY_EXISTS,
        StatusCode::FAILED_PRECONDITION, StatusCode::ABORTED, StatusCode::OUT_OF_RANGE, StatusCode::RESOURCE_EXHAUSTED,
        StatusCode::UNIMPLEMENTED, StatusCode::INTERNAL, StatusCode::UNKNOWN, StatusCode::DATA_LOSS}) {
    EXPECT_EQ(exit_code_for(code), kExitRefused) << status_code_name(code);
  }
  EXPECT_EQ(exit_code_for(StatusCode::UNAUTHENTICATED), kExitAuth);
  EXPECT_EQ(exit_code_for(StatusCode::PERMISSION_DENIED), kExitAuth);
  EXPECT_EQ(exit_code_for(StatusCode::UNAVAILABLE), kExitUnavailable);
  EXPECT_EQ(exit_code_for(StatusCode::DEADLINE_EXCEEDED), kExitUnavailable);
  EXPECT_EQ(exit_code_for(static_cast<StatusCode>(99)), kExitRefused);
  EXPECT_EQ(status_code_name(StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
  EXPECT_EQ(status_code_name(static_cast<StatusCode>(99)), "CODE_99");
}

}  // namespace
}  // namespace vantage::ctl
