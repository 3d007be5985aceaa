#pragma once
// A throwaway PostgreSQL for one test binary: started once before the first
// test (scripts/local-postgres.sh, fsync off), stopped and deleted after the
// last. Each test asks for a fresh database, so tests do not see each other.
// If the server cannot start, every test fails with the reason: a test that
// needs PostgreSQL never skips silently.

#include <gtest/gtest.h>

#include <string>

namespace vantage::testing {

class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;

  // URL of a new, empty database on the shared server.
  static std::string fresh_database();
  // URL of the maintenance database "vantage".
  static const std::string& url();
  // Stop / start the server (for outage tests); the URL stays valid.
  static void stop_server();
  static void start_server();
};

}  // namespace vantage::testing
