// CheckService against a real coordinator on loopback with real PostgreSQL:
// the round trip of a check created, read, listed, updated and deleted; a
// probe's stream getting each change as a diff; bad input per RPC, each
// refused with the field named; the checks file's checks are the file's.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>

#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "tests/support/raw_probe.h"
#include "tests/support/test_certs.h"
#include "vantage/v1/check_service.grpc.pb.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

using Probe = testing::RawProbe;

// One coordinator for the suite; each test uses check names of its own.
class CheckServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new testing::ApiDatabase();
    store_ = &db_->store;
    probe_token_ = new std::string(store_->add_probe("eu-1", "eu"));
    write_token_ = new std::string(store_->add_api_token("writer", "write"));
    read_token_ = new std::string(store_->add_api_token("reader", "read"));
    checks_file_ = new testing::TempChecksFile("vantage-check-service-test",
                                               "checks:\n  - name: from-file\n    url: http://127.0.0.1:9/\n    interval: 1h\n");
    auto options = testing::loopback_coordinator_options(db_->url);
    options.checks_file = checks_file_->path();
    coordinator_ = new coordinator::Coordinator(options);
    coordinator_->start();
  }
  static void TearDownTestSuite() {
    delete coordinator_;
    delete checks_file_;
    delete probe_token_;
    delete write_token_;
    delete read_token_;
    delete db_;
  }

  std::unique_ptr<v1::CheckService::Stub> stub() {
    return v1::CheckService::NewStub(testing::loopback_channel(coordinator_->grpc_port()));
  }
  // Calls `rpc` with `token` as the bearer token.
  template <typename Request, typename Response, typename Rpc>
  grpc::Status call(Rpc rpc, const Request& request, Response* response, const std::string& token) {
    grpc::ClientContext context;
    testing::authorize(context, token);
    auto s = stub();
    return (s.get()->*rpc)(&context, request, response);
  }
  grpc::Status create(const v1::Check& check, v1::Check* out = nullptr, const std::string* token = nullptr) {
    v1::CreateCheckRequest request;
    *request.mutable_check() = check;
    v1::CreateCheckResponse response;
    auto status = call(&v1::CheckService::Stub::CreateCheck, request, &response, token ? *token : *write_token_);
    if (out) *out = response.check();
    return status;
  }
  grpc::Status get(const std::string& name, v1::Check* out = nullptr) {
    v1::GetCheckRequest request;
    request.set_name(name);
    v1::GetCheckResponse response;
    auto status = call(&v1::CheckService::Stub::GetCheck, request, &response, *read_token_);
    if (out) *out = response.check();
    return status;
  }
  grpc::Status update(const v1::UpdateCheckRequest& request, v1::Check* out = nullptr) {
    v1::UpdateCheckResponse response;
    auto status = call(&v1::CheckService::Stub::UpdateCheck, request, &response, *write_token_);
    if (out) *out = response.check();
    return status;
  }
  grpc::Status remove(const std::string& name) {
    v1::DeleteCheckRequest request;
    request.set_name(name);
    v1::DeleteCheckResponse response;
    return call(&v1::CheckService::Stub::DeleteCheck, request, &response, *write_token_);
  }
  grpc::Status list(const v1::ListChecksRequest& request, v1::ListChecksResponse* response) {
    return call(&v1::CheckService::Stub::ListChecks, request, response, *read_token_);
  }

  static v1::Check check(const std::string& name, const std::string& team = "web") {
    v1::Check c;
    c.set_name(name);
    c.set_url("http://127.0.0.1:9/" + name);
    c.mutable_interval()->set_seconds(3600);
    (*c.mutable_labels())["team"] = team;
    return c;
  }
  static bool names(const grpc::Status& status, const std::string& text) {
    return status.error_message().find(text) != std::string::npos;
  }

  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::string *probe_token_ = nullptr, *write_token_ = nullptr, *read_token_ = nullptr;
  static inline coordinator::Coordinator* coordinator_ = nullptr;
  static inline testing::TempChecksFile* checks_file_ = nullptr;
};

