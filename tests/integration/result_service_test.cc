// ResultService against a real coordinator on loopback with real PostgreSQL
// and real API tokens: results stored through storage's write_results with
// hand-computed summaries (reachability, uptime by period, percentiles,
// classes, 52x by region and colo), the list's filters and pages, a failure's
// evidence round trip, and bad input for both RPCs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <pqxx/pqxx>
#include <set>

#include "common/proto_time.h"
#include "common/token.h"
#include "coordinator/coordinator.h"
#include "coordinator/result_service.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "vantage/v1/result_service.grpc.pb.h"

namespace vantage {
namespace {

using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// 2026-01-10T00:00:00Z: a whole number of minutes, so the check's 60 s
// periods start at T0 + i min.
constexpr int64_t kT0 = 1768003200;

int64_t ms(int64_t n) { return n * 1000; }

struct Attempt {
  Attempt(int64_t start, v1::FailureClass failure = v1::FAILURE_CLASS_OK, int64_t total = ms(100),
          uint32_t code = 0, std::string colo_name = "")  // NOLINT: {start} reads as an attempt
      : start_seconds(start), failure_class(failure), total_us(total), edge_code(code), colo(std::move(colo_name)) {}
  int64_t start_seconds;  // from kT0
  v1::FailureClass failure_class;
  int64_t total_us;
  uint32_t edge_code;
  std::string colo;
};

class ResultServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new testing::ApiDatabase();
    store_ = &db_->store;
    probes_ = new std::map<std::string, storage::ProbeRecord>;
    probe_tokens_ = new std::map<std::string, std::string>;
    for (const auto& [name, region] : std::vector<std::pair<std::string, std::string>>{
             {"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}}) {
      const auto token = store_->add_probe(name, region);
      (*probe_tokens_)[name] = token;
      (*probes_)[name] = *store_->find_probe_by_token(token_sha256_hex(token));
    }
    std::string yaml = "checks:\n";
    for (const char* name : {"shop", "lat", "blog", "pages", "idle", "span"}) {
      yaml += fmt::format("  - name: {0}\n    url: http://127.0.0.1:9/{0}\n    interval: 60s\n    timeout: 5s\n"
                          "    regions: [nowhere]\n",
                          name);
    }
    checks_file_ = new testing::TempChecksFile("vantage-result-test", yaml);
    auto options = testing::loopback_coordinator_options(db_->url);
    options.checks_file = checks_file_->path();
    coordinator_ = new coordinator::Coordinator(options);
    coordinator_->start();
    check_ids_ = new std::map<std::string, int64_t>;
    for (const auto& c : store_->list_checks()) (*check_ids_)[c.name()] = c.id();
    read_token_ = new std::string(store_->add_api_token("result-reader", "read"));
    sequences_ = new std::map<std::string, uint64_t>;
  }
  static void TearDownTestSuite() {
    delete coordinator_;
    delete checks_file_;
    delete probes_;
    delete probe_tokens_;
    delete check_ids_;
    delete read_token_;
    delete sequences_;
    delete db_;
  }

  static v1::CheckResult result(const std::string& check, const Attempt& a) {
    v1::CheckResult r;
    r.set_check_id(check_ids_->at(check));
    r.set_check_version(1);
    *r.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0 + a.start_seconds);
    auto* edge = r.mutable_edge();
    edge->set_failure_class(a.failure_class);
    edge->mutable_timings()->set_first_byte_us(static_cast<uint64_t>(a.total_us / 2));
    edge->mutable_timings()->set_total_us(static_cast<uint64_t>(a.total_us));
    edge->mutable_response()->set_status(a.edge_code != 0 ? a.edge_code : (a.failure_class == v1::FAILURE_CLASS_OK ? 200 : 0));
    if (a.edge_code != 0) edge->mutable_edge()->set_edge_code(a.edge_code);
    if (!a.colo.empty()) edge->mutable_edge()->set_colo(a.colo);
    return r;
  }
  // Stores the results as `probe` sent them, with its next sequence numbers.
  static void store(const std::string& probe, std::vector<v1::CheckResult> results) {
    auto& seq = (*sequences_)[probe];
    for (auto& r : results) r.set_sequence(++seq);
    storage::ResultBatch batch{probes_->at(probe), std::move(results)};
    ASSERT_EQ(store_->write_results(batch).inserted, batch.results.size());
  }
  static void store(const std::string& probe, const std::string& check, const std::vector<Attempt>& attempts) {
    std::vector<v1::CheckResult> results;
    for (const auto& a : attempts) results.push_back(result(check, a));
    store(probe, std::move(results));
  }

