// PgStore against a real PostgreSQL.
#include "storage/pg_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "common/token.h"
#include "storage/migrations.h"
#include "tests/support/postgres.h"

namespace vantage::storage {
namespace {

using vantage::testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

v1::CheckResult result(uint64_t sequence, v1::FailureClass c = v1::FAILURE_CLASS_OK) {
  v1::CheckResult r;
  r.set_sequence(sequence);
  r.set_check_id(1);
  r.mutable_start_time()->set_seconds(1'790'000'000 + static_cast<int64_t>(sequence));
  r.mutable_edge()->set_failure_class(c);
  r.mutable_edge()->mutable_response()->set_status(c == v1::FAILURE_CLASS_OK ? 200 : 520);
  r.mutable_edge()->mutable_timings()->set_total_us(1234);
  return r;
}

v1::Check check(const std::string& name, const std::string& url) {
  v1::Check c;
  c.set_name(name);
  c.set_url(url);
  c.set_source(v1::CHECK_SOURCE_FILE);
  return c;
}

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = PostgresEnvironment::fresh_database();
    store_ = std::make_unique<PgStore>(url_);
    ASSERT_EQ(store_->migrate(), static_cast<int>(migrations().size()));
  }
  pqxx::row one_row(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::read_transaction tx(c);
    return tx.exec1(sql);
  }
  std::string url_;
  std::unique_ptr<PgStore> store_;
};

TEST_F(StorageTest, MigrationsAreIdempotentAndSafeToRunConcurrently) {
  EXPECT_EQ(store_->migrate(), 0);
  auto fresh = PostgresEnvironment::fresh_database();
  std::vector<int> applied(4, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { applied[i] = PgStore(fresh, 1).migrate(); });
  }
  for (auto& t : threads) t.join();
  int total = 0;
  for (int a : applied) total += a;
  EXPECT_EQ(total, static_cast<int>(migrations().size())) << "each migration applied exactly once";
  pqxx::connection c(fresh);
  pqxx::read_transaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<int>(),
            static_cast<int>(migrations().size()));
  EXPECT_EQ(tx.exec1("SELECT name FROM failure_classes WHERE id = 8")[0].as<std::string>(), "empty_reply");
}

TEST_F(StorageTest, ProbeTokensAreStoredOnlyAsTheirHash) {
  auto token = store_->add_probe("eu-1", "eu");
  auto stored = one_row("SELECT token_sha256 FROM probes WHERE name = 'eu-1'")[0].as<std::string>();
  EXPECT_EQ(stored, token_sha256_hex(token));
  EXPECT_NE(stored, token);
  auto found = store_->find_probe_by_token(token_sha256_hex(token));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->name, "eu-1");
  EXPECT_EQ(found->region, "eu");
  EXPECT_FALSE(store_->find_probe_by_token(token_sha256_hex("wrong")));

  auto rotated = store_->add_probe("eu-1", "eu");
  EXPECT_NE(rotated, token);
  EXPECT_FALSE(store_->find_probe_by_token(token_sha256_hex(token))) << "the old token no longer works";
  EXPECT_TRUE(store_->find_probe_by_token(token_sha256_hex(rotated)));
}

TEST_F(StorageTest, AReplayedBatchIsStoredOnce) {
  auto token = store_->add_probe("us-1", "us");
  auto probe = *store_->find_probe_by_token(token_sha256_hex(token));
  storage::ResultBatch batch{probe, {result(1), result(2, v1::FAILURE_CLASS_EMPTY_REPLY), result(3)}};
  auto first = store_->write_results(batch);
  EXPECT_EQ(first.inserted, 3u);
  EXPECT_EQ(first.duplicates, 0u);
  EXPECT_EQ(first.acked_sequence, 3u);

  batch.results.push_back(result(4));
  auto replay = store_->write_results(batch);
  EXPECT_EQ(replay.inserted, 1u);
  EXPECT_EQ(replay.duplicates, 3u);
  EXPECT_EQ(replay.acked_sequence, 4u);

  auto counts = one_row("SELECT count(*), count(DISTINCT seq), max(seq), count(detail) FROM results");
  EXPECT_EQ(counts[0].as<int>(), 4);
  EXPECT_EQ(counts[1].as<int>(), 4);
  EXPECT_EQ(counts[2].as<int>(), 4);
  EXPECT_EQ(counts[3].as<int>(), 1) << "full evidence is kept for failures only";

  // The evidence round-trips.
  pqxx::connection c(url_);
  pqxx::read_transaction tx(c);
  auto row = tx.exec1("SELECT detail, status, total_us, region FROM results WHERE seq = 2");
  pqxx::binarystring bytes(row[0]);
  v1::CheckResult back;
  ASSERT_TRUE(back.ParseFromString(bytes.str()));
  EXPECT_EQ(back.edge().failure_class(), v1::FAILURE_CLASS_EMPTY_REPLY);
  EXPECT_EQ(row[1].as<int>(), 520);
  EXPECT_EQ(row[2].as<int>(), 1234);
  EXPECT_EQ(row[3].as<std::string>(), "us");

  EXPECT_EQ(store_->record_hello(probe.key, "0.1.0").last_sequence, 4u);
}

