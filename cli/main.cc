// vantagectl: the command-line client of Vantage's public gRPC API
// (proto/vantage/v1). Usage, output formats and exit codes: docs/vantagectl.md.
//
//   vantagectl [--addr HOST:PORT] [--token T | --token-file F] [--tls-ca CA.pem] [--json] [--timeout 10s]
//     checks list [--label k=v]... | get NAME | apply -f FILE [--dry-run] [--prune] | delete NAME
//     incidents list [filters] | show ID [--evidence] | watch [--check C] [--since S]
//     probes list [--region R]
//     results summary CHECK [--window 24h]
//     run CHECK [--timeout 30s]
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/apply_plan.h"
#include "cli/client.h"
#include "cli/format.h"
#include "common/backoff.h"
#include "common/build_info.h"
#include "common/check_config.h"
#include "common/failure_class.h"
#include "common/incident_names.h"
#include "common/proto_time.h"
#include "common/text.h"
#include "vantage/v1/check_service.grpc.pb.h"
#include "vantage/v1/fleet_service.grpc.pb.h"
#include "vantage/v1/incident_service.grpc.pb.h"
#include "vantage/v1/result_service.grpc.pb.h"

namespace vantage::ctl {
namespace {

using std::chrono::milliseconds;

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok (also `checks apply --dry-run` with changes); 1 usage error (bad flags or values, an "
    "invalid checks file); 2 the server refused the request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, "
    "FAILED_PRECONDITION, ABORTED, UNIMPLEMENTED, ...); 3 authentication or permission (UNAUTHENTICATED, "
    "PERMISSION_DENIED); 4 the coordinator is unavailable or did not answer in time (UNAVAILABLE, "
    "DEADLINE_EXCEEDED).\n"
    "Environment: VANTAGE_ADDR (--addr), VANTAGE_TOKEN (--token).\n"
    "--json prints one JSON object per line (protobuf's JSON mapping, proto field names): one per item for "
    "lists and `incidents watch`, one for the rest. See docs/vantagectl.md.\n";

// A page-following loop stops at this many pages: a server that keeps
// sending page tokens is not followed for ever.
constexpr int kMaxPages = 10'000;

// --json output: one object per line.
void print_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) text = "{}";
  std::cout << text << "\n";
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& items, const char* empty = "-") {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? empty : out;
}

std::string join_map(const google::protobuf::Map<std::string, std::string>& map, const char* sep = "=") {
  std::map<std::string, std::string> sorted(map.begin(), map.end());
  std::string out;
  for (const auto& [k, v] : sorted) out += (out.empty() ? "" : ", ") + k + sep + v;
  return out.empty() ? "-" : out;
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

std::string source_name(v1::CheckSource source) {
  switch (source) {
    case v1::CHECK_SOURCE_FILE:
      return "file";
    case v1::CHECK_SOURCE_API:
      return "api";
    default:
      return "-";
  }
}

// Calls `call` page after page until the last (or until `take`, given each
// response, returns false). A server that keeps sending page tokens, or the
// same one again, is not followed for ever.
template <typename Request, typename Response, typename Call, typename Take>
grpc::Status follow_pages(const Client& client, Request request, Call call, Take take) {
  for (int page = 0; page < kMaxPages; ++page) {
    grpc::ClientContext context;
    client.prepare(context);
    Response response;
    if (auto status = call(&context, request, &response); !status.ok()) return status;
    if (!take(response) || response.next_page_token().empty()) return grpc::Status::OK;
    if (response.next_page_token() == request.page_token()) break;
    request.set_page_token(response.next_page_token());
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "the server's pages do not end");
}

// An enum flag by its stable lower-case name; nullopt after printing the
// usage error naming the flag and the names it takes.
template <typename Enum>
std::optional<Enum> enum_flag(const char* flag, const std::string& value,
                              const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix) {
  if (auto v = enum_from_name(descriptor, prefix, value)) return static_cast<Enum>(*v);
  usage_error(fmt::format("{} \"{}\": expected {}", flag, printable(value, 80), enum_names(descriptor, prefix)));
  return std::nullopt;
}

// --since; nullopt after printing the usage error.
std::optional<google::protobuf::Timestamp> since_flag(const std::string& value) {
  if (auto t = parse_since(value, std::chrono::system_clock::now())) return t;
  usage_error(
      fmt::format("--since \"{}\": expected a duration back (30m, 2d) or an RFC 3339 time", printable(value, 80)));
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// checks
// ---------------------------------------------------------------------------

grpc::Status list_all_checks(const Client& client, const std::map<std::string, std::string>& selector,
                             std::vector<v1::Check>* out, int page_size = 1000) {
  auto stub = v1::CheckService::NewStub(client.channel());
  v1::ListChecksRequest request;
  request.set_page_size(page_size);
  for (const auto& [k, v] : selector) (*request.mutable_label_selector())[k] = v;
  return follow_pages<v1::ListChecksRequest, v1::ListChecksResponse>(
      client, request,
      [&](auto* context, const auto& r, auto* response) { return stub->ListChecks(context, r, response); },
      [&](v1::ListChecksResponse& response) {
        for (auto& c : *response.mutable_checks()) out->push_back(std::move(c));
        return true;
      });
}

std::string regions_text(const v1::Check& c) { return c.regions().empty() ? "all" : join(c.regions()); }

int checks_list(const Client& client, bool json, const std::vector<std::string>& labels, int page_size) {
  if (page_size < 1 || page_size > 1000) return usage_error("--page-size: expected 1 to 1000");
  std::map<std::string, std::string> selector;
  for (const auto& label : labels) {
    const auto eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return usage_error(fmt::format("--label \"{}\": expected KEY=VALUE", printable(label, 200)));
    }
    selector[label.substr(0, eq)] = label.substr(eq + 1);
  }
  std::vector<v1::Check> checks;
  if (auto status = list_all_checks(client, selector, &checks, page_size); !status.ok()) return report(status);
  if (json) {
    for (const auto& c : checks) print_json(c);
    return kExitOk;
  }
  Table table({"NAME", "SOURCE", "VERSION", "INTERVAL", "REGIONS", "LABELS", "URL"});
  for (const auto& c : checks) {
    table.add_row({c.name(), source_name(c.source()), std::to_string(c.version()), format_interval(c.interval()),
                   regions_text(c), join_map(c.labels()), c.url()});
  }
  std::cout << table.render();
  return kExitOk;
}

std::string statuses_text(const v1::Check& c) {
  std::string out;
  for (const auto& r : c.expected_status()) {
    out += (out.empty() ? "" : ", ") +
           (r.min() == r.max() ? std::to_string(r.min()) : fmt::format("{}-{}", r.min(), r.max()));
  }
  return or_dash(out);
}

std::string assertions_text(const v1::Check& c) {
  std::string out;
  for (const auto& a : c.assertions()) {
    std::string target = a.target() == v1::Assertion::TARGET_HEADER ? "header " + a.header_name() : "body";
    out += (out.empty() ? "" : "; ") + target + (a.negate() ? " !~ " : " ~ ") + a.pattern();
  }
  return or_dash(out);
}

std::string origin_text(const v1::Check& c) {
  if (!c.has_origin() || c.origin().address().empty()) return "-";
  const auto& o = c.origin();
  std::string out = o.address();
  if (!o.scheme().empty()) out += " scheme " + o.scheme();
  if (!o.host().empty()) out += " host " + o.host();
  if (!o.sni().empty()) out += " sni " + o.sni();
  if (o.has_interval() && to_millis(o.interval()).count() > 0) out += " every " + format_interval(o.interval());
  return out;
}

std::string correlation_text(const v1::Check& c) {
  if (!c.has_correlation()) return "defaults";
  const auto& s = c.correlation();
  std::string out;
  auto add = [&](const char* name, const std::string& value) {
    out += (out.empty() ? "" : ", ") + std::string(name) + " " + value;
  };
  if (s.has_confirm_consecutive()) add("confirm_consecutive", std::to_string(s.confirm_consecutive()));
  if (s.has_resolve_consecutive()) add("resolve_consecutive", std::to_string(s.resolve_consecutive()));
  if (s.has_global_quorum()) add("global_quorum", std::to_string(s.global_quorum()));
  if (s.has_recurring_min()) add("recurring_min", std::to_string(s.recurring_min()));
  if (s.has_stale_after()) add("stale_after", format_interval(s.stale_after()));
  if (s.has_reopen_within()) add("reopen_within", format_interval(s.reopen_within()));
  if (s.has_recurring_window()) add("recurring_window", format_interval(s.recurring_window()));
  if (s.has_recheck_min_interval()) add("recheck_min_interval", format_interval(s.recheck_min_interval()));
  return out.empty() ? "defaults" : out;
}

// Two columns: a label and its value, for one object.
void print_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [k, v] : fields) width = std::max(width, k.size());
  for (const auto& [k, v] : fields) std::cout << fmt::format("{:<{}}  {}\n", k + ":", width + 1, printable(v, 2000));
}

