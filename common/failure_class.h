#pragma once
// The stable names of the failure classes (diagnosis.md section 3), used in
// storage, metrics and the API. One mapping, derived from the proto enum.

#include <optional>
#include <string>
#include <string_view>

#include "vantage/v1/types.pb.h"

namespace vantage {

// "empty_reply" for FAILURE_CLASS_EMPTY_REPLY; "unspecified" for 0.
std::string failure_class_name(v1::FailureClass c);
std::optional<v1::FailureClass> failure_class_from_name(std::string_view name);

}  // namespace vantage
