// ResultQueries on PostgreSQL: the public API's list of results and its
// per-check summaries, computed by the database (migration 0006 adds the
// index they read). Every start_time bound is a timestamptz parameter, so the
// planner prunes the day partitions outside the window.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <tuple>
#include <pqxx/pqxx>

#include "common/proto_time.h"
#include "storage/pg_internal.h"

namespace vantage::storage {

namespace {

std::string lower_bound_text(const std::optional<Micros>& t) { return t ? timestamptz_text(*t) : "-infinity"; }
std::string upper_bound_text(const std::optional<Micros>& t) { return t ? timestamptz_text(*t) : "infinity"; }

// "{50,90,95,99}" (percentile_disc over an array of fractions); NULL or
// unparsable: zeros.
LatencyPercentiles percentiles(const pqxx::field& field) {
  LatencyPercentiles out;
  if (field.is_null()) return out;
  std::string_view text = field.c_str();
  std::chrono::microseconds* slots[] = {&out.p50, &out.p90, &out.p95, &out.p99};
  size_t i = 0;
  const char* at = text.data();
  const char* end = text.data() + text.size();
  while (at < end && i < std::size(slots)) {
    if (*at < '0' || *at > '9') {
      ++at;
      continue;
    }
    int64_t value = 0;
    auto [next, ec] = std::from_chars(at, end, value);
    if (ec != std::errc()) break;
    *slots[i++] = std::chrono::microseconds(value);
    at = next;
  }
  return out;
}

}  // namespace

std::optional<ResultCheck> PgStore::find_result_check(std::string_view name) {
  std::optional<ResultCheck> found;
  with_connection("finding a check", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    // The interval as proto JSON ("60s", "0.500s"), in microseconds.
    auto rows = tx.exec_params(
        "SELECT id, coalesce(round(rtrim(spec->>'interval', 's')::numeric * 1000000), 0)::bigint "
        "FROM checks WHERE name = $1",
        std::string(name));
    if (rows.empty()) return;
    found = ResultCheck{rows[0][0].as<int64_t>(), std::chrono::microseconds(rows[0][1].as<int64_t>())};
  });
  return found;
}

std::vector<ListedResult> PgStore::list_results(const ResultFilter& filter, const std::optional<ResultKey>& after,
                                                size_t limit) {
  std::vector<ListedResult> out;
  with_connection("listing results", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    // Unset filters compare with '' / 0: the planner folds them away (an
    // unnamed statement is planned with its parameters' values).
    auto rows = tx.exec_params(
        "SELECT p.name, r.region, r.probe_id, r.seq, r.check_id, "
        "(extract(epoch FROM r.start_time) * 1000000)::bigint, r.class, r.origin_class, r.status, "
        "r.edge_code, r.colo, r.ttfb_us, r.total_us, r.detail "
        "FROM results r JOIN probes p ON p.id = r.probe_id "
        "WHERE r.check_id = $1 AND r.start_time >= $2::timestamptz AND r.start_time < $3::timestamptz "
        "AND ($4::text = '' OR r.region = $4::text) "
        "AND ($5::text = '' OR p.name = $5::text) "
        "AND ($6::smallint = 0 OR r.class = $6::smallint) "
        "AND (NOT $7::boolean OR r.class <> 1 OR coalesce(r.origin_class, 1) <> 1) "
        "AND (r.start_time, r.probe_id, r.seq) < ($8::timestamptz, $9::integer, $10::bigint) "
        "ORDER BY r.start_time DESC, r.probe_id DESC, r.seq DESC LIMIT $11",
        filter.check_id, lower_bound_text(filter.start_time), upper_bound_text(filter.end_time), filter.region,
        filter.probe, static_cast<int>(filter.failure_class), filter.failures_only,
        after ? timestamptz_text(after->start_time) : std::string("infinity"), after ? after->probe_key : 0,
        after ? after->sequence : 0, static_cast<int64_t>(limit));
    out.reserve(rows.size());
    for (const auto& row : rows) {
      ListedResult listed;
      listed.stored.probe = row[0].as<std::string>();
      listed.stored.region = row[1].as<std::string>();
      listed.key = ResultKey{Micros(std::chrono::microseconds(row[5].as<int64_t>())), row[2].as<int32_t>(),
                             row[3].as<int64_t>()};
      auto& r = listed.stored.result;
      if (!row[13].is_null()) {
        // A failure: its whole evidence, as the probe sent it.
        const pqxx::binarystring bytes(row[13]);
        if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          throw StorageError(StorageError::Kind::kInternal, "a stored result does not parse");
        }
      } else {
        // A success: rebuilt from the columns.
        r.set_sequence(row[3].as<uint64_t>());
        r.set_check_id(row[4].as<int64_t>());
        *r.mutable_start_time() = to_timestamp(std::chrono::system_clock::time_point(listed.key.start_time));
        auto* edge = r.mutable_edge();
        edge->set_failure_class(static_cast<v1::FailureClass>(row[6].as<int>()));
        if (!row[8].is_null()) edge->mutable_response()->set_status(row[8].as<uint32_t>());
        if (!row[9].is_null()) edge->mutable_edge()->set_edge_code(row[9].as<uint32_t>());
        if (!row[10].is_null()) edge->mutable_edge()->set_colo(row[10].as<std::string>());
        if (!row[11].is_null()) edge->mutable_timings()->set_first_byte_us(row[11].as<uint64_t>());
        if (!row[12].is_null()) edge->mutable_timings()->set_total_us(row[12].as<uint64_t>());
        if (!row[7].is_null()) r.mutable_origin()->set_failure_class(static_cast<v1::FailureClass>(row[7].as<int>()));
      }
      out.push_back(std::move(listed));
    }
  });
  return out;
}

