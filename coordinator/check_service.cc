#include "coordinator/check_service.h"

#include <fmt/format.h>
#include <google/protobuf/util/field_mask_util.h>

#include <algorithm>

#include "common/check_config.h"
#include "common/log.h"
#include "coordinator/fleet_service.h"

namespace vantage::coordinator {

namespace {

constexpr std::string_view kPageTokenTag = "checks.v1:";  // a token of another list or format is refused
constexpr size_t kMaxNameBytes = 256;  // past a name's 63: refused before storage is asked
constexpr size_t kMaxSelectorLabels = 64;

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

// `name` of a request naming a check: present and of a size worth looking up.
grpc::Status check_name_argument(const std::string& name, const char* field) {
  if (name.empty()) return invalid(fmt::format("{}: required (the check's name)", field));
  if (name.size() > kMaxNameBytes || name.find('\0') != std::string::npos) {
    return invalid(fmt::format("{}: not a check name (1 to 63 of a-z, 0-9 and '-')", field));
  }
  return grpc::Status::OK;
}

// validate_check's problems, each naming the request's field.
grpc::Status validate(v1::Check& check) {
  auto problems = validate_check(check);
  if (problems.empty()) return grpc::Status::OK;
  std::string message;
  for (const auto& problem : problems) {
    if (!message.empty()) message += "; ";
    message += problem.field.empty() ? "check: " + problem.message : "check." + problem.describe();
  }
  return invalid(std::move(message));
}

// What only the coordinator sets; a caller's values are dropped.
void clear_assigned(v1::Check& check) {
  check.clear_id();
  check.clear_version();
  check.clear_create_time();
  check.clear_update_time();
  check.set_source(v1::CHECK_SOURCE_API);
}

bool is_assigned_field(const std::string& path) {
  static const std::vector<std::string> kAssigned = {"name", "id", "version", "source", "create_time", "update_time"};
  return std::find(kAssigned.begin(), kAssigned.end(), path) != kAssigned.end();
}

}  // namespace

CheckServiceImpl::CheckServiceImpl(storage::CheckRepository& checks, storage::ApiCheckStore& api_checks,
                                   ApiAuthorizer& auth, CheckPublisher& publisher, CheckRunner& runner,
                                   std::string checks_file, CheckServiceOptions options)
    : checks_(checks),
      api_checks_(api_checks),
      auth_(auth),
      publisher_(publisher),
      runner_(runner),
      checks_file_(std::move(checks_file)),
      options_(options) {}

grpc::Status CheckServiceImpl::file_owned(const std::string& name, const char* what) const {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      fmt::format("check \"{}\" is owned by the checks file {}: {} it there (the coordinator reloads "
                                  "the file when it changes)",
                                  name, checks_file_.empty() ? "(not loaded now)" : checks_file_, what));
}

grpc::Status CheckServiceImpl::find(const std::string& name, v1::Check* check) {
  std::vector<v1::Check> all;
  try {
    all = checks_.list_checks();
  } catch (const storage::StorageError& e) {
    log::warn("cannot read checks", "error", e.what());
    return api_storage_status(e, "cannot read checks");
  }
  for (auto& c : all) {
    if (c.name() == name) {
      *check = std::move(c);
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND, fmt::format("name: no check named \"{}\"", name));
}

void CheckServiceImpl::publish(const std::string& what, const std::string& name) {
  try {
    AssignmentChanges changes;
    publisher_.publish([this] { return checks_.list_checks(); }, &changes);
    log::info("checks changed through the API", "change", what, "check", name, "probes_changed", changes.probes);
  } catch (const std::exception& e) {
    // Stored, not yet in force: the next change of the checks publishes it.
    log::error("check stored but not yet sent to the probes", "change", what, "check", name, "error", e.what());
  }
}

grpc::Status CheckServiceImpl::write_refused(const storage::ApiCheckWrite& write, const std::string& name,
                                             int64_t expected_version) {
  using Outcome = storage::ApiCheckWrite::Outcome;
  switch (write.outcome) {
    case Outcome::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, fmt::format("check.name: no check named \"{}\"", name));
    case Outcome::kNameTaken:
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          fmt::format("check.name: a check named \"{}\" already exists", name));
    case Outcome::kFileOwned:
      return file_owned(name, "change");
    case Outcome::kVersionMismatch:
      return grpc::Status(grpc::StatusCode::ABORTED,
                          fmt::format("expected_version: {}, but check \"{}\" is at version {} (read it again, then "
                                      "retry)",
                                      expected_version, name, write.stored_version));
    case Outcome::kOk:
      break;
  }
  return grpc::Status::OK;
}

