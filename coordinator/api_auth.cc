#include "coordinator/api_auth.h"

#include <fmt/format.h>

#include <iterator>

#include "common/check_config.h"
#include "common/log.h"
#include "common/token.h"

namespace vantage::coordinator {

namespace {

constexpr auto kStorageLogInterval = std::chrono::seconds(10);

// Tokens are made by generate_token(): 64 lower-case hex digits. Anything
// else cannot be one, and is refused without asking the database.
bool well_formed_token(std::string_view token) {
  if (token.size() != 64) return false;
  for (char ch : token) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role role : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    if (name == role_name(role)) return role;
  }
  return std::nullopt;
}

bool valid_api_token_name(std::string_view name) { return valid_check_name(name); }

grpc::Status api_storage_status(const storage::StorageError& e, const char* what) {
  if (e.kind() == storage::StorageError::Kind::kUnavailable) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, fmt::format("{}: the database is unavailable; retry", what));
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, fmt::format("{}: internal error (see the coordinator's log)", what));
}

ApiAuthorizer::ApiAuthorizer(storage::ApiTokenStore& tokens, prometheus::Family<prometheus::Counter>& failures,
                             const Clock& clock, ApiAuthOptions options)
    : tokens_(tokens), failures_(failures), clock_(clock), options_(options) {
  for (const char* reason : kApiAuthFailureReasons) failures_.Add({{"reason", reason}});
}

grpc::Status ApiAuthorizer::fail(const char* reason, grpc::StatusCode code, std::string message) {
  failures_.Add({{"reason", reason}}).Increment();
  return grpc::Status(code, std::move(message));
}

grpc::Status ApiAuthorizer::authorize(const grpc::ServerContextBase* context, Role needed, ApiCaller* caller) {
  const auto& metadata = context->client_metadata();
  const auto [first, last] = metadata.equal_range("authorization");
  if (first == last) {
    return fail("missing_token", grpc::StatusCode::UNAUTHENTICATED,
                "missing API token: send metadata 'authorization: Bearer <token>'");
  }
  if (std::next(first) != last) {
    return fail("malformed_header", grpc::StatusCode::UNAUTHENTICATED,
                "more than one 'authorization' metadata: send one, 'Bearer <token>'");
  }
  const std::string_view token = bearer_token(std::string_view(first->second.data(), first->second.size()));
  if (token.empty()) {
    return fail("malformed_header", grpc::StatusCode::UNAUTHENTICATED,
                "malformed 'authorization' metadata: expected 'Bearer <token>'");
  }
  // The same words for any token that is not a live API token, a probe's
  // included: the answer does not tell what else a token might be.
  constexpr const char* kUnknown =
      "unknown API token (probe tokens are not API tokens; vantage-coordinator add-api-token makes one)";
  if (!well_formed_token(token)) return fail("unknown_token", grpc::StatusCode::UNAUTHENTICATED, kUnknown);

  std::optional<storage::ApiTokenRecord> found;
  try {
    found = lookup(token_sha256_hex(token));
  } catch (const storage::StorageError& e) {
    std::lock_guard lock(mu_);
    if (clock_.steady_now() >= next_storage_log_) {
      next_storage_log_ = clock_.steady_now() + kStorageLogInterval;
      log::error("cannot check API tokens (logged at most every 10 s)", "error", e.what());
    }
    return api_storage_status(e, "cannot check the API token");
  } catch (const std::exception& e) {
    log::error("cannot check an API token", "error", e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, "cannot check the API token: internal error");
  }
  if (!found) return fail("unknown_token", grpc::StatusCode::UNAUTHENTICATED, kUnknown);
  if (found->revoked()) {
    return fail("revoked_token", grpc::StatusCode::UNAUTHENTICATED, "API token revoked");
  }
  const auto held = parse_role(found->role);
  if (!held) {
    // The table's CHECK constraint makes this a bug, not a caller's fault.
    log::error("stored API token has an unknown role", "token", found->name, "role", found->role);
    return grpc::Status(grpc::StatusCode::INTERNAL, "the API token's stored role is unknown");
  }
  if (*held < needed) {
    return fail("insufficient_role", grpc::StatusCode::PERMISSION_DENIED,
                fmt::format("role \"{}\" needed; API token \"{}\" has role \"{}\"", role_name(needed), found->name,
                            role_name(*held)));
  }
  record_use(*found);
  caller->name = found->name;
  caller->role = *held;
  return grpc::Status::OK;
}

std::optional<storage::ApiTokenRecord> ApiAuthorizer::lookup(const std::string& token_sha256) {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(token_sha256);
    if (it != cache_.end() && clock_.steady_now() - it->second.fetched < options_.cache_ttl) return it->second.token;
  }
  // Not under the lock: one slow query must not hold up every other caller.
  auto token = tokens_.find_api_token(token_sha256);
  std::lock_guard lock(mu_);
  const auto now = clock_.steady_now();
  if (cache_.size() >= options_.max_cached_tokens) {
    std::erase_if(cache_, [&](const auto& entry) { return now - entry.second.fetched >= options_.cache_ttl; });
    // Still full: many distinct tokens within one TTL (someone guessing).
    if (cache_.size() >= options_.max_cached_tokens) cache_.clear();
  }
  cache_[token_sha256] = Cached{token, now};
  return token;
}

void ApiAuthorizer::record_use(const storage::ApiTokenRecord& token) {
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.steady_now();
    auto [it, inserted] = use_recorded_.emplace(token.id, now);
    if (!inserted) {
      if (now - it->second < options_.use_record_interval) return;
      it->second = now;
    }
  }
  try {
    tokens_.record_api_token_use(token.id);
  } catch (const std::exception& e) {
    // Not worth failing the call for: the next minute tries again.
    log::debug("cannot record an API token's use", "token", token.name, "error", e.what());
  }
}

}  // namespace vantage::coordinator