ResultSummary PgStore::summarize_results(const ResultCheck& check, Micros start, Micros end) {
  // Periods of the check's interval counted from the epoch.
  const auto period = fmt::format("{} microseconds", std::max<int64_t>(check.interval.count(), 1'000'000));
  std::map<std::string, RegionTotals> regions;
  std::map<v1::FailureClass, uint64_t> classes;
  std::map<std::tuple<std::string, std::string, uint32_t>, uint64_t> edge_codes;
  ResultSummary summary;
  with_connection("summarizing results", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    // The percentiles sort every latency of the window in memory, not on disk.
    tx.exec0("SET LOCAL work_mem = '64MB'");
    // One scan of the window (the index alone: its INCLUDE columns), then
    // three passes over what it read, rows tagged by kind:
    //   n: attempts by region, class, edge code and colo (few groups: the
    //      52x are picked out here)
    //   p: latency of the successes (percentile_disc: an observed latency),
    //      per region and overall (region NULL)
    //   u: periods with an attempt, and those up (a success in any region)
    const auto rows = tx.exec_params(
        "WITH w AS MATERIALIZED ("
        "  SELECT region, class, total_us, edge_code, colo, start_time FROM results "
        "  WHERE check_id = $1 AND start_time >= $2::timestamptz AND start_time < $3::timestamptz) "
        "SELECT 'n' AS kind, region, class::integer AS class, edge_code::integer AS code, colo, "
        "  count(*) AS n, NULL::bigint AS up, NULL::text AS latency "
        "FROM w GROUP BY region, class, edge_code, colo "
        "UNION ALL "
        "SELECT 'p', region COLLATE \"C\", NULL, NULL, NULL, NULL, NULL, "
        "  (percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY total_us))::text "
        "FROM w WHERE class = 1 AND total_us IS NOT NULL GROUP BY GROUPING SETS ((), (region COLLATE \"C\")) "
        "UNION ALL "
        "SELECT 'u', NULL, NULL, NULL, NULL, count(*), count(*) FILTER (WHERE up), NULL FROM ("
        "  SELECT bool_or(class = 1) AS up FROM w "
        "  GROUP BY date_bin($4::interval, start_time, 'epoch'::timestamptz)) p",
        check.id, timestamptz_text(start), timestamptz_text(end), period);
    for (const auto& row : rows) {
      const char kind = row[0].c_str()[0];
      if (kind == 'n') {
        const auto region = row[1].as<std::string>();
        const auto failure_class = static_cast<v1::FailureClass>(row[2].as<int>());
        const auto n = row[5].as<uint64_t>();
        auto& totals = regions[region];
        totals.region = region;
        totals.attempts += n;
        summary.attempts += n;
        if (failure_class == v1::FAILURE_CLASS_OK) {
          totals.successes += n;
          summary.successes += n;
        }
        classes[failure_class] += n;
        const auto code = row[3].is_null() ? 0 : row[3].as<uint32_t>();
        if (code >= 520 && code <= 530) {
          edge_codes[{region, row[4].is_null() ? std::string() : row[4].as<std::string>(), code}] += n;
        }
      } else if (kind == 'p' && row[1].is_null()) {
        summary.latency = percentiles(row[7]);
      } else if (kind == 'p') {
        auto& totals = regions[row[1].as<std::string>()];
        totals.region = row[1].as<std::string>();
        totals.latency = percentiles(row[7]);
      } else if (kind == 'u') {
        summary.periods = row[5].as<uint64_t>();
        summary.periods_up = row[6].as<uint64_t>();
      }
    }
    tx.commit();
  });
  for (auto& [name, totals] : regions) summary.by_region.push_back(std::move(totals));
  summary.by_class.assign(classes.begin(), classes.end());
  for (const auto& [key, count] : edge_codes) {
    summary.edge_codes.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), count});
  }
  return summary;
}

}  // namespace vantage::storage
