#pragma once
// The stable names of incident kinds, states, scopes and event types, used in
// storage (readable columns, storage/migrations/0005), metrics and logs
// (common/enum_label.h): "scope_changed" for INCIDENT_EVENT_TYPE_SCOPE_CHANGED,
// "unspecified" for 0 or a number the enum does not know.

#include <string>

#include "common/enum_label.h"
#include "vantage/v1/types.pb.h"

namespace vantage {

inline std::string incident_kind_name(v1::IncidentKind k) {
  return enum_label(v1::IncidentKind_descriptor(), k, "INCIDENT_KIND_");
}
inline std::string incident_state_name(v1::IncidentState s) {
  return enum_label(v1::IncidentState_descriptor(), s, "INCIDENT_STATE_");
}
inline std::string scope_name(v1::Scope s) { return enum_label(v1::Scope_descriptor(), s, "SCOPE_"); }
inline std::string incident_event_type_name(v1::IncidentEventType t) {
  return enum_label(v1::IncidentEventType_descriptor(), t, "INCIDENT_EVENT_TYPE_");
}

}  // namespace vantage
