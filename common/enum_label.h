#pragma once
// The stable names of proto enum values, used in storage (readable columns),
// metrics labels, logs, the API's messages and reports: the value's name without
// the enum's prefix, in lower case ("empty_reply" for FAILURE_CLASS_EMPTY_REPLY,
// "scope_changed" for INCIDENT_EVENT_TYPE_SCOPE_CHANGED). One mapping, derived
// from the proto enums, so that a new value needs no code here.

#include <google/protobuf/descriptor.h>

#include <optional>
#include <string>
#include <string_view>

namespace vantage {

// `value_name` ("EDGE_RULE_CF_RAY") without `prefix`, in lower case ("cf_ray").
std::string enum_label(std::string_view value_name, std::string_view prefix);

// The label of `number` in `descriptor`; "unspecified" for a number the enum
// does not know (a newer peer's value).
std::string enum_label(const google::protobuf::EnumDescriptor* descriptor, int number, std::string_view prefix);

// The number whose label is `label` (exactly: lower case); never the zero value.
std::optional<int> enum_from_label(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix,
                                   std::string_view label);

}  // namespace vantage