int checks_get(const Client& client, bool json, const std::string& name) {
  auto stub = v1::CheckService::NewStub(client.channel());
  grpc::ClientContext context;
  client.prepare(context);
  v1::GetCheckRequest request;
  request.set_name(name);
  v1::GetCheckResponse response;
  if (auto status = stub->GetCheck(&context, request, &response); !status.ok()) return report(status);
  const auto& c = response.check();
  if (json) {
    print_json(c);
    return kExitOk;
  }
  std::string follow_up = std::string(c.follow_up_json() ? "json " : "") + (c.follow_up_trace() ? "trace" : "");
  print_fields({
      {"name", c.name()},
      {"source", source_name(c.source())},
      {"version", std::to_string(c.version())},
      {"url", c.url()},
      {"method", or_dash(c.method())},
      {"interval", format_interval(c.interval())},
      {"timeout", format_interval(c.timeout())},
      {"expected_status", statuses_text(c)},
      {"regions", regions_text(c)},
      {"labels", join_map(c.labels())},
      {"headers", join_map(c.headers(), ": ")},
      {"assertions", assertions_text(c)},
      {"origin", origin_text(c)},
      {"correlation", correlation_text(c)},
      {"follow_up", or_dash(std::string(trim_ascii(follow_up)))},
      {"created", format_time(c.create_time())},
      {"updated", format_time(c.update_time())},
  });
  return kExitOk;
}

