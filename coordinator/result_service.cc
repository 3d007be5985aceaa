#include "coordinator/result_service.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include <charconv>

#include "common/check_config.h"
#include "common/log.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

using Micros = std::chrono::sys_time<std::chrono::microseconds>;
using google::protobuf::util::TimeUtil;

constexpr std::string_view kPageTokenTag = "results.v1:";  // a token of another list or format is refused
constexpr size_t kMaxFilterBytes = 256;  // region, probe_id: past it, refused before storage is asked
constexpr auto kDefaultWindow = std::chrono::hours(24);
constexpr auto kMinWindow = std::chrono::minutes(1);
constexpr auto kMaxWindow = std::chrono::days(31);

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

// A filter's text: bounded, UTF-8 and without NUL (PostgreSQL's text refuses both).
grpc::Status filter_text(const std::string& value, const char* field) {
  if (value.size() > kMaxFilterBytes) {
    return invalid(fmt::format("{}: {} bytes, more than the {} it may have", field, value.size(), kMaxFilterBytes));
  }
  if (!is_valid_utf8(value) || value.find('\0') != std::string::npos) {
    return invalid(fmt::format("{}: not UTF-8 text without NUL", field));
  }
  return grpc::Status::OK;
}

// A set Timestamp as microseconds, or INVALID_ARGUMENT naming `field`.
grpc::Status time_argument(const google::protobuf::Timestamp& ts, const char* field, std::optional<Micros>* out) {
  if (auto status = coordinator::time_argument(ts, field); !status.ok()) return status;
  *out = Micros(std::chrono::microseconds(TimeUtil::TimestampToMicroseconds(ts)));
  return grpc::Status::OK;
}

google::protobuf::Timestamp timestamp(Micros t) { return TimeUtil::MicrosecondsToTimestamp(t.time_since_epoch().count()); }

google::protobuf::Duration duration(std::chrono::microseconds us) {
  return TimeUtil::MicrosecondsToDuration(us.count());
}

v1::RegionSummary* fill(v1::RegionSummary* out, const storage::RegionTotals& totals) {
  out->set_region(totals.region);
  out->set_attempts(totals.attempts);
  out->set_successes(totals.successes);
  *out->mutable_latency_p50() = duration(totals.latency.p50);
  *out->mutable_latency_p90() = duration(totals.latency.p90);
  *out->mutable_latency_p95() = duration(totals.latency.p95);
  *out->mutable_latency_p99() = duration(totals.latency.p99);
  return out;
}

template <typename Int>
bool parse_int(std::string_view text, Int* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// The position is "start_us probe_key seq" of the last row shown.
std::string encode_result_page_token(const storage::ResultKey& key) {
  return encode_page_token(kPageTokenTag, fmt::format("{} {} {}", key.start_time.time_since_epoch().count(),
                                                      key.probe_key, key.sequence));
}

// What encode_result_page_token wrote, or nullopt.
std::optional<storage::ResultKey> parse_position(std::string_view text) {
  const auto first = text.find(' ');
  const auto second = first == std::string_view::npos ? first : text.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  int64_t start_us = 0;
  storage::ResultKey key;
  if (!parse_int(text.substr(0, first), &start_us) ||
      !parse_int(text.substr(first + 1, second - first - 1), &key.probe_key) ||
      !parse_int(text.substr(second + 1), &key.sequence)) {
    return std::nullopt;
  }
  key.start_time = Micros(std::chrono::microseconds(start_us));
  return key;
}

}  // namespace

ResultServiceImpl::ResultServiceImpl(storage::ResultQueries& results, ApiAuthorizer& auth, const Clock& clock,
                                     ResultServiceOptions options)
    : results_(results), auth_(auth), clock_(clock), options_(options) {}

grpc::Status ResultServiceImpl::find_check(const std::string& name, const char* field, storage::ResultCheck* check) {
  if (name.empty()) return invalid(fmt::format("{}: required (the check's name)", field));
  if (!valid_check_name(name)) {
    return invalid(fmt::format("{}: not a check name (1 to 63 of a-z, 0-9 and '-', not starting with '-')", field));
  }
  std::optional<storage::ResultCheck> found;
  try {
    found = results_.find_result_check(name);
  } catch (const storage::StorageError& e) {
    log::warn("cannot read checks", "error", e.what());
    return api_storage_status(e, "cannot read checks");
  }
  if (!found) return grpc::Status(grpc::StatusCode::NOT_FOUND, fmt::format("{}: no check named \"{}\"", field, name));
  *check = *found;
  return grpc::Status::OK;
}

