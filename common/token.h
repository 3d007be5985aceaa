#pragma once
// Bearer tokens: generated at random, stored only as their SHA-256.

#include <string>
#include <string_view>

namespace vantage {

// 32 random bytes as 64 hex characters, from OpenSSL's CSPRNG.
std::string generate_token();
// Lower-case hex SHA-256 of the token.
std::string token_sha256_hex(std::string_view token);
// The token of an "authorization: Bearer <token>" value; empty if malformed.
std::string_view bearer_token(std::string_view authorization);

}  // namespace vantage
