#pragma once
// What the API tests share: a fresh migrated database with its store, a
// coordinator's options for loopback, and calls made with an API token as the
// bearer (`authorization: Bearer <token>`). Each test keeps its own checks,
// probes, tokens and TLS.

#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "tests/support/postgres.h"

namespace vantage::testing {

// A new database of the test PostgreSQL (PostgresEnvironment), migrated.
struct ApiDatabase {
  explicit ApiDatabase(size_t pool_size = 2) : store(url, pool_size) { store.migrate(); }
  const std::string url = PostgresEnvironment::fresh_database();
  storage::PgStore store;
};

// A coordinator on `database_url`, serving gRPC and metrics on free loopback ports.
inline coordinator::CoordinatorOptions loopback_coordinator_options(const std::string& database_url) {
  coordinator::CoordinatorOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "127.0.0.1:0";
  options.database_url = database_url;
  return options;
}

// A checks file for a suite's coordinator, in the temp directory (named after
// the suite and the process), removed with this object.
class TempChecksFile {
 public:
  TempChecksFile(const std::string& suite, const std::string& yaml)
      : path_(std::filesystem::temp_directory_path() / (suite + "-" + std::to_string(getpid()) + ".yaml")) {
    std::ofstream(path_) << yaml;
  }
  ~TempChecksFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TempChecksFile(const TempChecksFile&) = delete;
  TempChecksFile& operator=(const TempChecksFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The value of the authorization metadata for an API token.
inline std::string bearer(const std::string& token) { return "Bearer " + token; }

// Makes the call of `context` present `token`.
inline void authorize(grpc::ClientContext& context, const std::string& token) {
  context.AddMetadata("authorization", bearer(token));
}

// A plaintext channel to a gRPC port on loopback.
inline std::shared_ptr<grpc::Channel> loopback_channel(uint16_t port,
                                                       const grpc::ChannelArguments& args = grpc::ChannelArguments()) {
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
}

}  // namespace vantage::testing