TEST_F(CheckServiceTest, CreateGetListUpdateDeleteRoundTrip) {
  v1::Check created;
  ASSERT_TRUE(create(check("round-trip"), &created).ok());
  EXPECT_GT(created.id(), 0);
  EXPECT_EQ(created.version(), 1);
  EXPECT_EQ(created.source(), v1::CHECK_SOURCE_API);
  EXPECT_EQ(created.method(), "GET");  // validate_check's default

  v1::Check got;
  ASSERT_TRUE(get("round-trip", &got).ok());
  EXPECT_EQ(got.id(), created.id());
  EXPECT_EQ(got.url(), "http://127.0.0.1:9/round-trip");

  v1::ListChecksRequest by_label;
  (*by_label.mutable_label_selector())["team"] = "web";
  v1::ListChecksResponse listed;
  ASSERT_TRUE(list(by_label, &listed).ok());
  bool found = false;
  for (const auto& c : listed.checks()) {
    EXPECT_EQ(c.labels().at("team"), "web");
    found = found || c.name() == "round-trip";
  }
  EXPECT_TRUE(found);

  // A mask: only the url changes; the labels stay.
  v1::UpdateCheckRequest request;
  request.mutable_check()->set_name("round-trip");
  request.mutable_check()->set_url("http://127.0.0.1:9/moved");
  request.mutable_update_mask()->add_paths("url");
  request.set_expected_version(1);
  v1::Check updated;
  auto status = update(request, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.version(), 2);
  EXPECT_EQ(updated.url(), "http://127.0.0.1:9/moved");
  EXPECT_EQ(updated.labels().at("team"), "web");
  EXPECT_EQ(updated.id(), created.id());

  ASSERT_TRUE(remove("round-trip").ok());
  status = get("round-trip");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(names(status, "round-trip")) << status.error_message();
}

TEST_F(CheckServiceTest, AProbeGetsADiffAfterCreateAndAfterDelete) {
  Probe probe(coordinator_->grpc_port(), *probe_token_, "eu-1", "eu");
  ASSERT_TRUE(probe.next(&v1::CoordinatorMessage::has_assignment).has_value());

  v1::Check created;
  ASSERT_TRUE(create(check("to-probe"), &created).ok());
  auto diff = probe.next(&v1::CoordinatorMessage::has_assignment_diff);
  ASSERT_TRUE(diff.has_value());
  ASSERT_EQ(diff->message.assignment_diff().added_size(), 1);
  EXPECT_EQ(diff->message.assignment_diff().added(0).name(), "to-probe");

  ASSERT_TRUE(remove("to-probe").ok());
  diff = probe.next(&v1::CoordinatorMessage::has_assignment_diff);
  ASSERT_TRUE(diff.has_value());
  ASSERT_EQ(diff->message.assignment_diff().removed_check_ids_size(), 1);
  EXPECT_EQ(diff->message.assignment_diff().removed_check_ids(0), created.id());
}

TEST_F(CheckServiceTest, CreateRefusesBadInputNamingTheField) {
  auto nameless = check("");
  auto status = create(nameless);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "check.name")) << status.error_message();

  auto too_often = check("too-often");
  too_often.mutable_interval()->set_seconds(0);
  too_often.mutable_interval()->set_nanos(1000);
  status = create(too_often);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "check.interval")) << status.error_message();

  ASSERT_TRUE(create(check("taken")).ok());
  status = create(check("taken"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(names(status, "taken")) << status.error_message();

  status = create(check("from-file"));  // the file's name
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  status = create(check("read-only-caller"), nullptr, read_token_);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(get("read-only-caller").error_code(), grpc::StatusCode::NOT_FOUND);
}

// Assertions, redirects, TLS, IP family, cache busting: validated as the
// checks file's are (validate_check), each refusal naming the field.
TEST_F(CheckServiceTest, CreateAndUpdateRefuseBadNewFieldsNamingThemAndWriteNothing) {
  struct Bad {
    const char* field;  // named in the error
    std::function<void(v1::Check&)> spoil;
  };
  const std::vector<Bad> cases{
      {"check.assertions[0].pattern: is not an RE2 regular expression: missing )",
       [](v1::Check& c) {
         auto* a = c.add_assertions();
         a->set_target(v1::Assertion::TARGET_BODY);
         a->set_pattern("ok(");
       }},
      {"check.assertions[0].header_name", [](v1::Check& c) {
         auto* a = c.add_assertions();
         a->set_target(v1::Assertion::TARGET_HEADER);
         a->set_header_name("Bad Name");
         a->set_pattern("x");
       }},
      {"check.ip_family: 7 is not an IpFamily", [](v1::Check& c) { c.set_ip_family(static_cast<v1::IpFamily>(7)); }},
      {"check.follow_redirects: 21 is outside the range 0 to 20", [](v1::Check& c) { c.set_follow_redirects(21); }},
      {"check.body_limit_bytes: 100 bytes", [](v1::Check& c) { c.set_body_limit_bytes(100); }},
      {"check.tls.ca_pem: holds no PEM certificate", [](v1::Check& c) { c.mutable_tls()->set_ca_pem("garbage"); }},
      {"check.cache_busting_param", [](v1::Check& c) { c.set_cache_busting_param("a=b"); }},
  };
  ASSERT_TRUE(create(check("new-fields-stay")).ok());
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.field);
    auto refused = check("new-fields-refused");
    bad.spoil(refused);
    auto status = create(refused);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(names(status, bad.field)) << status.error_message();
    EXPECT_EQ(get("new-fields-refused").error_code(), grpc::StatusCode::NOT_FOUND) << "nothing written";

    v1::UpdateCheckRequest request;
    *request.mutable_check() = check("new-fields-stay");
    bad.spoil(*request.mutable_check());
    status = update(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(names(status, bad.field)) << status.error_message();
  }
  v1::Check got;
  ASSERT_TRUE(get("new-fields-stay", &got).ok());
  EXPECT_EQ(got.version(), 1) << "no update was written";
  EXPECT_EQ(got.assertions_size(), 0);
  EXPECT_FALSE(got.has_tls());
}

