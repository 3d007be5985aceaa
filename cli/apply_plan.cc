#include "cli/apply_plan.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <set>

namespace vantage::ctl {

namespace {

using google::protobuf::FieldDescriptor;

// Not part of what a check does: assigned by the coordinator.
const std::set<std::string> kMetadataFields{"name", "id", "version", "source", "create_time", "update_time"};

// `check` with every field but `field` cleared, and `field` itself cleared
// when it is a message equal to its default (unset and empty are the same).
v1::Check only(const v1::Check& check, const FieldDescriptor* field) {
  v1::Check out = check;
  const auto* reflection = out.GetReflection();
  const auto* descriptor = out.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i) != field) reflection->ClearField(&out, descriptor->field(i));
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated() &&
      reflection->HasField(out, field) && reflection->GetMessage(out, field).ByteSizeLong() == 0) {
    reflection->ClearField(&out, field);
  }
  return out;
}

}  // namespace

std::vector<std::string> changed_fields(const v1::Check& stored, const v1::Check& desired) {
  std::vector<std::string> fields;
  const auto* descriptor = v1::Check::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    if (kMetadataFields.contains(field->name())) continue;
    // Map fields compare as maps (entry order does not matter); repeated
    // fields in order, as the probe runs them.
    if (!google::protobuf::util::MessageDifferencer::Equals(only(stored, field), only(desired, field))) {
      fields.push_back(field->name());
    }
  }
  return fields;
}

std::vector<PlannedChange> plan_apply(const std::vector<v1::Check>& desired, const std::vector<v1::Check>& stored,
                                      bool prune) {
  std::map<std::string, const v1::Check*> stored_by_name;
  for (const auto& c : stored) stored_by_name[c.name()] = &c;
  std::set<std::string> in_file;
  std::vector<PlannedChange> plan;
  for (const auto& want : desired) {
    in_file.insert(want.name());
    PlannedChange change{PlannedChange::Action::kCreate, want.name(), {}, want, 0};
    if (auto it = stored_by_name.find(want.name()); it != stored_by_name.end()) {
      const auto& have = *it->second;
      if (have.source() == v1::CHECK_SOURCE_FILE) {
        change.action = PlannedChange::Action::kFileOwned;
      } else {
        change.fields = changed_fields(have, want);
        change.action = change.fields.empty() ? PlannedChange::Action::kUnchanged : PlannedChange::Action::kUpdate;
        change.expected_version = have.version();
      }
    }
    plan.push_back(std::move(change));
  }
  for (const auto& have : stored) {
    // The coordinator's own checks file owns its checks: never pruned here.
    if (have.source() == v1::CHECK_SOURCE_FILE || in_file.contains(have.name())) continue;
    plan.push_back({prune ? PlannedChange::Action::kDelete : PlannedChange::Action::kNotInFile,
                    have.name(),
                    {},
                    {},
                    have.version()});
  }
  std::stable_sort(plan.begin(), plan.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return plan;
}

std::string describe(const PlannedChange& change) {
  using Action = PlannedChange::Action;
  switch (change.action) {
    case Action::kCreate:
      return "+ " + change.name;
    case Action::kUpdate: {
      std::string fields;
      for (const auto& f : change.fields) fields += (fields.empty() ? "" : ", ") + f;
      return "~ " + change.name + " (" + fields + ")";
    }
    case Action::kDelete:
      return "- " + change.name;
    case Action::kFileOwned:
      return "! " + change.name + " (owned by the coordinator's checks file: edit that file; not changed)";
    case Action::kNotInFile:
      return "? " + change.name + " (not in the file: kept; --prune deletes it)";
    case Action::kUnchanged:
      return "";
  }
  return "";
}

std::string action_name(PlannedChange::Action action) {
  using Action = PlannedChange::Action;
  switch (action) {
    case Action::kCreate:
      return "create";
    case Action::kUpdate:
      return "update";
    case Action::kDelete:
      return "delete";
    case Action::kUnchanged:
      return "unchanged";
    case Action::kFileOwned:
      return "file_owned";
    case Action::kNotInFile:
      return "not_in_file";
  }
  return "unknown";
}

bool is_change(const PlannedChange& change) {
  using Action = PlannedChange::Action;
  return change.action == Action::kCreate || change.action == Action::kUpdate || change.action == Action::kDelete;
}

}  // namespace vantage::ctl
