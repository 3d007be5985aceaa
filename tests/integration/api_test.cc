// The public API's security and FleetService: API tokens (the coordinator's
// subcommands, the stored hash), the authorization seam (coordinator/api_auth.h)
// against a real coordinator on loopback with real PostgreSQL, and ListProbes
// with its pagination and bad input.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/test/server_context_test_spouse.h>
#include <prometheus/registry.h>

#include <pqxx/pqxx>
#include <regex>
#include <set>

#include "common/token.h"
#include "coordinator/api_auth.h"
#include "coordinator/coordinator.h"
#include "coordinator/fleet_service.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "vantage/v1/fleet_service.grpc.pb.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage {
namespace {

using coordinator::ApiAuthorizer;
using coordinator::ApiCaller;
using coordinator::Role;
using testing::PostgresEnvironment;
using testing::bearer;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// Eleven probes in two regions: pages of 4 are 4, 4, 3.
const std::vector<std::pair<std::string, std::string>> kProbes = {
    {"ap-1", "ap"}, {"eu-1", "eu"}, {"eu-2", "eu"}, {"eu-3", "eu"}, {"us-1", "us"}, {"us-2", "us"},
    {"us-3", "us"}, {"us-4", "us"}, {"us-5", "us"}, {"us-6", "us"}, {"us-7", "us"}};

// One coordinator for the whole suite (an Exposer takes seconds to stop);
// each test makes the tokens it needs, with names of its own.
class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new testing::ApiDatabase();
    store_ = &db_->store;
    probe_tokens_ = new std::map<std::string, std::string>;
    for (const auto& [name, region] : kProbes) (*probe_tokens_)[name] = store_->add_probe(name, region);
    auto options = testing::loopback_coordinator_options(db_->url);
    // One check, run in region ap only (no real probe runs it here).
    checks_file_ = new testing::TempChecksFile("vantage-api-test", "checks:\n  - name: ap-home\n    url: http://127.0.0.1:9/\n"
                                                                   "    interval: 1s\n    timeout: 500ms\n    regions: [ap]\n");
    options.checks_file = checks_file_->path();
    coordinator_ = new coordinator::Coordinator(options);
    coordinator_->start();
  }
  static void TearDownTestSuite() {
    delete coordinator_;
    delete checks_file_;
    delete probe_tokens_;
    delete db_;
  }

  std::shared_ptr<grpc::Channel> channel() {
    return testing::loopback_channel(coordinator_->grpc_port());
  }

  // ListProbes with `authorization` as the metadata (none if empty).
  grpc::Status list_probes(const std::string& authorization, const v1::ListProbesRequest& request,
                           v1::ListProbesResponse* response) {
    grpc::ClientContext context;
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    return v1::FleetService::NewStub(channel())->ListProbes(&context, request, response);
  }
  grpc::Status list_probes(const std::string& authorization, v1::ListProbesResponse* response = nullptr) {
    v1::ListProbesResponse ignored;
    return list_probes(authorization, v1::ListProbesRequest(), response ? response : &ignored);
  }

  double auth_failures(const std::string& reason) {
    auto metrics = testing::http_get(coordinator_->metrics_port(), "/metrics");
    return testing::metric_value(metrics, "vantage_api_auth_failures_total{reason=\"" + reason + "\"}").value_or(-1);
  }

  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::map<std::string, std::string>* probe_tokens_ = nullptr;
  static inline coordinator::Coordinator* coordinator_ = nullptr;
  static inline testing::TempChecksFile* checks_file_ = nullptr;
};

// --- The authorization matrix, over gRPC ------------------------------------

TEST_F(ApiTest, EveryFailureReasonIsExportedFromTheStart) {
  auto metrics = testing::http_get(coordinator_->metrics_port(), "/metrics");
  for (const char* reason : coordinator::kApiAuthFailureReasons) {
    EXPECT_TRUE(
        testing::metric_value(metrics, std::string("vantage_api_auth_failures_total{reason=\"") + reason + "\"}")
            .has_value())
        << reason << "\n" << metrics;
  }
}