TEST_F(CheckServiceTest, TheNewFieldsRoundTripAndAMaskNamesThem) {
  const testing::TestCa ca("check-service-test-ca");
  auto full = check("new-fields");
  auto* body = full.add_assertions();
  body->set_target(v1::Assertion::TARGET_BODY);
  body->set_pattern("\"status\":\\s*\"ok\"");
  auto* header = full.add_assertions();
  header->set_target(v1::Assertion::TARGET_HEADER);
  header->set_header_name("Content-Type");
  header->set_pattern("^application/json");
  header->set_negate(true);
  full.set_body_limit_bytes(64 * 1024);
  full.set_follow_redirects(5);
  full.mutable_tls()->set_ca_pem(ca.pem);
  full.set_ip_family(v1::IP_FAMILY_PREFER_V6);
  full.set_cache_busting_param("cb");
  v1::Check created;
  auto status = create(full, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();

  v1::Check got;
  ASSERT_TRUE(get("new-fields", &got).ok());
  ASSERT_EQ(got.assertions_size(), 2);
  EXPECT_EQ(got.assertions(0).target(), v1::Assertion::TARGET_BODY);
  EXPECT_EQ(got.assertions(0).pattern(), body->pattern());
  EXPECT_EQ(got.assertions(1).header_name(), "Content-Type");
  EXPECT_TRUE(got.assertions(1).negate());
  EXPECT_EQ(got.body_limit_bytes(), 64u * 1024);
  EXPECT_EQ(got.follow_redirects(), 5u);
  EXPECT_EQ(got.tls().ca_pem(), ca.pem);
  EXPECT_FALSE(got.tls().skip_verify());
  EXPECT_EQ(got.ip_family(), v1::IP_FAMILY_PREFER_V6);
  EXPECT_EQ(got.cache_busting_param(), "cb");

  // A mask of one new field changes it alone.
  v1::UpdateCheckRequest request;
  request.mutable_check()->set_name("new-fields");
  request.mutable_check()->set_follow_redirects(2);
  request.mutable_check()->mutable_tls()->set_skip_verify(true);
  request.mutable_update_mask()->add_paths("follow_redirects");
  request.mutable_update_mask()->add_paths("tls.skip_verify");
  v1::Check updated;
  status = update(request, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.follow_redirects(), 2u);
  EXPECT_TRUE(updated.tls().skip_verify());
  EXPECT_EQ(updated.tls().ca_pem(), ca.pem) << "tls.skip_verify alone: the CA stays";
  EXPECT_EQ(updated.assertions_size(), 2);
  EXPECT_EQ(updated.ip_family(), v1::IP_FAMILY_PREFER_V6);

  // "tls" replaces the whole block; a masked field left unset is cleared.
  request = {};
  request.mutable_check()->set_name("new-fields");
  request.mutable_update_mask()->add_paths("tls");
  request.mutable_update_mask()->add_paths("ip_family");
  request.mutable_update_mask()->add_paths("assertions");
  status = update(request, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(updated.has_tls() && (!updated.tls().ca_pem().empty() || updated.tls().skip_verify()))
      << updated.tls().ShortDebugString();
  EXPECT_EQ(updated.ip_family(), v1::IP_FAMILY_UNSPECIFIED);
  EXPECT_EQ(updated.assertions_size(), 0);
  EXPECT_EQ(updated.follow_redirects(), 2u);

  // A masked new field is validated like the rest.
  request = {};
  request.mutable_check()->set_name("new-fields");
  request.mutable_check()->set_follow_redirects(99);
  request.mutable_update_mask()->add_paths("follow_redirects");
  status = update(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "check.follow_redirects")) << status.error_message();
  ASSERT_TRUE(get("new-fields", &got).ok());
  EXPECT_EQ(got.follow_redirects(), 2u);
}

TEST_F(CheckServiceTest, GetAndDeleteOfAnUnknownCheckAreNotFound) {
  auto status = get("no-such-check");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(names(status, "no-such-check")) << status.error_message();
  status = remove("no-such-check");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  status = get("");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "name")) << status.error_message();
}