grpc::Status ResultServiceImpl::ListResults(grpc::ServerContext* context, const v1::ListResultsRequest* request,
                                            v1::ListResultsResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;

  size_t size = 0;
  if (auto status = page_size(request->page_size(), options_.pages, &size); !status.ok()) return status;
  std::string position;
  if (auto status = page_position(kPageTokenTag, request->page_token(), &position); !status.ok()) return status;
  std::optional<storage::ResultKey> after;
  if (!position.empty()) {
    after = parse_position(position);
    // Only a forged token gets here: its tag is right, its position is not ours.
    if (!after) return invalid("page_token: not a position in this list");
  }
  storage::ResultFilter filter;
  if (auto status = filter_text(request->region(), "region"); !status.ok()) return status;
  if (auto status = filter_text(request->probe_id(), "probe_id"); !status.ok()) return status;
  filter.region = request->region();
  filter.probe = request->probe_id();
  if (!v1::FailureClass_IsValid(request->failure_class())) {
    return invalid(fmt::format("failure_class: {} is not a FailureClass", static_cast<int>(request->failure_class())));
  }
  filter.failure_class = request->failure_class();
  filter.failures_only = request->failures_only();
  if (request->has_start_time()) {
    if (auto status = time_argument(request->start_time(), "start_time", &filter.start_time); !status.ok()) {
      return status;
    }
  }
  if (request->has_end_time()) {
    if (auto status = time_argument(request->end_time(), "end_time", &filter.end_time); !status.ok()) return status;
  }
  if (filter.start_time && filter.end_time && *filter.end_time < *filter.start_time) {
    return invalid("end_time: before start_time");
  }
  storage::ResultCheck check;
  if (auto status = find_check(request->check(), "check", &check); !status.ok()) return status;
  filter.check_id = check.id;

  std::vector<storage::ListedResult> rows;
  try {
    // One more than the page: whether there is a next page.
    rows = results_.list_results(filter, after, size + 1);
  } catch (const storage::StorageError& e) {
    log::warn("cannot list results", "caller", caller.name, "error", e.what());
    return api_storage_status(e, "cannot list results");
  }
  const bool more = rows.size() > size;
  if (more) rows.resize(size);
  for (auto& row : rows) {
    auto* out = response->add_results();
    out->set_probe_id(std::move(row.stored.probe));
    out->set_region(std::move(row.stored.region));
    out->set_check(request->check());
    *out->mutable_result() = std::move(row.stored.result);
    // receive_time stays unset: the results table does not keep it.
  }
  if (more) response->set_next_page_token(encode_result_page_token(rows.back().key));
  return grpc::Status::OK;
}

grpc::Status ResultServiceImpl::GetCheckSummary(grpc::ServerContext* context,
                                                const v1::GetCheckSummaryRequest* request,
                                                v1::GetCheckSummaryResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;

  std::optional<Micros> end;
  if (request->has_end_time()) {
    if (auto status = time_argument(request->end_time(), "end_time", &end); !status.ok()) return status;
  } else {
    end = std::chrono::floor<std::chrono::microseconds>(clock_.now());
  }
  std::optional<Micros> start;
  if (request->has_start_time()) {
    if (request->has_window()) return invalid("window: given with start_time (give one or the other)");
    if (auto status = time_argument(request->start_time(), "start_time", &start); !status.ok()) return status;
  } else {
    std::chrono::microseconds window = kDefaultWindow;
    if (request->has_window()) {
      const auto& w = request->window();
      // Checked before converting: a huge value must not overflow.
      if (w.seconds() < 0 || w.seconds() > std::chrono::seconds(kMaxWindow).count() || w.nanos() < 0 ||
          w.nanos() > 999'999'999) {
        return invalid("window: out of range: 1 min to 31 days (default 24 h)");
      }
      window = std::chrono::microseconds(TimeUtil::DurationToMicroseconds(w));
      if (window < kMinWindow || window > kMaxWindow) {
        return invalid("window: out of range: 1 min to 31 days (default 24 h)");
      }
    }
    start = *end - window;
  }
  if (*end <= *start) return invalid("end_time: not after start_time");
  storage::ResultCheck check;
  if (auto status = find_check(request->check(), "check", &check); !status.ok()) return status;

  storage::ResultSummary data;
  try {
    data = results_.summarize_results(check, *start, *end);
  } catch (const storage::StorageError& e) {
    log::warn("cannot summarize results", "caller", caller.name, "check", request->check(), "error", e.what());
    return api_storage_status(e, "cannot summarize results");
  }
  auto* s = response->mutable_summary();
  s->set_check(request->check());
  *s->mutable_start_time() = timestamp(*start);
  *s->mutable_end_time() = timestamp(*end);
  s->set_attempts(data.attempts);
  s->set_successes(data.successes);
  const double reachability =
      data.attempts == 0 ? 0 : static_cast<double>(data.successes) / static_cast<double>(data.attempts);
  s->set_reachability(reachability);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  s->set_availability(reachability);  // the deprecated twin, for older clients
#pragma GCC diagnostic pop
  s->set_periods(data.periods);
  s->set_periods_up(data.periods_up);
  s->set_uptime(data.periods == 0 ? 0 : static_cast<double>(data.periods_up) / static_cast<double>(data.periods));
  *s->mutable_latency_p50() = duration(data.latency.p50);
  *s->mutable_latency_p90() = duration(data.latency.p90);
  *s->mutable_latency_p95() = duration(data.latency.p95);
  *s->mutable_latency_p99() = duration(data.latency.p99);
  for (const auto& region : data.by_region) fill(s->add_by_region(), region);
  for (const auto& [failure_class, count] : data.by_class) {
    auto* c = s->add_by_class();
    c->set_failure_class(failure_class);
    c->set_count(count);
  }
  for (const auto& e : data.edge_codes) {
    auto* c = s->add_edge_codes();
    c->set_region(e.region);
    c->set_colo(e.colo);
    c->set_edge_code(e.edge_code);
    c->set_count(e.count);
  }
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
