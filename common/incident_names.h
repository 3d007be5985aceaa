#pragma once
// The stable names of incident kinds, states, scopes and event types, used in
// storage (readable columns, storage/migrations/0005), metrics and logs. One
// mapping, derived from the proto enums: the value's name without its prefix,
// in lower case ("scope_changed" for INCIDENT_EVENT_TYPE_SCOPE_CHANGED),
// "unspecified" for 0 or a number the enum does not know.

#include <algorithm>
#include <string>
#include <string_view>

#include "vantage/v1/types.pb.h"

namespace vantage {

namespace incident_names_detail {

inline std::string enum_name(const google::protobuf::EnumDescriptor* descriptor, int value, std::string_view prefix) {
  const auto* v = descriptor->FindValueByNumber(value);
  std::string name = v ? v->name() : std::string(prefix) + "UNSPECIFIED";
  if (name.starts_with(prefix)) name.erase(0, prefix.size());
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

}  // namespace incident_names_detail

inline std::string incident_kind_name(v1::IncidentKind k) {
  return incident_names_detail::enum_name(v1::IncidentKind_descriptor(), k, "INCIDENT_KIND_");
}
inline std::string incident_state_name(v1::IncidentState s) {
  return incident_names_detail::enum_name(v1::IncidentState_descriptor(), s, "INCIDENT_STATE_");
}
inline std::string scope_name(v1::Scope s) {
  return incident_names_detail::enum_name(v1::Scope_descriptor(), s, "SCOPE_");
}
inline std::string incident_event_type_name(v1::IncidentEventType t) {
  return incident_names_detail::enum_name(v1::IncidentEventType_descriptor(), t, "INCIDENT_EVENT_TYPE_");
}

}  // namespace vantage