TEST_F(ApiTest, NoTokenIsUnauthenticatedAndSaysHowToSendOne) {
  const double before = auth_failures("missing_token");
  auto status = list_probes("");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "missing API token: send metadata 'authorization: Bearer <token>'");
  EXPECT_EQ(auth_failures("missing_token"), before + 1);
}

TEST_F(ApiTest, MalformedAuthorizationIsUnauthenticated) {
  const auto token = store_->add_api_token("malformed-header", "read");
  for (const std::string& header : {"Basic " + token, token, std::string("Bearer"), std::string("Bearer   ")}) {
    const double before = auth_failures("malformed_header");
    auto status = list_probes(header);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << header;
    EXPECT_NE(status.error_message().find("expected 'Bearer <token>'"), std::string::npos) << status.error_message();
    EXPECT_EQ(auth_failures("malformed_header"), before + 1) << header;
  }
}

TEST_F(ApiTest, WrongTokenIsUnauthenticated) {
  for (const std::string& token : {generate_token(), std::string("not-a-token"), std::string(5000, 'a')}) {
    const double before = auth_failures("unknown_token");
    auto status = list_probes(bearer(token));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_NE(status.error_message().find("unknown API token"), std::string::npos) << status.error_message();
    EXPECT_EQ(auth_failures("unknown_token"), before + 1);
  }
}

TEST_F(ApiTest, ProbeTokenIsNotAnApiTokenAndIsToldApartFromNoOtherToken) {
  auto probe_status = list_probes(bearer(probe_tokens_->at("eu-1")));
  EXPECT_EQ(probe_status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The same answer as for a token that is nothing: it does not reveal that
  // the token is a probe's.
  auto wrong_status = list_probes(bearer(generate_token()));
  EXPECT_EQ(probe_status.error_message(), wrong_status.error_message());
  EXPECT_NE(probe_status.error_message().find("probe tokens are not API tokens"), std::string::npos);
}

TEST_F(ApiTest, RevokedTokenIsUnauthenticated) {
  const auto token = store_->add_api_token("revoked-before-use", "admin");
  ASSERT_TRUE(store_->revoke_api_token("revoked-before-use"));
  const double before = auth_failures("revoked_token");
  auto status = list_probes(bearer(token));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "API token revoked");
  EXPECT_EQ(auth_failures("revoked_token"), before + 1);
}

TEST_F(ApiTest, ReadTokenListsProbesAndItsUseIsRecorded) {
  const auto token = store_->add_api_token("reader", "read");
  v1::ListProbesResponse response;
  auto status = list_probes(bearer(token), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.probes_size(), static_cast<int>(kProbes.size()));
  for (const auto& t : store_->list_api_tokens()) {
    if (t.name == "reader") {
      EXPECT_TRUE(t.last_used_time.has_value());
    }
  }
  // Write and admin include read.
  for (const char* role : {"write", "admin"}) {
    const auto higher = store_->add_api_token(std::string("reader-") + role, role);
    EXPECT_TRUE(list_probes(bearer(higher)).ok()) << role;
  }
}

TEST_F(ApiTest, ApiTokenCannotOpenAProbeStream) {
  const auto token = store_->add_api_token("not-a-probe", "admin");
  grpc::ClientContext context;
  testing::authorize(context, token);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = v1::ProbeService::NewStub(channel())->Connect(&context);
  v1::ProbeMessage hello;
  hello.mutable_hello()->set_probe_id("not-a-probe");
  hello.mutable_hello()->set_region("eu");
  stream->Write(hello);
  v1::CoordinatorMessage in;
  EXPECT_FALSE(stream->Read(&in)) << "the coordinator answered an API token's stream: " << in.DebugString();
  auto status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(status.error_message(), "unknown probe token");
}

