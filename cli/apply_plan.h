#pragma once
// `vantagectl checks apply -f FILE`: what it takes to make the API-owned
// checks match a checks file. Pure: the checks in hand go in, the plan comes
// out; the caller carries it out (or, with --dry-run, only prints it).

#include <cstdint>
#include <string>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::ctl {

struct PlannedChange {
  enum class Action {
    kCreate,     // in the file, not stored
    kUpdate,     // in the file, stored (API-owned) and different
    kDelete,     // API-owned, not in the file, and --prune
    kUnchanged,  // in the file and stored the same
    kFileOwned,  // in the file, but stored as a check of the coordinator's checks file: not touched
    kNotInFile,  // API-owned, not in the file, no --prune: kept
  };
  Action action;
  std::string name;
  std::vector<std::string> fields;  // kUpdate: the fields that differ, by proto name
  v1::Check desired;                // kCreate, kUpdate: the check to send
  int64_t expected_version = 0;     // kUpdate: the stored version it replaces
};

// Every check of `desired` (already validated, defaults filled: as
// load_checks_file() returns them) and every API-owned check of `stored`,
// in name order.
std::vector<PlannedChange> plan_apply(const std::vector<v1::Check>& desired, const std::vector<v1::Check>& stored,
                                      bool prune);

// The fields of a check's definition (not its id, version, source or times)
// that differ, in proto field order. A message field set to its default and
// one left unset are the same.
std::vector<std::string> changed_fields(const v1::Check& stored, const v1::Check& desired);

// The diff line: "+ name", "~ name (url, interval)", "- name";
// "! name (...)" for a file-owned check, "? name (...)" for one kept without
// --prune; empty for an unchanged check.
std::string describe(const PlannedChange& change);

// "create", "update", "delete", "unchanged", "file_owned", "not_in_file".
std::string action_name(PlannedChange::Action action);

bool is_change(const PlannedChange& change);

}  // namespace vantage::ctl