TEST_F(CheckServiceTest, UpdateRefusesAStaleVersionNamingBoth) {
  ASSERT_TRUE(create(check("stale")).ok());
  v1::UpdateCheckRequest request;
  *request.mutable_check() = check("stale", "ops");
  request.set_expected_version(7);
  auto status = update(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(names(status, "expected_version: 7")) << status.error_message();
  EXPECT_TRUE(names(status, "version 1")) << status.error_message();
  v1::Check got;
  ASSERT_TRUE(get("stale", &got).ok());
  EXPECT_EQ(got.labels().at("team"), "web");  // unchanged

  request.mutable_check()->set_name("no-such-check");
  request.set_expected_version(0);
  EXPECT_EQ(update(request).error_code(), grpc::StatusCode::NOT_FOUND);

  request.mutable_check()->set_name("stale");
  request.mutable_update_mask()->add_paths("version");
  status = update(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "update_mask")) << status.error_message();
}

TEST_F(CheckServiceTest, TheFilesChecksAreChangedOnlyInTheFile) {
  v1::UpdateCheckRequest request;
  *request.mutable_check() = check("from-file");
  auto status = update(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(names(status, checks_file_->path())) << status.error_message();
  status = remove("from-file");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(names(status, checks_file_->path())) << status.error_message();
  EXPECT_TRUE(get("from-file").ok());
}

TEST_F(CheckServiceTest, ListPagesWithOpaqueTokensAndRefusesAForgedOne) {
  for (const auto* name : {"page-a", "page-b", "page-c"}) ASSERT_TRUE(create(check(name, "paged")).ok());
  v1::ListChecksRequest request;
  (*request.mutable_label_selector())["team"] = "paged";
  request.set_page_size(2);
  v1::ListChecksResponse first, second;
  ASSERT_TRUE(list(request, &first).ok());
  ASSERT_EQ(first.checks_size(), 2);
  EXPECT_EQ(first.checks(0).name(), "page-a");
  EXPECT_EQ(first.checks(1).name(), "page-b");
  ASSERT_FALSE(first.next_page_token().empty());
  request.set_page_token(first.next_page_token());
  ASSERT_TRUE(list(request, &second).ok());
  ASSERT_EQ(second.checks_size(), 1);
  EXPECT_EQ(second.checks(0).name(), "page-c");
  EXPECT_TRUE(second.next_page_token().empty());

  for (const std::string& forged : {std::string("page-b"), std::string("!!"), std::string(5000, 'A')}) {
    request.set_page_token(forged);
    v1::ListChecksResponse ignored;
    auto status = list(request, &ignored);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << forged.substr(0, 20);
    EXPECT_TRUE(names(status, "page_token")) << status.error_message();
  }
  request.set_page_token("");
  request.set_page_size(1001);
  v1::ListChecksResponse ignored;
  auto status = list(request, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(names(status, "page_size")) << status.error_message();
}

// The storage step alone: the version is checked in the write's transaction,
// so a write that lost a race changes nothing.
TEST_F(CheckServiceTest, StorageChecksVersionAndOwnerInTheWrite) {
  auto created = store_->create_api_check(check("raced"));
  ASSERT_EQ(created.outcome, storage::ApiCheckWrite::Outcome::kOk);
  auto changed = check("raced", "ops");
  auto stale = store_->update_api_check(changed, created.check.version() + 1);
  EXPECT_EQ(stale.outcome, storage::ApiCheckWrite::Outcome::kVersionMismatch);
  EXPECT_EQ(stale.stored_version, created.check.version());
  v1::Check got;
  ASSERT_TRUE(get("raced", &got).ok());
  EXPECT_EQ(got.labels().at("team"), "web");
  EXPECT_EQ(store_->delete_api_check("raced", created.check.version() + 1).outcome,
            storage::ApiCheckWrite::Outcome::kVersionMismatch);
  EXPECT_EQ(store_->update_api_check(check("from-file"), 0).outcome, storage::ApiCheckWrite::Outcome::kFileOwned);
  EXPECT_EQ(store_->delete_api_check("from-file", 0).outcome, storage::ApiCheckWrite::Outcome::kFileOwned);
  EXPECT_EQ(store_->delete_api_check("raced", created.check.version()).outcome, storage::ApiCheckWrite::Outcome::kOk);
}

}  // namespace
}  // namespace vantage
