#include "coordinator/api_pages.h"

#include <fmt/format.h>

#include <cstring>

#include "common/text.h"

namespace vantage::coordinator {

namespace {

constexpr size_t kMaxPageTokenBytes = 4096;
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char b : bytes) {
    bits = (bits << 8) | b;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kBase64Url[(bits >> count) & 0x3f]);
    }
  }
  if (count > 0) out.push_back(kBase64Url[(bits << (6 - count)) & 0x3f]);
  return out;  // unpadded
}

std::optional<std::string> from_base64url(std::string_view text) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char ch : text) {
    const char* at = std::strchr(kBase64Url, ch);
    if (ch == '\0' || at == nullptr) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(at - kBase64Url);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  // Leftover bits are padding: fewer than a byte, and zero (one encoding per position).
  if (count >= 6 || (bits & ((1u << count) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

grpc::Status page_size(int32_t requested, PageLimits limits, size_t* size) {
  if (requested < 0 || requested > limits.max_size) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("page_size: {} is out of range: 0 (the default, {}) to {}", requested,
                                    limits.default_size, limits.max_size));
  }
  *size = static_cast<size_t>(requested == 0 ? limits.default_size : requested);
  return grpc::Status::OK;
}

std::string encode_page_token(std::string_view tag, std::string_view position) {
  return base64url(std::string(tag) + std::string(position));
}

std::optional<std::string> decode_page_token(std::string_view tag, std::string_view token) {
  if (token.size() > kMaxPageTokenBytes) return std::nullopt;
  auto bytes = from_base64url(token);
  if (!bytes || !bytes->starts_with(tag) || bytes->size() == tag.size()) return std::nullopt;
  auto position = bytes->substr(tag.size());
  if (!is_valid_utf8(position) || position.find('\0') != std::string::npos) return std::nullopt;
  return position;
}

grpc::Status page_position(std::string_view tag, std::string_view token, std::string* position) {
  position->clear();
  if (token.empty()) return grpc::Status::OK;
  auto decoded = decode_page_token(tag, token);
  if (!decoded) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "page_token: not a token this API gave (pass next_page_token of the previous page unchanged, "
                        "or none for the first page)");
  }
  *position = std::move(*decoded);
  return grpc::Status::OK;
}

grpc::Status time_argument(const google::protobuf::Timestamp& time, std::string_view field) {
  constexpr int64_t kLastSecond = 9'000'000'000;  // in 2255
  if (time.seconds() < 0 || time.seconds() > kLastSecond || time.nanos() < 0 || time.nanos() > 999'999'999) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("{}: not a time from 1970 to 2255 (seconds {}, nanos {})", field, time.seconds(),
                                    time.nanos()));
  }
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