  std::unique_ptr<v1::ResultService::Stub> stub() {
    return v1::ResultService::NewStub(testing::loopback_channel(coordinator_->grpc_port()));
  }
  grpc::Status list(const v1::ListResultsRequest& request, v1::ListResultsResponse* response,
                    const std::string& token = *read_token_) {
    grpc::ClientContext context;
    if (!token.empty()) testing::authorize(context, token);
    return stub()->ListResults(&context, request, response);
  }
  grpc::Status summary(const v1::GetCheckSummaryRequest& request, v1::GetCheckSummaryResponse* response,
                       const std::string& token = *read_token_) {
    grpc::ClientContext context;
    if (!token.empty()) testing::authorize(context, token);
    return stub()->GetCheckSummary(&context, request, response);
  }
  // Every result of a list, page after page (`page_size` each).
  std::vector<v1::StoredResult> list_all(v1::ListResultsRequest request, int* pages = nullptr) {
    std::vector<v1::StoredResult> all;
    int count = 0;
    do {
      v1::ListResultsResponse response;
      auto status = list(request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      all.insert(all.end(), response.results().begin(), response.results().end());
      request.set_page_token(response.next_page_token());
      ++count;
    } while (!request.page_token().empty() && count < 1000);
    if (pages) *pages = count;
    return all;
  }

  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::map<std::string, storage::ProbeRecord>* probes_ = nullptr;
  static inline std::map<std::string, std::string>* probe_tokens_ = nullptr;
  static inline std::map<std::string, int64_t>* check_ids_ = nullptr;
  static inline std::map<std::string, uint64_t>* sequences_ = nullptr;
  static inline std::string* read_token_ = nullptr;
  static inline coordinator::Coordinator* coordinator_ = nullptr;
  static inline testing::TempChecksFile* checks_file_ = nullptr;
};

int64_t micros(const google::protobuf::Duration& d) { return TimeUtil::DurationToMicroseconds(d); }

// --- GetCheckSummary ----------------------------------------------------------

// Ten periods of 60 s with attempts, over [T0, T0 + 12 min):
//   us-1 every period, fails in 3 (522 FRA), 5 (connect timeout), 7 (522 IAD)
//   eu-1 every period, fails in 5 (520 AMS), 7 (522 AMS)
//   ap-1 periods 0..4, fails in 1 (520 SIN)
// Period 3: us failed, eu succeeded: up. Periods 5 and 7: every region
// failed: down. Periods 10 and 11: no attempt, not counted.
// Attempts 25, successes 19; periods 10, up 8. Latency: us 100 ms, eu 200 ms,
// ap 300 ms. Outside the window: us at T0 - 30 s and at T0 + 12 min.
TEST_F(ResultServiceTest, SummaryOfAKnownWindow) {
  std::vector<Attempt> us, eu, ap;
  for (int i = 0; i < 10; ++i) {
    Attempt a{i * 60 + 1};
    if (i == 3) a = {i * 60 + 1, v1::FAILURE_CLASS_EDGE_ERROR, ms(900), 522, "FRA"};
    if (i == 5) a = {i * 60 + 1, v1::FAILURE_CLASS_CONNECT_TIMEOUT, ms(5000)};
    if (i == 7) a = {i * 60 + 1, v1::FAILURE_CLASS_EDGE_ERROR, ms(900), 522, "IAD"};
    us.push_back(a);
    Attempt b{i * 60 + 2, v1::FAILURE_CLASS_OK, ms(200)};
    if (i == 5) b = {i * 60 + 2, v1::FAILURE_CLASS_EDGE_ERROR, ms(900), 520, "AMS"};
    if (i == 7) b = {i * 60 + 2, v1::FAILURE_CLASS_EDGE_ERROR, ms(900), 522, "AMS"};
    eu.push_back(b);
    if (i < 5) {
      Attempt c{i * 60 + 3, v1::FAILURE_CLASS_OK, ms(300)};
      if (i == 1) c = {i * 60 + 3, v1::FAILURE_CLASS_EDGE_ERROR, ms(900), 520, "SIN"};
      ap.push_back(c);
    }
  }
  us.push_back({-30, v1::FAILURE_CLASS_OK, ms(1)});
  us.push_back({12 * 60, v1::FAILURE_CLASS_EDGE_ERROR, ms(1), 521, "FRA"});
  store("us-1", "shop", us);
  store("eu-1", "shop", eu);
  store("ap-1", "shop", ap);
  store("us-1", "blog", {{5, v1::FAILURE_CLASS_EDGE_ERROR, ms(1), 523, "FRA"}});  // another check's

  v1::GetCheckSummaryRequest request;
  request.set_check("shop");
  *request.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
  *request.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 + 12 * 60);
  v1::GetCheckSummaryResponse response;
  auto status = summary(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& s = response.summary();
  EXPECT_EQ(s.check(), "shop");
  EXPECT_EQ(s.start_time().seconds(), kT0);
  EXPECT_EQ(s.end_time().seconds(), kT0 + 720);
  EXPECT_EQ(s.attempts(), 25u);
  EXPECT_EQ(s.successes(), 19u);
  EXPECT_DOUBLE_EQ(s.reachability(), 19.0 / 25.0);
  EXPECT_EQ(s.periods(), 10u);
  EXPECT_EQ(s.periods_up(), 8u);
  EXPECT_DOUBLE_EQ(s.uptime(), 0.8);
  // Overall latency of 19 successes: 7 x 100 ms (us), 8 x 200 ms (eu), 4 x 300 ms (ap).
  // p50: 10th of 19 -> 200 ms; p90: 18th (17.1) -> 300 ms.
  EXPECT_EQ(micros(s.latency_p50()), ms(200));
  EXPECT_EQ(micros(s.latency_p90()), ms(300));
  ASSERT_EQ(s.by_region_size(), 3);
  const std::vector<std::tuple<std::string, uint64_t, uint64_t, int64_t>> regions = {
      {"ap", 5, 4, ms(300)}, {"eu", 10, 8, ms(200)}, {"us", 10, 7, ms(100)}};
  for (int i = 0; i < 3; ++i) {
    const auto& r = s.by_region(i);
    EXPECT_EQ(r.region(), std::get<0>(regions[i]));
    EXPECT_EQ(r.attempts(), std::get<1>(regions[i])) << r.region();
    EXPECT_EQ(r.successes(), std::get<2>(regions[i])) << r.region();
    EXPECT_EQ(micros(r.latency_p50()), std::get<3>(regions[i])) << r.region();
    EXPECT_EQ(micros(r.latency_p99()), std::get<3>(regions[i])) << r.region();
  }
  std::map<v1::FailureClass, uint64_t> classes;
  for (const auto& c : s.by_class()) classes[c.failure_class()] = c.count();
  EXPECT_EQ(classes, (std::map<v1::FailureClass, uint64_t>{{v1::FAILURE_CLASS_OK, 19},
                                                           {v1::FAILURE_CLASS_CONNECT_TIMEOUT, 1},
                                                           {v1::FAILURE_CLASS_EDGE_ERROR, 5}}));
  std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>> codes;
  for (const auto& e : s.edge_codes()) codes.emplace_back(e.region(), e.colo(), e.edge_code(), e.count());
  EXPECT_EQ(codes, (std::vector<std::tuple<std::string, std::string, uint32_t, uint64_t>>{
                       {"ap", "SIN", 520, 1}, {"eu", "AMS", 520, 1}, {"eu", "AMS", 522, 1},
                       {"us", "FRA", 522, 1}, {"us", "IAD", 522, 1}}));
}

// percentile_disc on a known distribution: us 1..100 ms, eu 10..200 ms by 10,
// each once, plus failures (never counted in latency).
TEST_F(ResultServiceTest, PercentilesAreThoseOfTheSuccessfulAttempts) {
  std::vector<Attempt> us, eu;
  for (int i = 1; i <= 100; ++i) us.push_back({i, v1::FAILURE_CLASS_OK, ms(i)});
  for (int i = 1; i <= 20; ++i) eu.push_back({i, v1::FAILURE_CLASS_OK, ms(10 * i)});
  for (int i = 1; i <= 30; ++i) eu.push_back({200 + i, v1::FAILURE_CLASS_TIMEOUT_HEADERS, ms(60'000)});
  store("us-1", "lat", us);
  store("eu-1", "lat", eu);

  v1::GetCheckSummaryRequest request;
  request.set_check("lat");
  *request.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
  *request.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 + 3600);
  v1::GetCheckSummaryResponse response;
  auto status = summary(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& s = response.summary();
  EXPECT_EQ(s.attempts(), 150u);
  EXPECT_EQ(s.successes(), 120u);
  // The 120 together: the value at rank ceil(p * 120) (60, 108, 114, 119).
  EXPECT_EQ(micros(s.latency_p50()), ms(55));
  EXPECT_EQ(micros(s.latency_p90()), ms(99));
  EXPECT_EQ(micros(s.latency_p95()), ms(140));
  EXPECT_EQ(micros(s.latency_p99()), ms(190));
  ASSERT_EQ(s.by_region_size(), 2);
  const auto& eu_summary = s.by_region(0);
  EXPECT_EQ(eu_summary.region(), "eu");
  EXPECT_EQ(eu_summary.attempts(), 50u);
  EXPECT_EQ(micros(eu_summary.latency_p50()), ms(100));
  EXPECT_EQ(micros(eu_summary.latency_p90()), ms(180));
  EXPECT_EQ(micros(eu_summary.latency_p95()), ms(190));
  EXPECT_EQ(micros(eu_summary.latency_p99()), ms(200));
  const auto& us_summary = s.by_region(1);
  EXPECT_EQ(us_summary.region(), "us");
  EXPECT_EQ(micros(us_summary.latency_p50()), ms(50));
  EXPECT_EQ(micros(us_summary.latency_p90()), ms(90));
  EXPECT_EQ(micros(us_summary.latency_p95()), ms(95));
  EXPECT_EQ(micros(us_summary.latency_p99()), ms(99));
}

TEST_F(ResultServiceTest, SummaryDefaultsToTheLast24HoursOrTheWindow) {
  v1::GetCheckSummaryRequest request;
  request.set_check("idle");
  v1::GetCheckSummaryResponse response;
  const auto before = to_timestamp(std::chrono::system_clock::now());
  auto status = summary(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& s = response.summary();
  EXPECT_GE(s.end_time(), before);
  EXPECT_LE(s.end_time(), to_timestamp(std::chrono::system_clock::now()));
  EXPECT_EQ(s.end_time() - s.start_time(), TimeUtil::HoursToDuration(24));
  EXPECT_EQ(s.attempts(), 0u);
  EXPECT_EQ(s.periods(), 0u);
  EXPECT_EQ(s.uptime(), 0);

  *request.mutable_window() = TimeUtil::MinutesToDuration(90);
  *request.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0);
  ASSERT_TRUE(summary(request, &response).ok());
  EXPECT_EQ(response.summary().start_time().seconds(), kT0 - 90 * 60);
  EXPECT_EQ(response.summary().end_time().seconds(), kT0);
}

// Day partitions (the coordinator creates them around today; these are
// January's): a window across midnight reads both days, in order.
TEST_F(ResultServiceTest, WindowsAcrossDayPartitions) {
  const auto day = std::chrono::floor<std::chrono::days>(std::chrono::sys_seconds(std::chrono::seconds(kT0)));
  store_->maintain_partitions(day + std::chrono::days(20), 2, 100'000);  // 2026-01-30 .. 2026-02-01
  constexpr int64_t kMidnight = 20 * 86400 + 86400;  // 2026-01-31T00:00:00Z, from kT0
  store("us-1", "span", {{kMidnight - 90}, {kMidnight - 30, v1::FAILURE_CLASS_EDGE_ERROR, ms(1), 524, "IAD"},
                         {kMidnight + 30}, {kMidnight + 90, v1::FAILURE_CLASS_OK, ms(300)}});
  {
    pqxx::connection c(db_->url);
    pqxx::read_transaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM results_20260130")[0].as<int>(), 2);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM results_20260131")[0].as<int>(), 2);
  }
  v1::GetCheckSummaryRequest request;
  request.set_check("span");
  *request.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 + kMidnight + 60);
  *request.mutable_window() = TimeUtil::MinutesToDuration(2);  // [-60 s, +60 s): the middle two
  v1::GetCheckSummaryResponse response;
  ASSERT_TRUE(summary(request, &response).ok());
  EXPECT_EQ(response.summary().attempts(), 2u);
  EXPECT_EQ(response.summary().successes(), 1u);
  EXPECT_EQ(response.summary().periods(), 2u);
  EXPECT_EQ(response.summary().periods_up(), 1u);
  ASSERT_EQ(response.summary().edge_codes_size(), 1);
  EXPECT_EQ(response.summary().edge_codes(0).edge_code(), 524u);

  v1::ListResultsRequest list_request;
  list_request.set_check("span");
  list_request.set_page_size(1);
  auto all = list_all(list_request);
  ASSERT_EQ(all.size(), 4u);
  const std::vector<int64_t> newest_first = {90, 30, -30, -90};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].result().start_time().seconds(), kT0 + kMidnight + newest_first[i]);
  }
}