int checks_delete(const Client& client, bool json, const std::string& name) {
  auto stub = v1::CheckService::NewStub(client.channel());
  grpc::ClientContext context;
  client.prepare(context);
  v1::DeleteCheckRequest request;
  request.set_name(name);
  v1::DeleteCheckResponse response;
  if (auto status = stub->DeleteCheck(&context, request, &response); !status.ok()) return report(status);
  if (json) {
    std::cout << nlohmann::json{{"deleted", name}}.dump() << "\n";
  } else {
    std::cout << "deleted check " << name << "\n";
  }
  return kExitOk;
}

// Carries out one change of the plan.
grpc::Status apply_change(v1::CheckService::Stub& stub, const Client& client, const PlannedChange& change) {
  grpc::ClientContext context;
  client.prepare(context);
  switch (change.action) {
    case PlannedChange::Action::kCreate: {
      v1::CreateCheckRequest request;
      *request.mutable_check() = change.desired;
      v1::CreateCheckResponse response;
      return stub.CreateCheck(&context, request, &response);
    }
    case PlannedChange::Action::kUpdate: {
      v1::UpdateCheckRequest request;
      *request.mutable_check() = change.desired;  // no update_mask: every field, as the file says
      request.set_expected_version(change.expected_version);
      v1::UpdateCheckResponse response;
      return stub.UpdateCheck(&context, request, &response);
    }
    case PlannedChange::Action::kDelete: {
      v1::DeleteCheckRequest request;
      request.set_name(change.name);
      v1::DeleteCheckResponse response;
      return stub.DeleteCheck(&context, request, &response);
    }
    default:
      return grpc::Status::OK;
  }
}

