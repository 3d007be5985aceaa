#pragma once
// Who may call the public API (CheckService, IncidentService, ResultService,
// FleetService): one seam, ApiAuthorizer::authorize(), that every public RPC
// calls first.
//
// A caller sends metadata "authorization: Bearer <token>" with a token made by
// `vantage-coordinator add-api-token`; the coordinator stores only its
// SHA-256 (storage/migrations/0004_api_tokens.sql). Roles: read < write <
// admin, each implying those below it. API tokens and probe tokens are apart:
// a probe's token is an unknown token here, and an API token opens no probe
// stream (the probe service looks only at the probes table).
//
// Lookups are cached for `cache_ttl` (10 s), so an API call does not reach
// PostgreSQL each time: a revoked token keeps working for at most that long.
// Unknown tokens are cached too, so a caller repeating a wrong token does not
// reach PostgreSQL either; a malformed one (not 64 hex digits) never does.

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <array>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "storage/store.h"

namespace vantage::coordinator {

enum class Role { kRead = 1, kWrite = 2, kAdmin = 3 };  // a role implies those below it

std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// An API token's name: [a-z0-9][a-z0-9-]{0,62}.
bool valid_api_token_name(std::string_view name);
inline constexpr std::string_view kApiTokenNameRule = "1 to 63 of a-z, 0-9 and '-', not starting with '-'";

// Who called, once authorized.
struct ApiCaller {
  std::string name;  // the token's name
  Role role = Role::kRead;
};

// vantage_api_auth_failures_total{reason}: every reason, known in advance.
inline constexpr std::array<const char*, 5> kApiAuthFailureReasons = {
    "missing_token", "malformed_header", "unknown_token", "revoked_token", "insufficient_role"};

struct ApiAuthOptions {
  std::chrono::milliseconds cache_ttl{10'000};  // also how long a revoked token may still work
  size_t max_cached_tokens = 10'000;            // past it the cache starts over
  std::chrono::seconds use_record_interval{60}; // last_used_time is written at most this often
};

class ApiAuthorizer {
 public:
  // `failures` is vantage_api_auth_failures_total; its reasons start at 0 here.
  ApiAuthorizer(storage::ApiTokenStore& tokens, prometheus::Family<prometheus::Counter>& failures,
                const Clock& clock, ApiAuthOptions options = {});

  // OK with `caller` filled, or UNAUTHENTICATED (no, malformed, unknown or
  // revoked token), PERMISSION_DENIED (role below `needed`), UNAVAILABLE
  // (the database cannot say). Never throws. Sync and callback handlers alike
  // (a grpc::ServerContext or grpc::CallbackServerContext).
  grpc::Status authorize(const grpc::ServerContextBase* context, Role needed, ApiCaller* caller);

 private:
  struct Cached {
    std::optional<storage::ApiTokenRecord> token;  // nullopt: no such token
    std::chrono::steady_clock::time_point fetched;
  };
  grpc::Status fail(const char* reason, grpc::StatusCode code, std::string message);
  std::optional<storage::ApiTokenRecord> lookup(const std::string& token_sha256);
  void record_use(const storage::ApiTokenRecord& token);

  storage::ApiTokenStore& tokens_;
  prometheus::Family<prometheus::Counter>& failures_;
  const Clock& clock_;
  ApiAuthOptions options_;

  std::mutex mu_;
  std::unordered_map<std::string, Cached> cache_;  // by token hash
  std::unordered_map<int32_t, std::chrono::steady_clock::time_point> use_recorded_;  // by token id
  std::chrono::steady_clock::time_point next_storage_log_{};
};

// A storage error as the API's callers see it: UNAVAILABLE (retry) or
// INTERNAL, without the database's own words (those go to the log).
grpc::Status api_storage_status(const storage::StorageError& e, const char* what);

}  // namespace vantage::coordinator
