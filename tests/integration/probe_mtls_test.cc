// TLS client certificates for probes: a coordinator with --tls-client-ca and
// --require-probe-client-cert, real PostgreSQL, certificates made per run.
// A probe with a certificate of the CA connects; one without is refused
// (UNAUTHENTICATED); one with another CA's certificate fails the handshake;
// an API client with a token and no certificate still works. And the
// options' errors, on both sides.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "common/clock.h"
#include "common/option_error.h"
#include "coordinator/coordinator.h"
#include "probe/agent.h"
#include "probe/streamer.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/test_certs.h"
#include "vantage/v1/fleet_service.grpc.pb.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

namespace fs = std::filesystem;

class ProbeMtlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("vantage-mtls-test-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    ca_ = new testing::TestCa("Vantage Test Probe CA");
    other_ca_ = new testing::TestCa("Some Other CA");
    server_ = new testing::TestCa::Leaf(ca_->issue("localhost", "IP:127.0.0.1,DNS:localhost"));
    client_ = new testing::TestCa::Leaf(ca_->issue("eu-1"));
    stranger_ = new testing::TestCa::Leaf(other_ca_->issue("eu-1"));
    write("ca.pem", ca_->pem);
    write("server.pem", server_->cert);
    write("server.key", server_->key_pem());
    write("client.pem", client_->cert);
    write("client.key", client_->key_pem());
    write("stranger.pem", stranger_->cert);
    write("stranger.key", stranger_->key_pem());

    db_ = new testing::ApiDatabase();
    store_ = &db_->store;
    probe_token_ = new std::string(store_->add_probe("eu-1", "eu"));
    read_token_ = new std::string(store_->add_api_token("reader", "read"));
    coordinator_ = new coordinator::Coordinator(options());
    coordinator_->start();
  }
  static void TearDownTestSuite() {
    delete coordinator_;
    delete probe_token_;
    delete read_token_;
    delete db_;
    delete server_;
    delete client_;
    delete stranger_;
    delete ca_;
    delete other_ca_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static void write(const std::string& name, const std::string& text) { std::ofstream(path(name)) << text; }

  static coordinator::CoordinatorOptions options() {
    auto o = testing::loopback_coordinator_options(db_->url);
    o.tls_cert_file = path("server.pem");
    o.tls_key_file = path("server.key");
    o.tls_client_ca_file = path("ca.pem");
    o.require_probe_client_cert = true;
    return o;
  }

  // A channel over TLS trusting the test CA, presenting `cert`/`key` if given.
  static std::shared_ptr<grpc::Channel> channel(const std::string& cert = "", const std::string& key = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_->pem;
    ssl.pem_cert_chain = cert;
    ssl.pem_private_key = key;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // no connection shared between the cases
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(coordinator_->grpc_port()),
                                     grpc::SslCredentials(ssl), args);
  }

  // Opens a probe stream with the probe's token and says hello: the welcome
  // on success, else the stream's status.
  static grpc::Status connect(const std::shared_ptr<grpc::Channel>& channel, v1::CoordinatorMessage* first) {
    grpc::ClientContext context;
    testing::authorize(context, *probe_token_);
    context.set_deadline(std::chrono::system_clock::now() + seconds(20));
    auto stream = v1::ProbeService::NewStub(channel)->Connect(&context);
    v1::ProbeMessage hello;
    hello.mutable_hello()->set_probe_id("eu-1");
    hello.mutable_hello()->set_region("eu");
    stream->Write(hello);
    if (stream->Read(first)) {
      context.TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  static grpc::Status list_probes(const std::shared_ptr<grpc::Channel>& channel, v1::ListProbesResponse* response) {
    grpc::ClientContext context;
    testing::authorize(context, *read_token_);
    context.set_deadline(std::chrono::system_clock::now() + seconds(20));
    return v1::FleetService::NewStub(channel)->ListProbes(&context, v1::ListProbesRequest(), response);
  }

  static inline fs::path* dir_ = nullptr;
  static inline testing::TestCa* ca_ = nullptr;
  static inline testing::TestCa* other_ca_ = nullptr;
  static inline testing::TestCa::Leaf* server_ = nullptr;
  static inline testing::TestCa::Leaf* client_ = nullptr;
  static inline testing::TestCa::Leaf* stranger_ = nullptr;
  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::string* probe_token_ = nullptr;
  static inline std::string* read_token_ = nullptr;
  static inline coordinator::Coordinator* coordinator_ = nullptr;
};

TEST_F(ProbeMtlsTest, ProbeWithACertificateOfTheClientCaIsWelcomed) {
  v1::CoordinatorMessage first;
  auto status = connect(channel(client_->cert, client_->key_pem()), &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(first.has_welcome()) << first.DebugString();
}

TEST_F(ProbeMtlsTest, RealProbeWithItsClientCertificateFlagsConnects) {
  probe::AgentOptions options;
  options.stream.coordinator = "127.0.0.1:" + std::to_string(coordinator_->grpc_port());
  options.stream.token = *probe_token_;
  options.stream.probe_id = "eu-1";
  options.stream.region = "eu";
  options.stream.version = "test";
  options.stream.tls_ca_file = path("ca.pem");
  options.stream.tls_client_cert_file = path("client.pem");
  options.stream.tls_client_key_file = path("client.key");
  options.stream.backoff_initial = milliseconds(100);
  options.stream.backoff_max = milliseconds(500);
  ASSERT_NO_THROW(probe::check_tls_options(options.stream));
  probe::Agent agent(options, RealTimers::instance());
  agent.start();
  ASSERT_TRUE(testing::eventually([&] { return agent.streamer().sessions() >= 1; }, seconds(20)));
  v1::ListProbesResponse response;
  ASSERT_TRUE(testing::eventually(
      [&] { return list_probes(channel(), &response).ok() && response.probes_size() == 1 && response.probes(0).connected(); },
      seconds(10)));
  agent.stop();
}

TEST_F(ProbeMtlsTest, ProbeWithoutACertificateIsRefusedSayingWhy) {
  v1::CoordinatorMessage first;
  auto status = connect(channel(), &first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_NE(status.error_message().find("client certificate"), std::string::npos) << status.error_message();
}

TEST_F(ProbeMtlsTest, CertificateOfAnotherCaFailsTheHandshake) {
  v1::CoordinatorMessage first;
  auto status = connect(channel(stranger_->cert, stranger_->key_pem()), &first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // The same with the API: the connection itself is refused.
  v1::ListProbesResponse response;
  EXPECT_EQ(list_probes(channel(stranger_->cert, stranger_->key_pem()), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ProbeMtlsTest, ApiClientWithATokenNeedsNoCertificate) {
  v1::ListProbesResponse response;
  auto status = list_probes(channel(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.probes_size(), 1);
  EXPECT_EQ(response.probes(0).id(), "eu-1");
}

// The library names the option (vantage-coordinator's main maps it to its flag).
TEST_F(ProbeMtlsTest, CoordinatorOptionsThatDoNotFitAreRefusedNamingTheOption) {
  auto start_error = [](coordinator::CoordinatorOptions o) -> std::string {
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
    try {
      coordinator::Coordinator c(std::move(o));
      c.start();
    } catch (const OptionError& e) {
      return e.option() + ": " + e.what();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  auto o = options();
  o.tls_cert_file.clear();
  o.tls_key_file.clear();
  EXPECT_NE(start_error(o).find("tls_client_ca_file: a client CA needs the server's TLS certificate and key"),
            std::string::npos);

  o = options();
  o.tls_client_ca_file.clear();
  EXPECT_NE(start_error(o).find("require_probe_client_cert: requiring probes' client certificates needs a client CA"),
            std::string::npos);

  o = options();
  o.tls_client_ca_file = path("missing.pem");
  auto error = start_error(o);
  EXPECT_NE(error.find("tls_client_ca_file: "), std::string::npos) << error;
  EXPECT_NE(error.find("missing.pem"), std::string::npos) << error;

  o = options();
  o.tls_client_ca_file = path("server.key");  // no certificate in it
  error = start_error(o);
  EXPECT_NE(error.find("tls_client_ca_file: "), std::string::npos) << error;
  EXPECT_NE(error.find("no PEM CERTIFICATE"), std::string::npos) << error;
}

// The library names the option as AgentOptions does (vantage-probe's main maps it to its flag).
TEST_F(ProbeMtlsTest, ProbeOptionsThatDoNotFitAreRefusedNamingTheOption) {
  auto tls_error = [](const probe::StreamerOptions& o) -> std::string {
    try {
      probe::check_tls_options(o);
    } catch (const OptionError& e) {
      return e.option() + ": " + e.what();
    }
    return "";
  };
  probe::StreamerOptions o;
  o.tls_ca_file = path("ca.pem");
  o.tls_client_cert_file = path("client.pem");
  EXPECT_EQ(tls_error(o), "stream.tls_client_key_file: a client certificate and its key go together: one is missing");
  o.tls_client_cert_file.clear();
  o.tls_client_key_file = path("client.key");
  EXPECT_EQ(tls_error(o), "stream.tls_client_cert_file: a client certificate and its key go together: one is missing");
  o.tls_client_cert_file = path("client.pem");
  o.tls_ca_file.clear();
  EXPECT_NE(tls_error(o).find("stream.tls_ca_file: a client certificate needs the coordinator's CA bundle"),
            std::string::npos);
  o.tls_ca_file = path("ca.pem");
  o.tls_client_key_file = path("missing.key");
  EXPECT_NE(tls_error(o).find("stream.tls_client_key_file: client key " + path("missing.key") + ": cannot read"),
            std::string::npos)
      << tls_error(o);
  o.tls_client_key_file = path("client.pem");  // a certificate, not a key
  EXPECT_NE(tls_error(o).find("no PEM private key"), std::string::npos) << tls_error(o);
  o.tls_client_key_file = path("client.key");
  EXPECT_EQ(tls_error(o), "");
}

}  // namespace
}  // namespace vantage