grpc::Status CheckServiceImpl::CreateCheck(grpc::ServerContext* context, const v1::CreateCheckRequest* request,
                                           v1::CreateCheckResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kWrite, &caller); !status.ok()) return status;
  if (!request->has_check()) return invalid("check: required");
  v1::Check check = request->check();
  clear_assigned(check);
  if (!check.has_interval()) return invalid("check.interval: required (1s to 24h)");
  if (auto status = validate(check); !status.ok()) return status;
  storage::ApiCheckWrite write;
  try {
    write = api_checks_.create_api_check(check);
  } catch (const storage::StorageError& e) {
    log::warn("cannot create a check", "caller", caller.name, "check", check.name(), "error", e.what());
    return api_storage_status(e, "cannot create the check");
  }
  if (write.outcome != storage::ApiCheckWrite::Outcome::kOk) return write_refused(write, check.name(), 0);
  publish("create", check.name());
  *response->mutable_check() = std::move(write.check);
  return grpc::Status::OK;
}

grpc::Status CheckServiceImpl::GetCheck(grpc::ServerContext* context, const v1::GetCheckRequest* request,
                                        v1::GetCheckResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;
  if (auto status = check_name_argument(request->name(), "name"); !status.ok()) return status;
  return find(request->name(), response->mutable_check());
}

grpc::Status CheckServiceImpl::ListChecks(grpc::ServerContext* context, const v1::ListChecksRequest* request,
                                          v1::ListChecksResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;
  size_t page_size = 0;
  if (auto status = coordinator::page_size(request->page_size(), options_.pages, &page_size); !status.ok()) {
    return status;
  }
  if (request->label_selector_size() > static_cast<int>(kMaxSelectorLabels)) {
    return invalid(fmt::format("label_selector: {} labels, more than the {} a check may have",
                               request->label_selector_size(), kMaxSelectorLabels));
  }
  std::string after;
  if (auto status = page_position(kPageTokenTag, request->page_token(), &after); !status.ok()) return status;

  std::vector<v1::Check> all;
  try {
    all = checks_.list_checks();
  } catch (const storage::StorageError& e) {
    log::warn("cannot list checks", "caller", caller.name, "error", e.what());
    return api_storage_status(e, "cannot list checks");
  }
  // By name, bytewise: the order the page tokens assume, whatever the database's collation.
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name() < b.name(); });
  auto selected = [&](const v1::Check& check) {
    for (const auto& [key, value] : request->label_selector()) {
      auto it = check.labels().find(key);
      if (it == check.labels().end() || it->second != value) return false;
    }
    return true;
  };
  for (auto& check : all) {
    if (!after.empty() && check.name() <= after) continue;
    if (!selected(check)) continue;
    if (static_cast<size_t>(response->checks_size()) == page_size) {
      response->set_next_page_token(encode_page_token(kPageTokenTag, response->checks().rbegin()->name()));
      break;
    }
    *response->add_checks() = std::move(check);
  }
  return grpc::Status::OK;
}