TEST_F(StorageTest, RefusedResultsAreAcknowledgedWithTheirBatch) {
  // Sequences 2 and 4 were refused by the coordinator: the probe's stored
  // sequence moves past them, so it does not send them again, and the
  // results around them stay exactly-once.
  auto token = store_->add_probe("us-1", "us");
  auto probe = *store_->find_probe_by_token(token_sha256_hex(token));
  storage::ResultBatch batch{probe, {result(1), result(3)}, 4};
  EXPECT_EQ(store_->write_results(batch).acked_sequence, 4u);
  storage::ResultBatch refused_only{probe, {}, 5};
  const auto outcome = store_->write_results(refused_only);
  EXPECT_EQ(outcome.acked_sequence, 5u);
  EXPECT_EQ(outcome.inserted, 0u);
  EXPECT_EQ(store_->write_results(batch).inserted, 0u) << "a replay is still de-duplicated";
  EXPECT_EQ(one_row("SELECT count(*) FROM results")[0].as<int>(), 2);
  EXPECT_EQ(one_row("SELECT last_sequence FROM probes WHERE name = 'us-1'")[0].as<int>(), 5);
  // The region stays the registered one whatever a hello says.
  EXPECT_EQ(store_->record_hello(probe.key, "0.2.0").region, "us");
}

TEST_F(StorageTest, FileChecksSyncWithVersions) {
  auto stored = store_->sync_file_checks({check("a", "http://a/"), check("b", "http://b/")});
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].name(), "a");
  EXPECT_EQ(stored[0].version(), 1);
  EXPECT_GT(stored[0].id(), 0);
  const auto a_id = stored[0].id();

  // Unchanged a, changed b, c added; then b removed.
  stored = store_->sync_file_checks({check("a", "http://a/"), check("b", "http://b2/"), check("c", "http://c/")});
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[0].version(), 1);
  EXPECT_EQ(stored[0].id(), a_id);
  EXPECT_EQ(stored[1].version(), 2);
  EXPECT_EQ(stored[1].url(), "http://b2/");
  stored = store_->sync_file_checks({check("a", "http://a/"), check("c", "http://c/")});
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(store_->list_checks().size(), 2u);
}

TEST_F(StorageTest, DayPartitionsAreCreatedAheadAndDroppedAfterRetention) {
  using namespace std::chrono;
  auto token = store_->add_probe("us-1", "us");
  auto probe = *store_->find_probe_by_token(token_sha256_hex(token));
  // 1'790'000'000 s is 2026-09-21 13:46:40 UTC: no partition yet, so default.
  store_->write_results(ResultBatch{probe, {result(1), result(2)}});
  EXPECT_EQ(one_row("SELECT count(*) FROM results_default")[0].as<int>(), 2);

  const sys_days day = year_month_day(year(2026), month(9), std::chrono::day(21));
  auto [created, dropped] = store_->maintain_partitions(day, 2, 30);
  EXPECT_EQ(created, 3);
  EXPECT_EQ(dropped, 0);
  EXPECT_EQ(one_row("SELECT count(*) FROM results_default")[0].as<int>(), 0) << "moved out of default";
  EXPECT_EQ(one_row("SELECT count(*) FROM results_20260921")[0].as<int>(), 2);
  EXPECT_EQ(one_row("SELECT count(*) FROM results_20260923")[0].as<int>(), 0);
  // A replay into a day partition is still stored once.
  EXPECT_EQ(store_->write_results(ResultBatch{probe, {result(2), result(3)}}).inserted, 1u);
  EXPECT_EQ(store_->maintain_partitions(day, 2, 30).first, 0) << "idempotent";

  // 40 days later with 30 days of retention: the September days go.
  std::tie(created, dropped) = store_->maintain_partitions(day + days(40), 1, 30);
  EXPECT_EQ(created, 2);
  EXPECT_EQ(dropped, 3);
  EXPECT_EQ(one_row("SELECT count(*) FROM results")[0].as<int>(), 0);
  EXPECT_EQ(one_row("SELECT to_regclass('results_20260921') IS NULL")[0].as<bool>(), true);
}