// --- ListProbes ---------------------------------------------------------------

TEST_F(ApiTest, PagesCoverEveryProbeOnceInNameOrder) {
  const auto token = store_->add_api_token("pager", "read");
  std::vector<std::string> seen;
  std::vector<int> page_sizes;
  v1::ListProbesRequest request;
  request.set_page_size(4);
  for (int page = 0; page < 10; ++page) {
    v1::ListProbesResponse response;
    auto status = list_probes(bearer(token), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    page_sizes.push_back(response.probes_size());
    for (const auto& p : response.probes()) seen.push_back(p.id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  std::vector<std::string> expected;
  for (const auto& [name, region] : kProbes) expected.push_back(name);
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(page_sizes, (std::vector<int>{4, 4, 3}));
}

TEST_F(ApiTest, RegionFilterAndTheDefaultPage) {
  const auto token = store_->add_api_token("region-reader", "read");
  v1::ListProbesRequest request;
  request.set_region("eu");
  v1::ListProbesResponse response;
  ASSERT_TRUE(list_probes(bearer(token), request, &response).ok());
  std::vector<std::string> names;
  for (const auto& p : response.probes()) {
    names.push_back(p.id());
    EXPECT_EQ(p.region(), "eu");
  }
  EXPECT_EQ(names, (std::vector<std::string>{"eu-1", "eu-2", "eu-3"}));
  EXPECT_TRUE(response.next_page_token().empty());
}

TEST_F(ApiTest, BadPageSizeRegionAndPageTokenAreRefusedNamingTheField) {
  const auto token = store_->add_api_token("bad-input", "read");
  auto expect_invalid = [&](const v1::ListProbesRequest& request, const std::string& field) {
    v1::ListProbesResponse response;
    auto status = list_probes(bearer(token), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << request.DebugString();
    EXPECT_TRUE(status.error_message().starts_with(field + ": ")) << status.error_message();
    EXPECT_EQ(response.probes_size(), 0);
  };
  v1::ListProbesRequest request;
  for (int size : {-1, 1001, INT32_MIN, INT32_MAX}) {
    request.set_page_size(size);
    expect_invalid(request, "page_size");
  }
  request.set_page_size(1000);  // the largest allowed
  v1::ListProbesResponse response;
  EXPECT_TRUE(list_probes(bearer(token), request, &response).ok());

  request = {};
  for (const std::string& bad : {std::string("!!!"), std::string("eu-1"), coordinator::encode_probe_page_token("x") + "A",
                                std::string(5000, 'A'), std::string("a\0b", 3)}) {
    request.set_page_token(bad);
    expect_invalid(request, "page_token");
  }
  request = {};
  request.set_region(std::string(300, 'r'));
  expect_invalid(request, "region");
  request.set_region(std::string("eu\0", 3));
  expect_invalid(request, "region");
}

TEST_F(ApiTest, ConnectedProbeShowsItsStreamVersionAndLastSeen) {
  const auto token = store_->add_api_token("fleet-watcher", "read");
  grpc::ClientContext context;
  context.AddMetadata("authorization", bearer(probe_tokens_->at("ap-1")));
  auto stream = v1::ProbeService::NewStub(channel())->Connect(&context);
  v1::ProbeMessage hello;
  hello.mutable_hello()->set_probe_id("ap-1");
  hello.mutable_hello()->set_region("ap");
  hello.mutable_hello()->set_version("9.9.9-test");
  ASSERT_TRUE(stream->Write(hello));
  v1::CoordinatorMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome()) << welcome.DebugString();
  v1::CoordinatorMessage assignment;
  ASSERT_TRUE(stream->Read(&assignment));
  ASSERT_EQ(assignment.assignment().checks_size(), 1) << assignment.DebugString();
  const int64_t check_id = assignment.assignment().checks(0).id();

  // 30 results, stored: 0.5 a second over the last minute.
  v1::ProbeMessage batch;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  for (uint64_t seq = 1; seq <= 30; ++seq) {
    auto* r = batch.mutable_results()->add_results();
    r->set_sequence(seq);
    r->set_check_id(check_id);
    r->mutable_start_time()->set_seconds(now - 10);
    r->mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
    r->mutable_edge()->mutable_response()->set_status(200);
  }
  ASSERT_TRUE(stream->Write(batch));
  v1::CoordinatorMessage ack;
  ASSERT_TRUE(stream->Read(&ack));
  ASSERT_EQ(ack.ack().sequence(), 30u) << ack.DebugString();

  auto find = [&](const std::string& id) {
    v1::ListProbesResponse response;
    EXPECT_TRUE(list_probes(bearer(token), &response).ok());
    for (const auto& p : response.probes()) {
      if (p.id() == id) return p;
    }
    ADD_FAILURE() << id << " not listed";
    return v1::Probe();
  };
  // The session is registered right after the welcome is queued.
  // The rate is counted by the commit's callback, which may come just after the ack.
  ASSERT_TRUE(testing::eventually(
      [&] {
        const auto p = find("ap-1");
        return p.connected() && p.results_per_second() > 0;
      },
      std::chrono::seconds(10)));
  const auto ap = find("ap-1");
  EXPECT_EQ(ap.region(), "ap");
  EXPECT_EQ(ap.version(), "9.9.9-test");
  EXPECT_GT(ap.last_seen_time().seconds(), 0);
  EXPECT_EQ(ap.last_stored_sequence(), 30u);
  EXPECT_EQ(ap.checks_assigned(), 1u);
  EXPECT_DOUBLE_EQ(ap.results_per_second(), 0.5);
  EXPECT_FALSE(ap.has_spool_backlog());
  const auto us = find("us-7");
  EXPECT_FALSE(us.connected());
  EXPECT_FALSE(us.has_last_seen_time());
  EXPECT_EQ(us.checks_assigned(), 0u);
  EXPECT_TRUE(us.has_results_per_second());
  EXPECT_EQ(us.results_per_second(), 0);

  context.TryCancel();
  stream->Finish();
  EXPECT_TRUE(testing::eventually([&] { return !find("ap-1").connected(); }, std::chrono::seconds(10)));
}

// --- The subcommands, as an operator runs them --------------------------------

TEST_F(ApiTest, AddListRevokeApiTokensFromTheCommandLine) {
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {VANTAGE_COORDINATOR_BIN});
    args.insert(args.end(), {"--database", db_->url});
    return testing::run_command(args);
  };
  auto added = run({"add-api-token", "--name", "deploy-bot", "--role", "write"});
  ASSERT_EQ(added.exit_code, 0) << added.output;
  std::smatch match;
  const std::regex hex64("[0-9a-f]{64}");
  ASSERT_TRUE(std::regex_search(added.output, match, hex64)) << added.output;
  const std::string token = match.str();
  // Printed once.
  EXPECT_EQ(added.output.find(token), added.output.rfind(token)) << added.output;

  // Only its hash is stored: no column holds the token.
  {
    pqxx::connection c(db_->url);
    pqxx::read_transaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT token_sha256 FROM api_tokens WHERE name = 'deploy-bot'")[0].as<std::string>(),
              token_sha256_hex(token));
    EXPECT_EQ(tx.exec_params1("SELECT count(*) FROM api_tokens t WHERE strpos(t::text, $1) > 0", token)[0].as<int>(), 0);
    EXPECT_EQ(tx.exec1("SELECT role FROM api_tokens WHERE name = 'deploy-bot'")[0].as<std::string>(), "write");
  }
  // It works on the API.
  EXPECT_TRUE(list_probes(bearer(token)).ok());

  auto listed = run({"list-api-tokens"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_TRUE(std::regex_search(listed.output, std::regex("deploy-bot +write +\\d{4}-\\d\\d-\\d\\dT[^ ]+Z +\\d{4}-[^ ]+Z +-")))
      << listed.output;
  EXPECT_EQ(listed.output.find(token), std::string::npos);
  EXPECT_EQ(listed.output.find(token_sha256_hex(token)), std::string::npos);

  auto revoked = run({"revoke-api-token", "--name", "deploy-bot"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  listed = run({"list-api-tokens"});
  EXPECT_TRUE(std::regex_search(listed.output, std::regex("deploy-bot +write +[^ ]+Z +[^ ]+Z +\\d{4}-[^ ]+Z")))
      << listed.output;
  auto again = run({"revoke-api-token", "--name", "deploy-bot"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("--name \"deploy-bot\": no API token of this name"), std::string::npos) << again.output;
  auto unknown = run({"revoke-api-token", "--name", "never-made"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("--name \"never-made\""), std::string::npos) << unknown.output;
}

TEST_F(ApiTest, BadApiTokenFlagsAreRefusedNamingTheFlag) {
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {VANTAGE_COORDINATOR_BIN});
    args.insert(args.end(), {"--database", db_->url});
    return testing::run_command(args);
  };
  for (const std::string& name : {std::string("Upper"), std::string("-lead"), std::string("under_score"),
                                 std::string(64, 'z'), std::string(""), std::string("sp ace"), std::string("\xff")}) {
    auto r = run({"add-api-token", "--name", name, "--role", "read"});
    EXPECT_EQ(r.exit_code, 1) << name << ": " << r.output;
    EXPECT_NE(r.output.find("--name "), std::string::npos) << r.output;
    EXPECT_EQ(std::regex_search(r.output, std::regex("[0-9a-f]{64}")), false) << r.output;
  }
  EXPECT_EQ(run({"add-api-token", "--name", std::string(63, 'a'), "--role", "read"}).exit_code, 0);

  auto role = run({"add-api-token", "--name", "rooted", "--role", "root"});
  EXPECT_EQ(role.exit_code, 1);
  EXPECT_NE(role.output.find("--role \"root\": must be read, write or admin"), std::string::npos) << role.output;

  ASSERT_EQ(run({"add-api-token", "--name", "twice", "--role", "read"}).exit_code, 0);
  auto twice = run({"add-api-token", "--name", "twice", "--role", "admin"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("--name \"twice\": an API token of this name exists"), std::string::npos) << twice.output;
  pqxx::connection c(db_->url);
  pqxx::read_transaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM api_tokens WHERE name = 'rooted'")[0].as<int>(), 0);
  EXPECT_EQ(tx.exec1("SELECT role FROM api_tokens WHERE name = 'twice'")[0].as<std::string>(), "read");
}

// --- The authorizer alone: roles, the cache and revocation with a scripted clock

class FakeTokens final : public storage::ApiTokenStore {
 public:
  std::optional<storage::ApiTokenRecord> find_api_token(std::string_view hash) override {
    ++lookups;
    auto it = tokens.find(std::string(hash));
    if (it == tokens.end()) return std::nullopt;
    return it->second;
  }
  void record_api_token_use(int32_t) override { ++uses_recorded; }
  std::map<std::string, storage::ApiTokenRecord> tokens;  // by hash
  int lookups = 0;
  int uses_recorded = 0;
};

class AuthorizerTest : public ::testing::Test {
 protected:
  std::string add(const std::string& name, const std::string& role) {
    auto token = generate_token();
    storage::ApiTokenRecord record;
    record.id = static_cast<int32_t>(store.tokens.size() + 1);
    record.name = name;
    record.role = role;
    store.tokens[token_sha256_hex(token)] = record;
    return token;
  }
  grpc::Status authorize(const std::string& token, Role needed, ApiCaller* caller = nullptr) {
    grpc::ServerContext context;
    grpc::testing::ServerContextTestSpouse spouse(&context);
    spouse.AddClientMetadata("authorization", testing::bearer(token));
    ApiCaller ignored;
    return auth.authorize(&context, needed, caller ? caller : &ignored);
  }

  FakeTokens store;
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& failures =
      prometheus::BuildCounter().Name("vantage_api_auth_failures_total").Register(registry);
  FakeClock clock;
  ApiAuthorizer auth{store, failures, clock};
};

TEST_F(AuthorizerTest, RoleTooLowIsPermissionDeniedNamingBothRoles) {
  const auto read = add("reader", "read");
  const auto write = add("writer", "write");
  const auto admin = add("boss", "admin");
  auto status = authorize(read, Role::kWrite);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), "role \"write\" needed; API token \"reader\" has role \"read\"");
  EXPECT_EQ(authorize(write, Role::kAdmin).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(failures.Add({{"reason", "insufficient_role"}}).Value(), 2);
  ApiCaller caller;
  EXPECT_TRUE(authorize(admin, Role::kAdmin, &caller).ok());
  EXPECT_EQ(caller.name, "boss");
  EXPECT_EQ(caller.role, Role::kAdmin);
  EXPECT_TRUE(authorize(admin, Role::kRead).ok());
  EXPECT_TRUE(authorize(write, Role::kWrite).ok());
}

TEST_F(AuthorizerTest, LookupsAreCachedAndARevokedTokenStopsWithinTheTtl) {
  const auto token = add("cached", "read");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(authorize(token, Role::kRead).ok());
  EXPECT_EQ(store.lookups, 1);
  store.tokens[token_sha256_hex(token)].revoke_time = std::chrono::system_clock::now();
  clock.advance(std::chrono::seconds(9));
  EXPECT_TRUE(authorize(token, Role::kRead).ok()) << "still cached";
  clock.advance(std::chrono::seconds(1));
  auto status = authorize(token, Role::kRead);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "API token revoked");
  EXPECT_EQ(store.lookups, 2);
}

TEST_F(AuthorizerTest, UnknownAndMalformedTokensDoNotReachTheStoreEachTime) {
  const auto unknown = generate_token();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(authorize(unknown, Role::kRead).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(store.lookups, 1);
  for (const std::string& bad : {std::string("short"), std::string(64, 'G'), std::string(1 << 16, 'a')}) {
    EXPECT_EQ(authorize(bad, Role::kRead).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(store.lookups, 1);
  EXPECT_EQ(failures.Add({{"reason", "unknown_token"}}).Value(), 8);
}

TEST_F(AuthorizerTest, LastUseIsRecordedAtMostOnceAMinute) {
  const auto token = add("busy", "read");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(authorize(token, Role::kRead).ok());
  EXPECT_EQ(store.uses_recorded, 1);
  clock.advance(std::chrono::seconds(59));
  ASSERT_TRUE(authorize(token, Role::kRead).ok());
  EXPECT_EQ(store.uses_recorded, 1);
  clock.advance(std::chrono::seconds(1));
  ASSERT_TRUE(authorize(token, Role::kRead).ok());
  EXPECT_EQ(store.uses_recorded, 2);
}

TEST(Authorizer, DatabaseTroubleIsUnavailableWithoutTheDatabasesWords) {
  struct Down final : storage::ApiTokenStore {
    std::optional<storage::ApiTokenRecord> find_api_token(std::string_view) override {
      throw storage::StorageError(storage::StorageError::Kind::kUnavailable,
                                  "connection to server at 10.1.2.3 failed: password authentication failed");
    }
    void record_api_token_use(int32_t) override {}
  } down;
  prometheus::Registry registry;
  auto& failures = prometheus::BuildCounter().Name("vantage_api_auth_failures_total").Register(registry);
  FakeClock clock;
  ApiAuthorizer auth(down, failures, clock);
  grpc::ServerContext context;
  grpc::testing::ServerContextTestSpouse spouse(&context);
  spouse.AddClientMetadata("authorization", testing::bearer(generate_token()));
  ApiCaller caller;
  auto status = auth.authorize(&context, Role::kRead, &caller);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "cannot check the API token: the database is unavailable; retry");
  // Not the caller's failure: no reason counted.
  for (const char* reason : coordinator::kApiAuthFailureReasons) {
    EXPECT_EQ(failures.Add({{"reason", reason}}).Value(), 0) << reason;
  }
}

TEST(ResultRatesTest, CountsEachProbesResultsOverTheLastMinute) {
  FakeClock clock(std::chrono::system_clock::now());
  coordinator::ResultRates rates(clock);
  auto batch = [](const std::string& probe, size_t results) {
    storage::ResultBatch b;
    b.probe.name = probe;
    b.results.resize(results);
    return b;
  };
  const auto eu = batch("eu-1", 60);
  const auto us = batch("us-1", 30);
  rates.add({&eu, &us});
  clock.advance(std::chrono::seconds(30));
  rates.add({&eu});
  EXPECT_DOUBLE_EQ(rates.per_second("eu-1"), 2.0);
  EXPECT_DOUBLE_EQ(rates.per_second("us-1"), 0.5);
  EXPECT_DOUBLE_EQ(rates.per_second("ap-1"), 0.0);
  clock.advance(std::chrono::seconds(30));  // the first second has left the window
  EXPECT_DOUBLE_EQ(rates.per_second("eu-1"), 1.0);
  EXPECT_DOUBLE_EQ(rates.per_second("us-1"), 0.0);
  clock.advance(std::chrono::seconds(120));
  rates.add({&us});  // its slot is reused: old counts do not come back
  EXPECT_DOUBLE_EQ(rates.per_second("us-1"), 0.5);
  EXPECT_DOUBLE_EQ(rates.per_second("eu-1"), 0.0);
}

TEST(ApiNames, TokenNamesAndRoles) {
  EXPECT_TRUE(coordinator::valid_api_token_name("a"));
  EXPECT_TRUE(coordinator::valid_api_token_name("ci-deploy-2"));
  EXPECT_TRUE(coordinator::valid_api_token_name(std::string(63, 'z')));
  EXPECT_FALSE(coordinator::valid_api_token_name(std::string(64, 'z')));
  EXPECT_FALSE(coordinator::valid_api_token_name(""));
  EXPECT_FALSE(coordinator::valid_api_token_name("-x"));
  EXPECT_FALSE(coordinator::valid_api_token_name("X"));
  EXPECT_EQ(coordinator::parse_role("admin"), Role::kAdmin);
  EXPECT_EQ(coordinator::parse_role("Admin"), std::nullopt);
  EXPECT_TRUE(Role::kAdmin > Role::kWrite && Role::kWrite > Role::kRead);
}

TEST(ApiNames, PageTokensRoundTripAndRefuseAnythingElse) {
  for (const std::string& name : {std::string("a"), std::string("eu-1"), std::string("\xc3\xa9t\xc3\xa9"), std::string(300, 'n')}) {
    EXPECT_EQ(coordinator::decode_probe_page_token(coordinator::encode_probe_page_token(name)), name);
  }
  EXPECT_EQ(coordinator::decode_probe_page_token(""), std::nullopt);
  EXPECT_EQ(coordinator::decode_probe_page_token("===="), std::nullopt);
  EXPECT_EQ(coordinator::decode_probe_page_token(coordinator::encode_probe_page_token("")), std::nullopt);
  // Names PostgreSQL's text cannot hold.
  EXPECT_EQ(coordinator::decode_probe_page_token(coordinator::encode_probe_page_token(std::string("a\0b", 3))),
            std::nullopt);
  EXPECT_EQ(coordinator::decode_probe_page_token(coordinator::encode_probe_page_token("\xff")), std::nullopt);
}

}  // namespace
}  // namespace vantage