grpc::Status CheckServiceImpl::UpdateCheck(grpc::ServerContext* context, const v1::UpdateCheckRequest* request,
                                           v1::UpdateCheckResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kWrite, &caller); !status.ok()) return status;
  if (!request->has_check()) return invalid("check: required");
  const std::string& name = request->check().name();
  if (auto status = check_name_argument(name, "check.name"); !status.ok()) return status;
  if (request->expected_version() < 0) {
    return invalid(fmt::format("expected_version: {} is negative", request->expected_version()));
  }
  const auto& mask = request->update_mask();
  for (const auto& path : mask.paths()) {
    if (is_assigned_field(path)) {
      return invalid(fmt::format("update_mask: \"{}\" cannot be changed (set by the coordinator, or the check's "
                                 "identity)",
                                 path));
    }
  }
  if (!google::protobuf::util::FieldMaskUtil::IsValidFieldMask<v1::Check>(mask)) {
    return invalid("update_mask: names a field that a Check does not have");
  }

  v1::Check stored;
  if (auto status = find(name, &stored); !status.ok()) return status;
  if (stored.source() == v1::CHECK_SOURCE_FILE) return file_owned(name, "change");
  if (request->expected_version() != 0 && request->expected_version() != stored.version()) {
    return write_refused({storage::ApiCheckWrite::Outcome::kVersionMismatch, {}, stored.version()}, name,
                         request->expected_version());
  }
  v1::Check check;
  if (mask.paths().empty()) {
    check = request->check();
  } else {
    check = stored;
    google::protobuf::util::FieldMaskUtil::MergeOptions merge;
    merge.set_replace_message_fields(true);
    merge.set_replace_repeated_fields(true);
    google::protobuf::util::FieldMaskUtil::MergeMessageTo(request->check(), mask, merge, &check);
  }
  clear_assigned(check);
  if (auto status = validate(check); !status.ok()) return status;

  storage::ApiCheckWrite write;
  try {
    // The version read above: a change meanwhile is not overwritten.
    write = api_checks_.update_api_check(check, stored.version());
  } catch (const storage::StorageError& e) {
    log::warn("cannot update a check", "caller", caller.name, "check", name, "error", e.what());
    return api_storage_status(e, "cannot update the check");
  }
  if (write.outcome != storage::ApiCheckWrite::Outcome::kOk) {
    return write_refused(write, name, request->expected_version() != 0 ? request->expected_version()
                                                                        : stored.version());
  }
  if (write.check.version() != stored.version()) publish("update", name);
  *response->mutable_check() = std::move(write.check);
  return grpc::Status::OK;
}

grpc::Status CheckServiceImpl::DeleteCheck(grpc::ServerContext* context, const v1::DeleteCheckRequest* request,
                                           v1::DeleteCheckResponse*) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kWrite, &caller); !status.ok()) return status;
  if (auto status = check_name_argument(request->name(), "name"); !status.ok()) return status;
  storage::ApiCheckWrite write;
  try {
    write = api_checks_.delete_api_check(request->name(), 0);
  } catch (const storage::StorageError& e) {
    log::warn("cannot delete a check", "caller", caller.name, "check", request->name(), "error", e.what());
    return api_storage_status(e, "cannot delete the check");
  }
  if (write.outcome == storage::ApiCheckWrite::Outcome::kNotFound) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, fmt::format("name: no check named \"{}\"", request->name()));
  }
  if (write.outcome == storage::ApiCheckWrite::Outcome::kFileOwned) return file_owned(request->name(), "delete");
  if (write.outcome != storage::ApiCheckWrite::Outcome::kOk) return write_refused(write, request->name(), 0);
  publish("delete", request->name());
  return grpc::Status::OK;
}

grpc::Status CheckServiceImpl::RunCheck(grpc::ServerContext* context, const v1::RunCheckRequest* request,
                                        v1::RunCheckResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kWrite, &caller); !status.ok()) return status;
  if (auto status = check_name_argument(request->name(), "name"); !status.ok()) return status;
  const auto& limits = runner_.options();
  auto timeout = limits.default_timeout;
  if (request->has_timeout()) {
    const auto& t = request->timeout();
    // Capped before conversion: no overflow for any value a caller sends.
    const auto requested = std::chrono::seconds(std::clamp<int64_t>(t.seconds(), -1, 86'400)) +
                           std::chrono::nanoseconds(t.nanos());
    if (t.seconds() < 0 || t.nanos() < 0 || t.nanos() >= 1'000'000'000 || requested < limits.min_timeout ||
        requested > limits.max_timeout) {
      return invalid(fmt::format("timeout: {}s {}ns is out of range: {}s to {}s (unset: {}s)", t.seconds(), t.nanos(),
                                 std::chrono::duration_cast<std::chrono::seconds>(limits.min_timeout).count(),
                                 std::chrono::duration_cast<std::chrono::seconds>(limits.max_timeout).count(),
                                 std::chrono::duration_cast<std::chrono::seconds>(limits.default_timeout).count()));
    }
    timeout = std::chrono::duration_cast<std::chrono::milliseconds>(requested);
  }
  v1::Check check;
  if (auto status = find(request->name(), &check); !status.ok()) return status;
  return runner_.run(check, timeout, [context] { return context->IsCancelled(); }, response);
}

}  // namespace vantage::coordinator