v1::Incident incident(const std::string& id, v1::IncidentState state, int64_t first_failure) {
  v1::Incident i;
  i.set_id(id);
  i.set_check_id(7);
  i.set_check("shop");
  i.set_kind(v1::INCIDENT_KIND_OUTAGE);
  i.set_state(state);
  i.set_scope(v1::SCOPE_REGION);
  i.mutable_first_failure_time()->set_seconds(first_failure);
  if (state == v1::INCIDENT_STATE_RESOLVED) i.mutable_resolve_time()->set_seconds(first_failure + 300);
  return i;
}

v1::IncidentEvent event(const std::string& incident_id, v1::IncidentEventType type, int64_t time) {
  v1::IncidentEvent e;
  e.set_incident_id(incident_id);
  e.set_type(type);
  e.mutable_time()->set_seconds(time);
  e.set_scope(v1::SCOPE_REGION);
  return e;
}

TEST_F(StorageTest, IncidentEventsDerivedTwiceAreStoredOnce) {
  const int64_t t0 = 1'790'000'000;
  auto open = incident("7-1", v1::INCIDENT_STATE_OPEN, t0);
  auto fresh = store_->save_incidents({open}, {event("7-1", v1::INCIDENT_EVENT_TYPE_OPENED, t0 + 60)});
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_GT(fresh[0].event_id(), 0);

  // A replay after a restart derives the same OPENED again, plus a new event.
  auto resolved = incident("7-1", v1::INCIDENT_STATE_RESOLVED, t0);
  fresh = store_->save_incidents({resolved}, {event("7-1", v1::INCIDENT_EVENT_TYPE_OPENED, t0 + 60),
                                              event("7-1", v1::INCIDENT_EVENT_TYPE_RESOLVED, t0 + 300)});
  ASSERT_EQ(fresh.size(), 1u) << "only the new event is announced";
  EXPECT_EQ(fresh[0].type(), v1::INCIDENT_EVENT_TYPE_RESOLVED);

  auto back = store_->get_incident("7-1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state(), v1::INCIDENT_STATE_RESOLVED);
  EXPECT_EQ(back->check_id(), 7);
  ASSERT_EQ(back->timeline_size(), 2);
  EXPECT_EQ(back->timeline(0).type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(back->timeline(1).type(), v1::INCIDENT_EVENT_TYPE_RESOLVED);
  EXPECT_FALSE(store_->get_incident("7-2").has_value());
}

TEST_F(StorageTest, RestoreLoadsOpenAndRecentlyResolvedIncidents) {
  const int64_t t0 = 1'790'000'000;
  store_->save_incidents({incident("7-old", v1::INCIDENT_STATE_RESOLVED, t0 - 86'400 * 10),
                          incident("7-recent", v1::INCIDENT_STATE_RESOLVED, t0 - 3'600),
                          incident("7-open", v1::INCIDENT_STATE_OPEN, t0 - 86'400 * 20)},
                         {event("7-recent", v1::INCIDENT_EVENT_TYPE_OPENED, t0 - 7'200)});
  auto since = std::chrono::system_clock::time_point(std::chrono::seconds(t0 - 86'400));
  auto loaded = store_->load_incidents(since);
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].id(), "7-open");
  EXPECT_EQ(loaded[1].id(), "7-recent");
  ASSERT_EQ(loaded[1].timeline_size(), 1) << "the correlator counts openings in the timeline";
  EXPECT_EQ(loaded[1].timeline(0).type(), v1::INCIDENT_EVENT_TYPE_OPENED);
}

TEST_F(StorageTest, IncidentsAreReadableInSqlWithTheirWidestScope) {
  const int64_t t0 = 1'790'000'000;
  // A global outage that narrowed to one region before it resolved.
  auto resolved = incident("7-1", v1::INCIDENT_STATE_RESOLVED, t0);
  resolved.set_widest_scope(v1::SCOPE_GLOBAL);
  auto opened = event("7-1", v1::INCIDENT_EVENT_TYPE_OPENED, t0 + 60);
  opened.set_scope(v1::SCOPE_GLOBAL);
  store_->save_incidents({resolved}, {opened, event("7-1", v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED, t0 + 200),
                                      event("7-1", v1::INCIDENT_EVENT_TYPE_RESOLVED, t0 + 300)});
  // A narrower one, and one whose snapshot claims a widest scope narrower than its scope.
  store_->save_incidents({incident("7-2", v1::INCIDENT_STATE_OPEN, t0 + 1000)}, {});
  auto inconsistent = incident("7-3", v1::INCIDENT_STATE_OPEN, t0 + 2000);
  inconsistent.set_widest_scope(v1::SCOPE_PROBE);
  store_->save_incidents({inconsistent}, {});

  auto row = one_row("SELECT string_agg(id, ',' ORDER BY id) FROM incidents WHERE widest_scope = 'global'");
  EXPECT_EQ(row[0].as<std::string>(), "7-1") << "past global outages are found by SQL";
  row = one_row("SELECT kind, state, scope, widest_scope FROM incidents WHERE id = '7-1'");
  EXPECT_EQ(row[0].as<std::string>(), "outage");
  EXPECT_EQ(row[1].as<std::string>(), "resolved");
  EXPECT_EQ(row[2].as<std::string>(), "region");
  EXPECT_EQ(row[3].as<std::string>(), "global");
  EXPECT_EQ(one_row("SELECT widest_scope FROM incidents WHERE id = '7-3'")[0].as<std::string>(), "region")
      << "never narrower than the current scope";
  row = one_row("SELECT string_agg(type || ' ' || scope, ', ' ORDER BY time, id) FROM incident_events");
  EXPECT_EQ(row[0].as<std::string>(), "opened global, scope_changed region, resolved region");

  // Kept up to date: the open one widens.
  auto widened = incident("7-2", v1::INCIDENT_STATE_OPEN, t0 + 1000);
  widened.set_scope(v1::SCOPE_GLOBAL);
  widened.set_widest_scope(v1::SCOPE_GLOBAL);
  store_->save_incidents({widened}, {});
  EXPECT_EQ(one_row("SELECT count(*) FROM incidents WHERE widest_scope = 'global'")[0].as<int>(), 2);
  auto back = store_->get_incident("7-1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->widest_scope(), v1::SCOPE_GLOBAL);
}

TEST_F(StorageTest, EveryEnumValueIsStoredByNameAndOthersAreRefused) {
  // The CHECK constraints of migration 0005 accept every name the code
  // writes (common/incident_names.h), unspecified included.
  const int64_t t0 = 1'790'000'000;
  int n = 0;
  auto save = [&](auto mutate) {
    ++n;
    auto i = incident(fmt::format("7-{}", n), v1::INCIDENT_STATE_OPEN, t0 + n);
    auto e = event(i.id(), v1::INCIDENT_EVENT_TYPE_OPENED, t0 + n);
    mutate(i, e);
    EXPECT_NO_THROW(store_->save_incidents({i}, {e})) << i.ShortDebugString() << " " << e.ShortDebugString();
  };
  for (int k = 0; k < v1::IncidentKind_descriptor()->value_count(); ++k) {
    save([&](v1::Incident& i, v1::IncidentEvent&) {
      i.set_kind(static_cast<v1::IncidentKind>(v1::IncidentKind_descriptor()->value(k)->number()));
    });
  }
  for (int k = 0; k < v1::IncidentState_descriptor()->value_count(); ++k) {
    save([&](v1::Incident& i, v1::IncidentEvent&) {
      i.set_state(static_cast<v1::IncidentState>(v1::IncidentState_descriptor()->value(k)->number()));
    });
  }
  for (int k = 0; k < v1::Scope_descriptor()->value_count(); ++k) {
    const auto scope = static_cast<v1::Scope>(v1::Scope_descriptor()->value(k)->number());
    save([&](v1::Incident& i, v1::IncidentEvent& e) {
      i.set_scope(scope);
      i.set_widest_scope(scope);
      e.set_scope(scope);
    });
  }
  for (int k = 0; k < v1::IncidentEventType_descriptor()->value_count(); ++k) {
    save([&](v1::Incident&, v1::IncidentEvent& e) {
      e.set_type(static_cast<v1::IncidentEventType>(v1::IncidentEventType_descriptor()->value(k)->number()));
    });
  }
  EXPECT_EQ(one_row("SELECT count(*) FROM incident_events WHERE type = 'flapping_changed'")[0].as<int>(), 1);
  pqxx::connection c(url_);
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec("UPDATE incidents SET scope = 'continent' WHERE id = '7-1'"), pqxx::check_violation);
}

TEST(StorageMigration, ExistingIncidentsBecomeReadableWithTheirWidestScope) {
  // A database at version 4, with incidents stored as numbers.
  const auto url = PostgresEnvironment::fresh_database();
  {
    pqxx::connection c(url);
    pqxx::work tx(c);
    tx.exec0("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
             " apply_time timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : migrations()) {
      if (m.version >= 5) continue;
      tx.exec(m.sql);
      tx.exec_params0("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
    }
    // A resolved global outage stored with its last (narrow) scope, and a row
    // with numbers no enum knows.
    tx.exec0("INSERT INTO incidents (id, check_id, kind, state, scope, first_failure_time, detail) VALUES "
             "('7-1', 7, 1, 2, 3, '2026-09-01 10:00:00+00', ''::bytea), "
             "('7-2', 7, 2, 1, 1, '2026-09-02 10:00:00+00', ''::bytea), "
             "('7-3', 7, 9, 0, 0, '2026-09-03 10:00:00+00', ''::bytea)");
    tx.exec0("INSERT INTO incident_events (incident_id, type, time, scope, detail) VALUES "
             "('7-1', 1, '2026-09-01 10:01:00+00', 3, ''::bytea), ('7-1', 2, '2026-09-01 10:01:01+00', 4, ''::bytea), "
             "('7-1', 2, '2026-09-01 10:04:00+00', 3, ''::bytea), ('7-1', 5, '2026-09-01 10:05:00+00', 3, ''::bytea), "
             "('7-3', 7, '2026-09-03 10:01:00+00', 8, ''::bytea)");
    tx.commit();
  }
  PgStore store(url);
  EXPECT_EQ(store.migrate(), static_cast<int>(migrations().size()) - 4);
  pqxx::connection c(url);
  pqxx::read_transaction tx(c);
  auto rows = tx.exec("SELECT id, kind, state, scope, widest_scope FROM incidents ORDER BY id");
  ASSERT_EQ(rows.size(), 3u);
  auto text = [](const pqxx::row& r) {
    return fmt::format("{} {} {} {} {}", r[0].c_str(), r[1].c_str(), r[2].c_str(), r[3].c_str(), r[4].c_str());
  };
  EXPECT_EQ(text(rows[0]), "7-1 outage resolved region global") << "the widest scope its timeline shows";
  EXPECT_EQ(text(rows[1]), "7-2 intermittent open probe probe");
  EXPECT_EQ(text(rows[2]), "7-3 unspecified unspecified unspecified unspecified");
  EXPECT_EQ(tx.exec1("SELECT string_agg(type || ' ' || scope, ', ' ORDER BY time) FROM incident_events "
                     "WHERE incident_id = '7-1'")[0].as<std::string>(),
            "opened region, scope_changed global, scope_changed region, resolved region");
  EXPECT_EQ(tx.exec1("SELECT type || ' ' || scope FROM incident_events WHERE incident_id = '7-3'")[0].as<std::string>(),
            "unspecified unspecified");
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM incidents WHERE state = 'open'")[0].as<int>(), 1);
}

TEST_F(StorageTest, RecentResultsComeBackForTheCorrelatorsReplay) {
  auto token = store_->add_probe("eu-1", "eu");
  auto probe = *store_->find_probe_by_token(token_sha256_hex(token));
  auto failure = result(2, v1::FAILURE_CLASS_EDGE_ERROR);
  failure.mutable_edge()->mutable_edge()->set_ray_id("8a1b2c3d4e5f6789");
  auto ok = result(3);
  ok.mutable_edge()->mutable_edge()->set_colo("FRA");
  store_->write_results(storage::ResultBatch{probe, {result(1), failure, ok}});

  auto since = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'002));
  std::vector<StoredResult> back;
  store_->for_each_result_since(since, [&](StoredResult&& r) { back.push_back(std::move(r)); });
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].probe, "eu-1");
  EXPECT_EQ(back[0].region, "eu");
  EXPECT_EQ(back[0].result.edge().edge().ray_id(), "8a1b2c3d4e5f6789") << "a failure comes back whole";
  EXPECT_EQ(back[1].result.sequence(), 3u);
  EXPECT_EQ(back[1].result.check_id(), 1);
  EXPECT_EQ(back[1].result.start_time().seconds(), 1'790'000'003);
  EXPECT_EQ(back[1].result.edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(back[1].result.edge().edge().colo(), "FRA");
}

TEST(StorageUnavailable, AnUnreachableDatabaseIsKindUnavailableAndHidesThePassword) {
  PgStore store("postgresql://vantage:s3cret@127.0.0.1:1/vantage?connect_timeout=2", 1);
  try {
    store.migrate();
    FAIL() << "expected a StorageError";
  } catch (const StorageError& e) {
    EXPECT_EQ(e.kind(), StorageError::Kind::kUnavailable);
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot connect to PostgreSQL"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vantage::storage