int checks_apply(const Client& client, bool json, const std::string& file, bool dry_run, bool prune) {
  std::vector<v1::Check> desired;
  try {
    // The coordinator's own loader and validation: the same format, the same errors.
    desired = load_checks_file(file);
  } catch (const ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << "vantagectl: " << printable(problem, 2000) << "\n";
    return kExitUsage;
  }
  std::vector<v1::Check> stored;
  if (auto status = list_all_checks(client, {}, &stored); !status.ok()) return report(status);
  const auto plan = plan_apply(desired, stored, prune);

  auto stub = v1::CheckService::NewStub(client.channel());
  std::map<PlannedChange::Action, int> counts;
  for (const auto& change : plan) {
    if (!dry_run && is_change(change)) {
      if (auto status = apply_change(*stub, client, change); !status.ok()) {
        std::cerr << "vantagectl: " << describe(change) << ": ";
        return report(status);
      }
    }
    ++counts[change.action];
    if (json) {
      nlohmann::json line{{"action", action_name(change.action)}, {"name", change.name}, {"dry_run", dry_run}};
      if (change.action == PlannedChange::Action::kUpdate) line["fields"] = change.fields;
      std::cout << line.dump() << "\n";
    } else if (auto text = describe(change); !text.empty()) {
      std::cout << text << "\n";
    }
  }
  if (!json) {
    using A = PlannedChange::Action;
    const auto summary = fmt::format("{} to create, {} to update, {} to delete, {} unchanged", counts[A::kCreate],
                                     counts[A::kUpdate], counts[A::kDelete], counts[A::kUnchanged]);
    if (dry_run) {
      std::cout << "dry run, nothing changed: " << summary << "\n";
    } else {
      std::cout << fmt::format("applied: {} created, {} updated, {} deleted, {} unchanged\n", counts[A::kCreate],
                               counts[A::kUpdate], counts[A::kDelete], counts[A::kUnchanged]);
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// probes
// ---------------------------------------------------------------------------

int probes_list(const Client& client, bool json, const std::string& region) {
  auto stub = v1::FleetService::NewStub(client.channel());
  v1::ListProbesRequest request;
  request.set_page_size(1000);
  request.set_region(region);
  std::vector<v1::Probe> probes;
  auto status = follow_pages<v1::ListProbesRequest, v1::ListProbesResponse>(
      client, request,
      [&](auto* context, const auto& r, auto* response) { return stub->ListProbes(context, r, response); },
      [&](v1::ListProbesResponse& response) {
        for (auto& p : *response.mutable_probes()) probes.push_back(std::move(p));
        return true;
      });
  if (!status.ok()) return report(status);
  if (json) {
    for (const auto& p : probes) print_json(p);
    return kExitOk;
  }
  Table table({"ID", "REGION", "VERSION", "CONNECTED", "LAST SEEN", "CHECKS", "RESULTS/S", "BACKLOG", "LAST SEQ"});
  for (const auto& p : probes) {
    table.add_row({p.id(), p.region(), or_dash(p.version()), p.connected() ? "yes" : "no",
                   format_time(p.last_seen_time()), std::to_string(p.checks_assigned()),
                   p.has_results_per_second() ? fmt::format("{:.2f}", p.results_per_second()) : "-",
                   p.has_spool_backlog() ? std::to_string(p.spool_backlog()) : "-",
                   std::to_string(p.last_stored_sequence())});
  }
  std::cout << table.render();
  return kExitOk;
}

// ---------------------------------------------------------------------------
// results, run
// ---------------------------------------------------------------------------

std::string cause_of(const v1::CheckResult& r) {
  if (!r.diagnosis().cause().empty()) return r.diagnosis().cause();
  return or_dash(r.diagnosis().cause_id());
}

std::string status_text(const v1::LegResult& leg) {
  return leg.response().status() ? std::to_string(leg.response().status()) : "-";
}

int results_summary(const Client& client, bool json, const std::string& check, const std::string& window) {
  auto length = parse_cli_duration(window);
  if (!length)
    return usage_error(fmt::format("--window \"{}\": expected a duration such as 1h, 24h, 7d", printable(window, 80)));
  auto stub = v1::ResultService::NewStub(client.channel());
  grpc::ClientContext context;
  client.prepare(context);
  v1::GetCheckSummaryRequest request;
  request.set_check(check);
  *request.mutable_window() = to_duration(*length);
  v1::GetCheckSummaryResponse response;
  if (auto status = stub->GetCheckSummary(&context, request, &response); !status.ok()) return report(status);
  const auto& s = response.summary();
  if (json) {
    print_json(s);
    return kExitOk;
  }
  print_fields({
      {"check", s.check()},
      {"period", fmt::format("{} to {}", format_time(s.start_time()), format_time(s.end_time()))},
      {"uptime", fmt::format("{} ({} of {} periods with an attempt had a success)", format_percent(s.uptime()),
                             s.periods_up(), s.periods())},
      {"reachability",
       fmt::format("{} ({} of {} attempts succeeded)", format_percent(s.reachability()), s.successes(), s.attempts())},
      {"latency", fmt::format("p50 {}, p90 {}, p95 {}, p99 {}", format_ms(s.latency_p50()), format_ms(s.latency_p90()),
                              format_ms(s.latency_p95()), format_ms(s.latency_p99()))},
  });
  Table regions({"REGION", "ATTEMPTS", "SUCCESSES", "REACHABILITY", "P50", "P90", "P95", "P99"});
  for (const auto& r : s.by_region()) {
    regions.add_row({r.region(), std::to_string(r.attempts()), std::to_string(r.successes()),
                     r.attempts() ? format_percent(static_cast<double>(r.successes()) / r.attempts()) : "-",
                     format_ms(r.latency_p50()), format_ms(r.latency_p90()), format_ms(r.latency_p95()),
                     format_ms(r.latency_p99())});
  }
  std::cout << "\n" << regions.render();
  Table classes({"CLASS", "COUNT"});
  for (const auto& c : s.by_class())
    classes.add_row({failure_class_name(c.failure_class()), std::to_string(c.count())});
  std::cout << "\n" << classes.render();
  if (!s.edge_codes().empty()) {
    Table codes({"REGION", "COLO", "EDGE CODE", "COUNT"});
    for (const auto& c : s.edge_codes()) {
      codes.add_row({c.region(), c.colo(), std::to_string(c.edge_code()), std::to_string(c.count())});
    }
    std::cout << "\n" << codes.render();
  } else {
    std::cout << "\nno 52x from the edge\n";
  }
  return kExitOk;
}

int run_check(const Client& client, bool json, const std::string& check, const std::string& timeout) {
  auto wait = parse_cli_duration(timeout);
  if (!wait)
    return usage_error(fmt::format("--timeout \"{}\": expected a duration such as 30s", printable(timeout, 80)));
  auto stub = v1::CheckService::NewStub(client.channel());
  grpc::ClientContext context;
  client.prepare(context, *wait);  // the run's own wait, plus the usual time to answer
  v1::RunCheckRequest request;
  request.set_name(check);
  *request.mutable_timeout() = to_duration(*wait);
  v1::RunCheckResponse response;
  if (auto status = stub->RunCheck(&context, request, &response); !status.ok()) return report(status);
  if (json) {
    print_json(response);
    return kExitOk;
  }
  Table table({"REGION", "PROBE", "CLASS", "STATUS", "TOTAL", "COLO", "CAUSE"});
  for (const auto& stored : response.results()) {
    const auto& r = stored.result();
    table.add_row({stored.region(), stored.probe_id(), failure_class_name(r.edge().failure_class()),
                   status_text(r.edge()), format_us_as_ms(r.edge().timings().total_us()),
                   or_dash(r.edge().edge().colo()), cause_of(r)});
  }
  std::cout << table.render();
  if (!response.regions_without_probe().empty()) {
    std::cout << "no connected probe in: " << printable(join(response.regions_without_probe())) << "\n";
  }
  if (!response.regions_timed_out().empty()) {
    std::cout << "no result in time from: " << printable(join(response.regions_timed_out())) << "\n";
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// incidents
// ---------------------------------------------------------------------------

struct IncidentFilters {
  std::string check, state, kind, scope, since;
  int limit = 100;
};

std::string incident_cause(const v1::Incident& i) { return or_dash(i.diagnosis().cause()); }

int incidents_list(const Client& client, bool json, const IncidentFilters& f) {
  v1::ListIncidentsRequest request;
  request.set_check(f.check);
  if (!f.state.empty()) {
    auto v = enum_flag<v1::IncidentState>("--state", f.state, v1::IncidentState_descriptor(), "INCIDENT_STATE_");
    if (!v) return kExitUsage;
    request.set_state(*v);
  }
  if (!f.kind.empty()) {
    auto v = enum_flag<v1::IncidentKind>("--kind", f.kind, v1::IncidentKind_descriptor(), "INCIDENT_KIND_");
    if (!v) return kExitUsage;
    request.set_kind(*v);
  }
  if (!f.scope.empty()) {
    auto v = enum_flag<v1::Scope>("--scope", f.scope, v1::Scope_descriptor(), "SCOPE_");
    if (!v) return kExitUsage;
    request.set_scope(*v);
  }
  if (!f.since.empty()) {
    auto t = since_flag(f.since);
    if (!t) return kExitUsage;
    *request.mutable_start_time() = *t;
  }
  if (f.limit < 0) return usage_error("--limit: expected 0 (every incident) or more");
  const size_t limit = f.limit == 0 ? std::numeric_limits<size_t>::max() : static_cast<size_t>(f.limit);
  request.set_page_size(static_cast<int32_t>(std::min<size_t>(limit, 1000)));
  auto stub = v1::IncidentService::NewStub(client.channel());
  std::vector<v1::Incident> incidents;
  auto status = follow_pages<v1::ListIncidentsRequest, v1::ListIncidentsResponse>(
      client, request,
      [&](auto* context, const auto& r, auto* response) { return stub->ListIncidents(context, r, response); },
      [&](v1::ListIncidentsResponse& response) {
        for (auto& i : *response.mutable_incidents()) {
          if (incidents.size() < limit) incidents.push_back(std::move(i));
        }
        return incidents.size() < limit;
      });
  if (!status.ok()) return report(status);
  if (json) {
    for (const auto& i : incidents) print_json(i);
    return kExitOk;
  }
  Table table({"ID", "CHECK", "STATE", "KIND", "SCOPE", "WIDEST", "FIRST FAILURE", "RESOLVED", "FAILURES", "CAUSE"});
  for (const auto& i : incidents) {
    table.add_row({i.id(), i.check(), incident_state_name(i.state()), incident_kind_name(i.kind()),
                   scope_name(i.scope()), scope_name(i.widest_scope()), format_time(i.first_failure_time()),
                   format_time(i.resolve_time()), std::to_string(i.failure_count()), incident_cause(i)});
  }
  std::cout << table.render();
  return kExitOk;
}

// The edge's error as a support ticket names it: "520 (Web server is
// returning an unknown error)", "530/1016 (...)", else the failure class.
std::string edge_error_text(const v1::LegResult& leg) {
  const auto& e = leg.edge();
  if (e.edge_code() == 0)
    return failure_class_name(leg.failure_class()) + (leg.response().status() ? " " + status_text(leg) : "");
  std::string code = std::to_string(e.edge_code());
  if (e.edge_error_code()) code += "/" + std::to_string(e.edge_error_code());
  return e.error_name().empty() ? code : code + " (" + e.error_name() + ")";
}

// The origin's own reply at the same moment: its class and status.
std::string origin_reply_text(const v1::CheckResult& r) {
  if (!r.has_origin()) return "not run";
  return failure_class_name(r.origin().failure_class()) + " " + status_text(r.origin());
}

int incidents_show(const Client& client, bool json, const std::string& id, bool evidence, int evidence_limit) {
  if (evidence_limit < 1 || evidence_limit > 500) return usage_error("--evidence-limit: expected 1 to 500");
  auto stub = v1::IncidentService::NewStub(client.channel());
  grpc::ClientContext context;
  client.prepare(context);
  v1::GetIncidentRequest request;
  request.set_id(id);
  request.set_evidence_limit(evidence ? evidence_limit : 1);
  v1::GetIncidentResponse response;
  if (auto status = stub->GetIncident(&context, request, &response); !status.ok()) return report(status);
  if (!evidence) response.clear_evidence();
  if (json) {
    print_json(response);
    return kExitOk;
  }
  const auto& i = response.incident();
  std::string klass = failure_class_name(i.dominant_class());
  if (i.dominant_edge_code()) klass += fmt::format(" (edge {})", i.dominant_edge_code());
  print_fields({
      {"id", i.id()},
      {"check", i.check()},
      {"state", incident_state_name(i.state())},
      {"kind", incident_kind_name(i.kind())},
      {"scope", scope_name(i.scope()) + " (widest " + scope_name(i.widest_scope()) + ")"},
      {"first failure", format_time(i.first_failure_time())},
      {"confirmed", format_time(i.confirm_time())},
      {"resolved", format_time(i.resolve_time())},
      {"failures", std::to_string(i.failure_count())},
      {"regions", join(i.affected_regions())},
      {"colos", join(i.affected_colos())},
      {"probes", join(i.affected_probes())},
      {"class", klass},
      {"cause", incident_cause(i)},
      {"advice", or_dash(i.diagnosis().advice())},
      {"sample ray ids", join(i.sample_ray_ids())},
      {"recurrence",
       fmt::format("{} in 24h, {} in 7d{}", i.recurrence_24h(), i.recurrence_7d(), i.flapping() ? ", flapping" : "")},
  });
  Table timeline({"TIME", "EVENT", "SCOPE", "CAUSE", "MESSAGE"});
  for (const auto& e : i.timeline()) {
    timeline.add_row({format_time(e.time(), true), incident_event_type_name(e.type()), scope_name(e.scope()),
                      or_dash(e.diagnosis().cause()), or_dash(e.message())});
  }
  std::cout << "\n" << timeline.render();
  if (evidence) {
    // What a Cloudflare support ticket asks for: each ray id with its colo
    // and time, the edge's error, and the origin's own reply at that moment.
    Table table({"TIME", "RAY ID", "COLO", "EDGE ERROR", "ORIGIN REPLY", "REGION", "PROBE"});
    for (const auto& stored : response.evidence()) {
      const auto& r = stored.result();
      table.add_row({format_time(r.start_time(), true), or_dash(r.edge().edge().ray_id()),
                     or_dash(r.edge().edge().colo()), edge_error_text(r.edge()), origin_reply_text(r), stored.region(),
                     stored.probe_id()});
    }
    std::cout << "\nEVIDENCE (" << response.evidence_size() << " failing results, newest first)\n" << table.render();
  }
  return kExitOk;
}

std::string watch_line(const v1::WatchIncidentsResponse& w) {
  const auto& e = w.event();
  const auto& i = w.incident();
  const auto scope = e.scope() != v1::SCOPE_UNSPECIFIED ? e.scope() : i.scope();
  const auto cause = !e.diagnosis().cause().empty() ? e.diagnosis().cause() : incident_cause(i);
  return printable(
      fmt::format("{}  {}  {}  {}  {}  {}  {}", format_time(e.time(), true), e.incident_id(), or_dash(i.check()),
                  incident_event_type_name(e.type()), scope_name(scope), incident_kind_name(i.kind()), cause),
      2000);
}

// Runs until interrupted. UNAVAILABLE (the coordinator restarting, the
// network) and RESOURCE_EXHAUSTED (this client fell behind) resume after the
// last event printed, so nothing is lost or printed twice; any other error
// ends it with its exit code.
int incidents_watch(const Client& client, bool json, const std::string& check, const std::string& since_text) {
  google::protobuf::Timestamp since;
  if (!since_text.empty()) {
    auto t = since_flag(since_text);
    if (!t) return kExitUsage;
    since = *t;
  }
  // Before any event arrived, a reconnect asks from when this watch began,
  // so an event of the gap is not lost either.
  const auto started = to_timestamp(std::chrono::system_clock::now());
  auto stub = v1::IncidentService::NewStub(client.channel());
  Backoff backoff(milliseconds(500), milliseconds(10'000), random_uniform());
  int64_t last_event_id = 0;
  for (bool retry = false;; retry = true) {
    grpc::ClientContext context;
    client.prepare_stream(context);
    v1::WatchIncidentsRequest request;
    request.set_check(check);
    if (last_event_id > 0) {
      request.set_after_event_id(last_event_id);
    } else if (!since_text.empty()) {
      *request.mutable_since() = since;
    } else if (retry) {
      *request.mutable_since() = started;
    }
    auto reader = stub->WatchIncidents(&context, request);
    v1::WatchIncidentsResponse response;
    while (reader->Read(&response)) {
      backoff.reset();
      if (response.event().event_id() <= last_event_id) continue;  // never printed twice
      last_event_id = response.event().event_id();
      if (json) {
        print_json(response);
      } else {
        std::cout << watch_line(response) << "\n";
      }
      std::cout.flush();
    }
    const auto status = reader->Finish();
    const auto code = status.error_code();
    if (code != grpc::StatusCode::UNAVAILABLE && code != grpc::StatusCode::RESOURCE_EXHAUSTED &&
        code != grpc::StatusCode::OK) {
      return report(status);
    }
    const auto delay = backoff.next();
    std::cerr << fmt::format("vantagectl: watch: {}: {}; resuming after event {} in {} ms\n", status_code_name(code),
                             printable(status.error_message(), 300), last_event_id, delay.count());
    std::this_thread::sleep_for(delay);
  }
}

// ---------------------------------------------------------------------------

// Reads a small file whole (a token, a CA bundle); nullopt when unreadable.
std::optional<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return std::nullopt;
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes) return std::nullopt;
  return text;
}

int run(int argc, char** argv) {
  CLI::App app{"vantagectl: the command-line client of the Vantage API"};
  app.set_version_flag("--version", std::string(kVersion) + " (" + kRevision + ")");
  app.footer(kExitCodesHelp);
  app.require_subcommand(1);
  app.fallthrough();  // global flags are taken after a subcommand too
  app.failure_message(
      [](const CLI::App*, const CLI::Error& e) { return std::string("vantagectl: ") + e.what() + " (see --help)\n"; });

  std::string addr = "127.0.0.1:7000";  // the coordinator's default --listen
  if (const char* env = std::getenv("VANTAGE_ADDR"); env && *env) addr = env;
  std::string token, token_file, tls_ca, timeout_text = "10s";
  if (const char* env = std::getenv("VANTAGE_TOKEN"); env && *env) token = env;
  bool json = false;
  app.add_option("--addr", addr, "coordinator gRPC address HOST:PORT (default: $VANTAGE_ADDR, else 127.0.0.1:7000)");
  auto* token_opt = app.add_option("--token", token, "API token (default: $VANTAGE_TOKEN)");
  app.add_option("--token-file", token_file, "read the API token from this file")->excludes(token_opt);
  app.add_option("--tls-ca", tls_ca, "PEM CA certificate(s): connect with TLS verified by them (default: plaintext)");
  app.add_flag("--json", json, "print JSON, one object per line");
  app.add_option("--timeout", timeout_text, "deadline of each call, e.g. 10s")->capture_default_str();

  auto* checks = app.add_subcommand("checks", "list, show, apply and delete checks")->require_subcommand(1);
  std::vector<std::string> labels;
  auto* checks_list_cmd = checks->add_subcommand("list", "list checks (every page)");
  checks_list_cmd->add_option("--label", labels, "only checks with this label KEY=VALUE (repeatable: all must match)");
  int page_size = 1000;
  checks_list_cmd->add_option("--page-size", page_size, "checks asked for per call (1 to 1000); every page is read")
      ->capture_default_str();
  std::string check_name;
  auto* checks_get_cmd = checks->add_subcommand("get", "show one check");
  checks_get_cmd->add_option("name", check_name, "the check's name")->required();
  std::string apply_file;
  bool dry_run = false, prune = false;
  auto* checks_apply_cmd = checks->add_subcommand(
      "apply", "make the API-owned checks match a checks file; prints + created, ~ updated (fields), - deleted");
  checks_apply_cmd->add_option("-f,--file", apply_file, "checks file (the coordinator's --checks format)")->required();
  checks_apply_cmd->add_flag("--dry-run", dry_run, "print the changes, make none (exit code 0 either way)");
  checks_apply_cmd->add_flag("--prune", prune, "also delete API-owned checks that the file does not name");
  auto* checks_delete_cmd = checks->add_subcommand("delete", "delete an API-owned check");
  checks_delete_cmd->add_option("name", check_name, "the check's name")->required();

  auto* incidents = app.add_subcommand("incidents", "list, show and watch incidents")->require_subcommand(1);
  IncidentFilters filters;
  auto* incidents_list_cmd = incidents->add_subcommand("list", "list incidents, newest first");
  incidents_list_cmd->add_option("--check", filters.check, "only this check's");
  incidents_list_cmd->add_option("--state", filters.state, "open or resolved");
  incidents_list_cmd->add_option("--kind", filters.kind, "outage or intermittent");
  incidents_list_cmd->add_option("--scope", filters.scope, "widest scope reached: probe, colo, region or global");
  incidents_list_cmd->add_option("--since", filters.since,
                                 "opened since: a duration back (30m, 7d) or an RFC 3339 time");
  incidents_list_cmd->add_option("--limit", filters.limit, "at most this many (0: all)")->capture_default_str();
  std::string incident_id;
  bool evidence = false;
  int evidence_limit = 20;
  auto* incidents_show_cmd = incidents->add_subcommand("show", "show an incident and its timeline");
  incidents_show_cmd->add_option("id", incident_id, "the incident's id")->required();
  incidents_show_cmd->add_flag("--evidence", evidence,
                               "also the failing results: ray id, colo, time, the edge's error, the origin's reply");
  incidents_show_cmd->add_option("--evidence-limit", evidence_limit, "failing results shown (1 to 500)")
      ->capture_default_str();
  std::string watch_check, watch_since;
  auto* incidents_watch_cmd = incidents->add_subcommand(
      "watch", "print each incident event as it happens (reconnects and resumes; Ctrl-C stops)");
  incidents_watch_cmd->add_option("--check", watch_check, "only this check's");
  incidents_watch_cmd->add_option("--since", watch_since,
                                  "first the events since: a duration back or an RFC 3339 time");

  auto* probes = app.add_subcommand("probes", "the probe fleet")->require_subcommand(1);
  std::string probe_region;
  auto* probes_list_cmd = probes->add_subcommand("list", "list probes");
  probes_list_cmd->add_option("--region", probe_region, "only this region's");

  auto* results = app.add_subcommand("results", "stored results")->require_subcommand(1);
  std::string window = "24h";
  auto* summary_cmd = results->add_subcommand("summary", "uptime, reachability, latency, classes and 52x of a check");
  summary_cmd->add_option("check", check_name, "the check's name")->required();
  summary_cmd->add_option("--window", window, "the period summarised, up to now: 1h, 24h, 7d, 30d")
      ->capture_default_str();

  std::string run_timeout = "30s";
  auto* run_cmd = app.add_subcommand("run", "run a check now in every region it runs in and print the results");
  run_cmd->add_option("check", check_name, "the check's name")->required();
  run_cmd->add_option("--timeout", run_timeout, "how long the coordinator waits for the results (1s to 5m)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;  // --help and --version exit 0
  }

  ConnectionOptions connection;
  connection.address = addr;
  connection.token = token;
  if (!token_file.empty()) {
    auto text = read_small_file(token_file, 4096);
    if (!text) return usage_error("--token-file " + printable(token_file, 200) + ": cannot read it (or over 4 KiB)");
    connection.token = std::string(trim_ascii(*text));
  }
  if (connection.token.find_first_of(" \t\r\n") != std::string::npos ||
      connection.token.find('\0') != std::string::npos) {
    return usage_error("the API token holds white space or control characters: is it the right file?");
  }
  if (!tls_ca.empty()) {
    auto pem = read_small_file(tls_ca, 1024 * 1024);
    if (!pem || pem->empty())
      return usage_error("--tls-ca " + printable(tls_ca, 200) + ": cannot read it (or over 1 MiB)");
    connection.tls_ca_pem = *pem;
  }
  auto timeout = parse_cli_duration(timeout_text);
  if (!timeout)
    return usage_error(fmt::format("--timeout \"{}\": expected a duration such as 10s", printable(timeout_text, 80)));
  connection.timeout = *timeout;
  const Client client(connection);

  if (*checks_list_cmd) return checks_list(client, json, labels, page_size);
  if (*checks_get_cmd) return checks_get(client, json, check_name);
  if (*checks_apply_cmd) return checks_apply(client, json, apply_file, dry_run, prune);
  if (*checks_delete_cmd) return checks_delete(client, json, check_name);
  if (*incidents_list_cmd) return incidents_list(client, json, filters);
  if (*incidents_show_cmd) return incidents_show(client, json, incident_id, evidence, evidence_limit);
  if (*incidents_watch_cmd) return incidents_watch(client, json, watch_check, watch_since);
  if (*probes_list_cmd) return probes_list(client, json, probe_region);
  if (*summary_cmd) return results_summary(client, json, check_name, window);
  if (*run_cmd) return run_check(client, json, check_name, run_timeout);
  return usage_error("no command given (see --help)");
}

}  // namespace
}  // namespace vantage::ctl

int main(int argc, char** argv) {
  try {
    return vantage::ctl::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "vantagectl: " << vantage::ctl::printable(e.what(), 2000) << "\n";
    return vantage::ctl::kExitUsage;
  }
}