// --- ListResults --------------------------------------------------------------

TEST_F(ResultServiceTest, PagesAreNewestFirstWithoutRepeatOrSkipWhileResultsArrive) {
  // 30 results: three probes, ten periods, the three in the same second
  // (the order is then the probe's key).
  for (const auto& probe : {"us-1", "eu-1", "ap-1"}) {
    std::vector<Attempt> attempts;
    for (int i = 0; i < 10; ++i) attempts.push_back({i * 60});
    store(probe, "pages", attempts);
  }
  {
    v1::ListResultsRequest request;
    request.set_check("pages");
    request.set_page_size(1000);
    auto all = list_all(request);
    ASSERT_EQ(all.size(), 30u);
    for (size_t i = 1; i < all.size(); ++i) {
      EXPECT_GE(all[i - 1].result().start_time(), all[i].result().start_time()) << "newest first";
    }
  }
  v1::ListResultsRequest request;
  request.set_check("pages");
  request.set_page_size(4);
  std::vector<v1::StoredResult> seen;
  int pages = 0;
  int arrivals = 0;
  do {
    v1::ListResultsResponse response;
    auto status = list(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(response.results_size(), 4);
    seen.insert(seen.end(), response.results().begin(), response.results().end());
    request.set_page_token(response.next_page_token());
    ++pages;
    // New results arrive between pages (newer than everything listed).
    store("eu-1", "pages", {{3600 + arrivals++}});
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 8);  // 30 in pages of 4
  std::set<std::pair<std::string, uint64_t>> keys;
  for (const auto& r : seen) {
    EXPECT_TRUE(keys.emplace(r.probe_id(), r.result().sequence()).second)
        << "repeated: " << r.probe_id() << " " << r.result().sequence();
    EXPECT_EQ(r.check(), "pages");
    EXPECT_LT(r.result().start_time().seconds(), kT0 + 3600) << "a result that arrived later";
  }
  EXPECT_EQ(keys.size(), 30u) << "none skipped";
}

TEST_F(ResultServiceTest, FiltersAndAFailuresEvidenceRoundTrips) {
  // A failure with the full evidence: ray id, colo, the origin leg.
  v1::CheckResult failure = result("blog", {100, v1::FAILURE_CLASS_EDGE_ERROR, ms(700), 520, "FRA"});
  failure.mutable_edge()->mutable_edge()->set_ray_id("8f1e2d3c4b5a6978-FRA");
  failure.mutable_edge()->mutable_edge()->set_edge_generated(true);
  failure.mutable_edge()->set_error("the origin closed the connection without answering");
  failure.mutable_origin()->set_failure_class(v1::FAILURE_CLASS_EMPTY_REPLY);
  failure.mutable_origin()->mutable_timings()->set_total_us(12'345);
  failure.mutable_origin()->mutable_connection()->set_connected_address("203.0.113.10:443");
  store("eu-1", {failure});
  store("eu-1", "blog", {{101}, {102, v1::FAILURE_CLASS_DNS_FAILURE, ms(5)}});
  store("ap-1", "blog", {{103}});

  v1::ListResultsRequest request;
  request.set_check("blog");
  request.set_region("eu");
  auto eu = list_all(request);
  ASSERT_EQ(eu.size(), 3u);
  for (const auto& r : eu) EXPECT_EQ(r.region(), "eu");
  // Newest first: 102, 101, 100.
  EXPECT_EQ(eu[2].result().start_time().seconds(), kT0 + 100);
  EXPECT_EQ(eu[2].probe_id(), "eu-1");
  failure.set_sequence(eu[2].result().sequence());
  EXPECT_TRUE(MessageDifferencer::Equals(eu[2].result(), failure)) << eu[2].result().DebugString();
  // A success rebuilt from the columns.
  const auto& ok = eu[1].result();
  EXPECT_EQ(ok.edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(ok.edge().response().status(), 200u);
  EXPECT_EQ(ok.edge().timings().total_us(), static_cast<uint64_t>(ms(100)));
  EXPECT_EQ(ok.edge().timings().first_byte_us(), static_cast<uint64_t>(ms(50)));
  EXPECT_EQ(ok.check_id(), check_ids_->at("blog"));
  EXPECT_EQ(ok.start_time().seconds(), kT0 + 101);

  request.clear_region();
  request.set_probe_id("ap-1");
  auto ap = list_all(request);
  ASSERT_EQ(ap.size(), 1u);
  EXPECT_EQ(ap[0].probe_id(), "ap-1");

  request.clear_probe_id();
  request.set_failure_class(v1::FAILURE_CLASS_DNS_FAILURE);
  auto dns = list_all(request);
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_EQ(dns[0].result().edge().failure_class(), v1::FAILURE_CLASS_DNS_FAILURE);

  request.clear_failure_class();
  request.set_failures_only(true);
  auto failures = list_all(request);
  for (const auto& r : failures) EXPECT_NE(r.result().edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_GE(failures.size(), 2u);  // this test's two (SummaryOfAKnownWindow may add one)

  request.set_failures_only(false);
  *request.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0 + 101);
  *request.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 + 103);
  auto window = list_all(request);
  ASSERT_EQ(window.size(), 2u);  // [101, 103): 102 and 101
  EXPECT_EQ(window[0].result().start_time().seconds(), kT0 + 102);
  EXPECT_EQ(window[1].result().start_time().seconds(), kT0 + 101);

  request.set_probe_id("no-such-probe");
  EXPECT_TRUE(list_all(request).empty());
}

// --- Bad input ------------------------------------------------------------------

struct Bad {
  std::string what;
  grpc::StatusCode code;
  std::string field;  // the message starts with it
};

void expect(const grpc::Status& status, const Bad& bad) {
  EXPECT_EQ(status.error_code(), bad.code) << bad.what << ": " << status.error_message();
  EXPECT_TRUE(status.error_message().starts_with(bad.field)) << bad.what << ": " << status.error_message();
}

TEST_F(ResultServiceTest, BadListRequestsAreRefusedNamingTheField) {
  const std::vector<std::pair<Bad, std::function<void(v1::ListResultsRequest&)>>> cases = {
      {{"no check", grpc::StatusCode::INVALID_ARGUMENT, "check: required"}, [](auto& r) { r.clear_check(); }},
      {{"malformed check", grpc::StatusCode::INVALID_ARGUMENT, "check: not a check name"},
       [](auto& r) { r.set_check("Shop Home"); }},
      {{"over-long check", grpc::StatusCode::INVALID_ARGUMENT, "check: not a check name"},
       [](auto& r) { r.set_check(std::string(100'000, 'a')); }},
      {{"unknown check", grpc::StatusCode::NOT_FOUND, "check: no check named \"gone\""},
       [](auto& r) { r.set_check("gone"); }},
      {{"negative page size", grpc::StatusCode::INVALID_ARGUMENT, "page_size:"}, [](auto& r) { r.set_page_size(-1); }},
      {{"page size too large", grpc::StatusCode::INVALID_ARGUMENT, "page_size:"},
       [](auto& r) { r.set_page_size(1001); }},
      {{"garbage page token", grpc::StatusCode::INVALID_ARGUMENT, "page_token:"},
       [](auto& r) { r.set_page_token("not a token!"); }},
      {{"another list's token", grpc::StatusCode::INVALID_ARGUMENT, "page_token:"},
       [](auto& r) { r.set_page_token(coordinator::encode_page_token("probes.v1:", "eu-1")); }},
      {{"token with a bad position", grpc::StatusCode::INVALID_ARGUMENT, "page_token:"},
       [](auto& r) { r.set_page_token(coordinator::encode_page_token("results.v1:", "1 2")); }},
      {{"end before start", grpc::StatusCode::INVALID_ARGUMENT, "end_time:"},
       [](auto& r) {
         *r.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
         *r.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 - 1);
       }},
      {{"invalid timestamp", grpc::StatusCode::INVALID_ARGUMENT, "start_time:"},
       [](auto& r) { r.mutable_start_time()->set_nanos(-5); }},
      {{"class out of range", grpc::StatusCode::INVALID_ARGUMENT, "failure_class:"},
       [](auto& r) { r.set_failure_class(static_cast<v1::FailureClass>(9999)); }},
      {{"over-long region", grpc::StatusCode::INVALID_ARGUMENT, "region:"},
       [](auto& r) { r.set_region(std::string(100'000, 'x')); }},
      // (Text that is not UTF-8 never reaches the service: gRPC's parser
      // refuses the request, as INTERNAL.)
      {{"region with NUL", grpc::StatusCode::INVALID_ARGUMENT, "region:"},
       [](auto& r) { r.set_region(std::string("e\0u", 3)); }},
      {{"over-long probe", grpc::StatusCode::INVALID_ARGUMENT, "probe_id:"},
       [](auto& r) { r.set_probe_id(std::string(257, 'p')); }},
      {{"probe with NUL", grpc::StatusCode::INVALID_ARGUMENT, "probe_id:"},
       [](auto& r) { r.set_probe_id(std::string("eu\0-1", 5)); }},
  };
  for (const auto& [bad, mutate] : cases) {
    v1::ListResultsRequest request;
    request.set_check("shop");
    mutate(request);
    v1::ListResultsResponse response;
    expect(list(request, &response), bad);
  }
}

TEST_F(ResultServiceTest, BadSummaryRequestsAreRefusedNamingTheField) {
  const std::vector<std::pair<Bad, std::function<void(v1::GetCheckSummaryRequest&)>>> cases = {
      {{"no check", grpc::StatusCode::INVALID_ARGUMENT, "check: required"}, [](auto& r) { r.clear_check(); }},
      {{"malformed check", grpc::StatusCode::INVALID_ARGUMENT, "check: not a check name"},
       [](auto& r) { r.set_check("-shop"); }},
      {{"unknown check", grpc::StatusCode::NOT_FOUND, "check: no check named \"gone\""},
       [](auto& r) { r.set_check("gone"); }},
      {{"end before start", grpc::StatusCode::INVALID_ARGUMENT, "end_time:"},
       [](auto& r) {
         *r.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
         *r.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0 - 60);
       }},
      {{"empty window", grpc::StatusCode::INVALID_ARGUMENT, "end_time:"},
       [](auto& r) {
         *r.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
         *r.mutable_end_time() = TimeUtil::SecondsToTimestamp(kT0);
       }},
      {{"window and start", grpc::StatusCode::INVALID_ARGUMENT, "window:"},
       [](auto& r) {
         *r.mutable_start_time() = TimeUtil::SecondsToTimestamp(kT0);
         *r.mutable_window() = TimeUtil::HoursToDuration(1);
       }},
      {{"window too short", grpc::StatusCode::INVALID_ARGUMENT, "window:"},
       [](auto& r) { *r.mutable_window() = TimeUtil::SecondsToDuration(59); }},
      {{"window too long", grpc::StatusCode::INVALID_ARGUMENT, "window:"},
       [](auto& r) { *r.mutable_window() = TimeUtil::HoursToDuration(31 * 24 + 1); }},
      {{"negative window", grpc::StatusCode::INVALID_ARGUMENT, "window:"},
       [](auto& r) { *r.mutable_window() = TimeUtil::HoursToDuration(-1); }},
      {{"huge window", grpc::StatusCode::INVALID_ARGUMENT, "window:"},
       [](auto& r) { r.mutable_window()->set_seconds(INT64_MAX); }},
      {{"invalid end", grpc::StatusCode::INVALID_ARGUMENT, "end_time:"},
       [](auto& r) { r.mutable_end_time()->set_seconds(INT64_MAX); }},
  };
  for (const auto& [bad, mutate] : cases) {
    v1::GetCheckSummaryRequest request;
    request.set_check("shop");
    mutate(request);
    v1::GetCheckSummaryResponse response;
    expect(summary(request, &response), bad);
  }
}

TEST_F(ResultServiceTest, NoWrongOrProbeTokenIsUnauthenticated) {
  for (const std::string& token : {std::string(), generate_token(), probe_tokens_->at("eu-1")}) {
    v1::ListResultsRequest list_request;
    list_request.set_check("shop");
    v1::ListResultsResponse list_response;
    EXPECT_EQ(list(list_request, &list_response, token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(list_response.results_size(), 0);
    v1::GetCheckSummaryRequest summary_request;
    summary_request.set_check("shop");
    v1::GetCheckSummaryResponse summary_response;
    EXPECT_EQ(summary(summary_request, &summary_response, token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_FALSE(summary_response.has_summary());
  }
}

}  // namespace
}  // namespace vantage
