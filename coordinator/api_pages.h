#pragma once
// What the public API's lists and summaries take alike, one set of rules for
// every service: the page size (0: the list's default, at most its maximum),
// opaque page tokens and time bounds.
//
// A page token is base64url of a tag naming the list and the token's format
// (a token of another list or format is refused) and the position after
// which the next page starts (the last item's key, in the list's order). A
// position is a key, not an offset: items added or removed meanwhile neither
// repeat nor skip an item on the next page.

#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vantage::coordinator {

struct PageLimits {
  int32_t default_size = 100;  // page_size 0
  int32_t max_size = 1000;
};

// The page size a request asks for, or INVALID_ARGUMENT naming page_size.
grpc::Status page_size(int32_t requested, PageLimits limits, size_t* size);

std::string encode_page_token(std::string_view tag, std::string_view position);
// nullopt if `token` was not made by encode_page_token with this tag, or its
// position is empty, not UTF-8 or holds a NUL (it may reach PostgreSQL's text).
std::optional<std::string> decode_page_token(std::string_view tag, std::string_view token);

// The position in `token` (empty token: the first page, position ""), or
// INVALID_ARGUMENT naming page_token.
grpc::Status page_position(std::string_view tag, std::string_view token, std::string* position);

// A time bound of a list or summary: from 1970 to 2255 (what the clock's
// nanoseconds hold, so nothing overflows on its way to SQL), nanos in range;
// else INVALID_ARGUMENT naming `field`.
grpc::Status time_argument(const google::protobuf::Timestamp& time, std::string_view field);

}  // namespace vantage::coordinator
