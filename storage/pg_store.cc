#include "storage/pg_store.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <array>
#include <set>
#include <map>
#include <optional>
#include <pqxx/pqxx>

#include "common/failure_class.h"
#include "common/incident_names.h"
#include "common/log.h"
#include "common/proto_time.h"
#include "common/token.h"
#include "storage/migrations.h"
#include "storage/pg_internal.h"

namespace vantage::storage {

namespace {

// Any key works as long as every replica uses the same one.
constexpr long long kMigrationLockKey = 0x76616e7461676531;  // "vantage1"

std::string bytea_hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::string serialized(const google::protobuf::Message& m) {
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytea_hex(bytes);
}

std::string check_to_json(const v1::Check& check) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto status = google::protobuf::util::MessageToJsonString(check, &json, options);
  if (!status.ok()) throw std::runtime_error("cannot encode check as JSON: " + status.ToString());
  return json;
}

v1::Check check_from_row(const pqxx::row& row) {
  v1::Check check;
  auto status = google::protobuf::util::JsonStringToMessage(row["spec"].c_str(), &check);
  if (!status.ok()) {
    throw StorageError(StorageError::Kind::kInternal,
                       fmt::format("check {}: stored spec is not a valid Check: {}",
                                   row["name"].c_str(), status.ToString()));
  }
  check.set_id(row["id"].as<int64_t>());
  check.set_version(row["version"].as<int64_t>());
  check.set_source(static_cast<v1::CheckSource>(row["source"].as<int>()));
  check.mutable_create_time()->set_seconds(row["create_epoch"].as<int64_t>());
  check.mutable_update_time()->set_seconds(row["update_epoch"].as<int64_t>());
  return check;
}

// The user-given part of a check: what a change of version is about.
v1::Check user_spec(v1::Check check) {
  check.clear_id();
  check.clear_version();
  check.clear_create_time();
  check.clear_update_time();
  return check;
}

constexpr const char* kSelectChecks =
    "SELECT id, name, version, source, spec::text AS spec, "
    "extract(epoch FROM create_time)::bigint AS create_epoch, "
    "extract(epoch FROM update_time)::bigint AS update_epoch FROM checks ";

}  // namespace

// --- Shared with pg_result_queries.cc and pg_incident_queries.cc ----------

[[noreturn]] void rethrow_as_storage_error(const char* what) {
  try {
    throw;
  } catch (const StorageError&) {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw StorageError(StorageError::Kind::kUnavailable,
                       fmt::format("{}: database unavailable: {}", what, log::redact(e.what())));
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    auto kind = StorageError::Kind::kInternal;
    // 08: connection exception; 57P: operator intervention (shutdown);
    // 53: insufficient resources.
    if (state.starts_with("08") || state.starts_with("57P") || state.starts_with("53")) {
      kind = StorageError::Kind::kUnavailable;
    } else if (state.starts_with("23")) {
      kind = StorageError::Kind::kConflict;
    }
    throw StorageError(kind, fmt::format("{}: {} (SQLSTATE {})", what, log::redact(e.what()), state));
  } catch (const pqxx::in_doubt_error& e) {
    throw StorageError(StorageError::Kind::kUnavailable,
                       fmt::format("{}: commit outcome unknown: {}", what, e.what()));
  } catch (const std::exception& e) {
    throw StorageError(StorageError::Kind::kInternal, fmt::format("{}: {}", what, log::redact(e.what())));
  }
}

std::string timestamptz_text(Micros t) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss hms(seconds - day);
  return fmt::format("{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}.{:06d}+00", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count(), (t - seconds).count());
}

std::string timestamptz_text(const google::protobuf::Timestamp& ts) {
  return timestamptz_text(Micros(std::chrono::seconds(ts.seconds()) + std::chrono::microseconds(ts.nanos() / 1000)));
}

// --- ConnectionPool ---------------------------------------------------------

ConnectionPool::ConnectionPool(std::string url, size_t size) : url_(std::move(url)), size_(size) {}
ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
    : pool_(pool), conn_(std::move(conn)) {}

ConnectionPool::Lease::~Lease() {
  if (!pool_) return;
  if (discard_ || !conn_ || !conn_->is_open()) conn_.reset();
  pool_->give_back(std::move(conn_));
}

ConnectionPool::Lease ConnectionPool::lease() {
  std::unique_ptr<pqxx::connection> conn;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return leased_ < size_; });
    ++leased_;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn) {
    try {
      conn = std::make_unique<pqxx::connection>(url_);
    } catch (const std::exception& e) {
      give_back(nullptr);
      throw StorageError(StorageError::Kind::kUnavailable,
                         fmt::format("cannot connect to PostgreSQL at {}: {}", log::redact(url_),
                                     log::redact(e.what())));
    }
  }
  return Lease(this, std::move(conn));
}

void ConnectionPool::give_back(std::unique_ptr<pqxx::connection> conn) {
  {
    std::lock_guard lock(mu_);
    --leased_;
    if (conn) idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

// --- PgStore ----------------------------------------------------------------

PgStore::PgStore(const std::string& url, size_t pool_size) : pool_(url, pool_size) {}

int PgStore::migrate() {
  return with_connection("applying migrations", [](pqxx::connection& c) {
    // Session-level lock: held across the per-migration transactions.
    pqxx::nontransaction(c).exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    int applied = 0;
    try {
      {
        pqxx::work tx(c);
        tx.exec0(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " apply_time timestamptz NOT NULL DEFAULT now())");
        tx.commit();
      }
      int current = 0;
      {
        pqxx::read_transaction tx(c);
        current = tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
      }
      for (const auto& m : migrations()) {
        if (m.version <= current) continue;
        pqxx::work tx(c);
        tx.exec(m.sql);
        tx.exec_params0("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
        tx.commit();
        log::info("migration applied", "version", m.version, "name", m.name);
        ++applied;
      }
      // The class names follow the proto enum, the one place they are defined.
      pqxx::work tx(c);
      const auto* descriptor = v1::FailureClass_descriptor();
      for (int i = 0; i < descriptor->value_count(); ++i) {
        auto c_value = static_cast<v1::FailureClass>(descriptor->value(i)->number());
        if (c_value == v1::FAILURE_CLASS_UNSPECIFIED) continue;
        tx.exec_params0(
            "INSERT INTO failure_classes (id, name) VALUES ($1, $2) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            static_cast<int>(c_value), failure_class_name(c_value));
      }
      tx.commit();
    } catch (...) {
      if (c.is_open()) pqxx::nontransaction(c).exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
      throw;
    }
    pqxx::nontransaction(c).exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    return applied;
  });
}

std::string PgStore::add_probe(const std::string& name, const std::string& region) {
  auto token = generate_token();
  with_connection("registering a probe", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params0(
        "INSERT INTO probes (name, token_sha256, region) VALUES ($1, $2, $3) "
        "ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256, "
        "region = excluded.region",
        name, token_sha256_hex(token), region);
    tx.commit();
    return 0;
  });
  return token;
}

// --- API tokens and the fleet ----------------------------------------------

namespace {

// Microseconds since the epoch, the way the API token queries select times.
constexpr const char* kSelectApiTokens =
    "SELECT id, name, role, (extract(epoch FROM create_time) * 1000000)::bigint AS create_us, "
    "(extract(epoch FROM last_used_time) * 1000000)::bigint AS last_used_us, "
    "(extract(epoch FROM revoke_time) * 1000000)::bigint AS revoke_us FROM api_tokens ";

std::chrono::system_clock::time_point from_micros(int64_t us) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(us)));
}

std::optional<std::chrono::system_clock::time_point> optional_time(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return from_micros(field.as<int64_t>());
}

ApiTokenRecord api_token_from_row(const pqxx::row& row) {
  ApiTokenRecord token;
  token.id = row["id"].as<int32_t>();
  token.name = row["name"].as<std::string>();
  token.role = row["role"].as<std::string>();
  token.create_time = from_micros(row["create_us"].as<int64_t>());
  token.last_used_time = optional_time(row["last_used_us"]);
  token.revoke_time = optional_time(row["revoke_us"]);
  return token;
}

}  // namespace

std::string PgStore::add_api_token(const std::string& name, const std::string& role) {
  auto token = generate_token();
  with_connection("adding an API token", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params0("INSERT INTO api_tokens (name, token_sha256, role) VALUES ($1, $2, $3)", name,
                    token_sha256_hex(token), role);
    tx.commit();
    return 0;
  });
  return token;
}

std::vector<ApiTokenRecord> PgStore::list_api_tokens() {
  return with_connection("listing API tokens", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    std::vector<ApiTokenRecord> out;
    for (const auto& row : tx.exec(std::string(kSelectApiTokens) + "ORDER BY name")) {
      out.push_back(api_token_from_row(row));
    }
    return out;
  });
}

bool PgStore::revoke_api_token(const std::string& name) {
  return with_connection("revoking an API token", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto rows = tx.exec_params("UPDATE api_tokens SET revoke_time = now() WHERE name = $1 AND revoke_time IS NULL",
                               name);
    tx.commit();
    return rows.affected_rows() == 1;
  });
}

std::optional<ApiTokenRecord> PgStore::find_api_token(std::string_view token_sha256_hex) {
  return with_connection("authenticating an API token", [&](pqxx::connection& c) -> std::optional<ApiTokenRecord> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(std::string(kSelectApiTokens) + "WHERE token_sha256 = $1", std::string(token_sha256_hex));
    if (rows.empty()) return std::nullopt;
    return api_token_from_row(rows[0]);
  });
}

void PgStore::record_api_token_use(int32_t id) {
  with_connection("recording an API token's use", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // The condition keeps replicas (and a cold cache) from writing more often.
    tx.exec_params0(
        "UPDATE api_tokens SET last_used_time = now() WHERE id = $1 "
        "AND (last_used_time IS NULL OR last_used_time < now() - interval '1 minute')",
        id);
    tx.commit();
    return 0;
  });
}

std::vector<ProbeListing> PgStore::list_probes(std::string_view after_name, std::string_view region, size_t limit) {
  return with_connection("listing probes", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT name, region, version, last_sequence, "
        "(extract(epoch FROM last_seen_time) * 1000000)::bigint AS last_seen_us FROM probes "
        "WHERE name > $1 AND ($2 = '' OR region = $2) ORDER BY name LIMIT $3",
        std::string(after_name), std::string(region), static_cast<int64_t>(limit));
    std::vector<ProbeListing> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      ProbeListing probe;
      probe.name = row["name"].as<std::string>();
      probe.region = row["region"].as<std::string>();
      probe.version = row["version"].as<std::string>();
      probe.last_sequence = row["last_sequence"].as<uint64_t>();
      probe.last_seen_time = optional_time(row["last_seen_us"]);
      out.push_back(std::move(probe));
    }
    return out;
  });
}

std::optional<ProbeRecord> PgStore::find_probe_by_token(std::string_view token_sha256_hex) {
  return with_connection("authenticating a probe", [&](pqxx::connection& c) -> std::optional<ProbeRecord> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT id, name, region, last_sequence FROM probes WHERE token_sha256 = $1",
        std::string(token_sha256_hex));
    if (rows.empty()) return std::nullopt;
    return ProbeRecord{rows[0][0].as<int32_t>(), rows[0][1].as<std::string>(),
                       rows[0][2].as<std::string>(), rows[0][3].as<uint64_t>()};
  });
}

ProbeRecord PgStore::record_hello(int32_t key, std::string_view version) {
  return with_connection("recording a probe's hello", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto row = tx.exec_params1(
        "UPDATE probes SET version = $2, last_seen_time = now() WHERE id = $1 "
        "RETURNING id, name, region, last_sequence",
        key, std::string(version));
    tx.commit();
    return ProbeRecord{row[0].as<int32_t>(), row[1].as<std::string>(), row[2].as<std::string>(),
                       row[3].as<uint64_t>()};
  });
}

std::vector<v1::Check> PgStore::sync_file_checks(const std::vector<v1::Check>& checks) {
  return with_connection("storing the checks file", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // One writer at a time: two replicas loading the same file agree.
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey + 1);
    std::map<std::string, v1::Check> stored;
    for (const auto& row : tx.exec(std::string(kSelectChecks) + "FOR UPDATE")) {
      auto check = check_from_row(row);
      stored.emplace(check.name(), std::move(check));
    }
    std::set<std::string> in_file;
    for (const auto& check : checks) {
      in_file.insert(check.name());
      auto it = stored.find(check.name());
      const auto spec = check_to_json(user_spec(check));
      if (it == stored.end()) {
        tx.exec_params0("INSERT INTO checks (name, source, spec) VALUES ($1, $2, $3::jsonb)",
                        check.name(), static_cast<int>(v1::CHECK_SOURCE_FILE), spec);
      } else if (it->second.source() != v1::CHECK_SOURCE_FILE) {
        throw StorageError(StorageError::Kind::kConflict,
                           fmt::format("check \"{}\" in the checks file already exists and is managed "
                                       "through the API; rename one of them", check.name()));
      } else if (!google::protobuf::util::MessageDifferencer::Equals(user_spec(it->second),
                                                                      user_spec(check))) {
        tx.exec_params0(
            "UPDATE checks SET spec = $2::jsonb, version = version + 1, update_time = now() "
            "WHERE name = $1",
            check.name(), spec);
      }
    }
    for (const auto& [name, check] : stored) {
      if (check.source() == v1::CHECK_SOURCE_FILE && !in_file.contains(name)) {
        tx.exec_params0("DELETE FROM checks WHERE name = $1", name);
      }
    }
    std::vector<v1::Check> out;
    for (const auto& row : tx.exec(std::string(kSelectChecks) + "ORDER BY name")) {
      out.push_back(check_from_row(row));
    }
    tx.commit();
    return out;
  });
}

std::vector<v1::Check> PgStore::list_checks() {
  return with_connection("listing checks", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    std::vector<v1::Check> out;
    for (const auto& row : tx.exec(std::string(kSelectChecks) + "ORDER BY name")) {
      out.push_back(check_from_row(row));
    }
    return out;
  });
}

namespace {
// The stored check named `name`, locked for the rest of `tx`; the outcome
// that stops an API write to it, if any.
std::optional<ApiCheckWrite> refuse_api_write(pqxx::work& tx, const std::string& name, int64_t expected_version,
                                              v1::Check* stored) {
  auto rows = tx.exec_params(std::string(kSelectChecks) + "WHERE name = $1 FOR UPDATE", name);
  if (rows.empty()) return ApiCheckWrite{ApiCheckWrite::Outcome::kNotFound, {}, 0};
  *stored = check_from_row(rows[0]);
  if (stored->source() == v1::CHECK_SOURCE_FILE) return ApiCheckWrite{ApiCheckWrite::Outcome::kFileOwned, *stored, 0};
  if (expected_version != 0 && stored->version() != expected_version) {
    return ApiCheckWrite{ApiCheckWrite::Outcome::kVersionMismatch, {}, stored->version()};
  }
  return std::nullopt;
}
}  // namespace

ApiCheckWrite PgStore::create_api_check(const v1::Check& check) {
  return with_connection("creating a check", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        "INSERT INTO checks (name, source, spec) VALUES ($1, $2, $3::jsonb) ON CONFLICT (name) DO NOTHING "
        "RETURNING id",
        check.name(), static_cast<int>(v1::CHECK_SOURCE_API), check_to_json(user_spec(check)));
    if (rows.empty()) return ApiCheckWrite{ApiCheckWrite::Outcome::kNameTaken, {}, 0};
    auto created = tx.exec_params1(std::string(kSelectChecks) + "WHERE id = $1", rows[0][0].as<int64_t>());
    ApiCheckWrite out{ApiCheckWrite::Outcome::kOk, check_from_row(created), 0};
    tx.commit();
    return out;
  });
}

ApiCheckWrite PgStore::update_api_check(const v1::Check& check, int64_t expected_version) {
  return with_connection("updating a check", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    v1::Check stored;
    if (auto refused = refuse_api_write(tx, check.name(), expected_version, &stored)) return *refused;
    if (!google::protobuf::util::MessageDifferencer::Equals(user_spec(stored), user_spec(check))) {
      tx.exec_params0(
          "UPDATE checks SET spec = $2::jsonb, version = version + 1, update_time = now() WHERE name = $1",
          check.name(), check_to_json(user_spec(check)));
    }
    ApiCheckWrite out{ApiCheckWrite::Outcome::kOk,
                      check_from_row(tx.exec_params1(std::string(kSelectChecks) + "WHERE name = $1", check.name())),
                      0};
    tx.commit();
    return out;
  });
}

ApiCheckWrite PgStore::delete_api_check(const std::string& name, int64_t expected_version) {
  return with_connection("deleting a check", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    v1::Check stored;
    if (auto refused = refuse_api_write(tx, name, expected_version, &stored)) return *refused;
    tx.exec_params0("DELETE FROM checks WHERE name = $1", name);
    tx.commit();
    return ApiCheckWrite{};
  });
}

namespace {

using Batches = std::vector<const ResultBatch*>;

// One result as the text fields of a COPY row; a null pointer is SQL NULL
// (stream_to escapes).
class ResultRow {
 public:
  static constexpr size_t kColumns = 13;
  static std::vector<std::string> columns() {
    return {"probe_id", "seq",     "check_id", "start_time", "region",   "class", "origin_class",
            "status",   "edge_code", "colo",   "ttfb_us",    "total_us", "detail"};
  }

  const std::array<const char*, kColumns>& fill(const ProbeRecord& probe, const v1::CheckResult& r) {
    const auto& edge = r.edge();
    set(0, std::to_string(probe.key));
    set(1, std::to_string(r.sequence()));
    set(2, std::to_string(r.check_id()));
    set(3, timestamptz_text(r.start_time()));
    set(4, probe.region);
    set(5, std::to_string(static_cast<int>(edge.failure_class())));
    if (r.has_origin()) {
      set(6, std::to_string(static_cast<int>(r.origin().failure_class())));
    } else {
      fields_[6] = nullptr;
    }
    set_nonzero(7, edge.response().status());
    set_nonzero(8, edge.edge().edge_code());
    if (edge.edge().colo().empty()) {
      fields_[9] = nullptr;
    } else {
      set(9, edge.edge().colo());
    }
    set_nonzero(10, edge.timings().first_byte_us());
    set_nonzero(11, edge.timings().total_us());
    // The whole result is kept only for failures (the evidence of an incident).
    const bool failed = edge.failure_class() != v1::FAILURE_CLASS_OK ||
                        (r.has_origin() && r.origin().failure_class() != v1::FAILURE_CLASS_OK);
    if (failed) {
      detail_.clear();
      r.SerializeToString(&detail_);
      set(12, bytea_hex(detail_));
    } else {
      fields_[12] = nullptr;
    }
    return fields_;
  }

 private:
  void set(size_t i, std::string value) {
    text_[i] = std::move(value);
    fields_[i] = text_[i].c_str();
  }
  void set_nonzero(size_t i, uint64_t value) {
    if (value == 0) {
      fields_[i] = nullptr;
    } else {
      set(i, std::to_string(std::min<uint64_t>(value, INT32_MAX)));
    }
  }
  std::array<std::string, kColumns> text_;
  std::array<const char*, kColumns> fields_{};
  std::string detail_;
};

// Writes every result of `batches` as COPY rows into `table`.
void copy_rows(pqxx::transaction_base& tx, const char* table, const Batches& batches) {
  pqxx::stream_to copy(tx, table, ResultRow::columns());
  ResultRow row;
  for (const auto* batch : batches) {
    for (const auto& r : batch->results) copy << row.fill(batch->probe, r);
  }
  copy.complete();
}

// The rows stored through a staging table, only those not stored before:
// (probe, seq) -> 1.
using StoredRows = std::map<std::pair<int32_t, uint64_t>, size_t>;
StoredRows copy_new_rows_through_staging(pqxx::work& tx, const Batches& batches) {
  tx.exec0(
      "CREATE TEMP TABLE IF NOT EXISTS results_incoming "
      "(LIKE results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
  copy_rows(tx, "results_incoming", batches);
  StoredRows inserted;
  for (const auto& row : tx.exec("INSERT INTO results SELECT * FROM results_incoming "
                                 "ON CONFLICT DO NOTHING RETURNING probe_id, seq")) {
    ++inserted[{row[0].as<int32_t>(), row[1].as<uint64_t>()}];
  }
  return inserted;
}

// Each batch's stored and duplicate results (all stored when `staged` is
// empty: the direct COPY took them all).
void count_stored(const Batches& batches, const std::optional<StoredRows>& staged,
                  std::vector<WriteOutcome>& outcomes) {
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto& b = *batches[i];
    if (b.acknowledged_through() == 0 || b.results.empty()) continue;
    if (!staged) {
      outcomes[i].inserted = b.results.size();
    } else {
      auto lo = staged->lower_bound({b.probe.key, b.results.front().sequence()});
      auto hi = staged->upper_bound({b.probe.key, b.results.back().sequence()});
      for (auto it = lo; it != hi; ++it) outcomes[i].inserted += it->second;
    }
    outcomes[i].duplicates = b.results.size() - outcomes[i].inserted;
  }
}

// Moves each probe's stored sequence to the highest its batches acknowledge;
// the sequence stored now, per probe key.
std::map<int32_t, uint64_t> advance_probe_sequences(pqxx::work& tx, const Batches& batches) {
  std::map<int32_t, uint64_t> highest;
  for (const auto* b : batches) {
    if (b->acknowledged_through() == 0) continue;
    auto& h = highest[b->probe.key];
    h = std::max(h, b->acknowledged_through());
  }
  std::map<int32_t, uint64_t> acked;
  for (const auto& [key, seq] : highest) {
    acked[key] = tx.exec_params1(
                       "UPDATE probes SET last_sequence = greatest(last_sequence, $2), "
                       "last_seen_time = now() WHERE id = $1 RETURNING last_sequence",
                       key, seq)[0]
                     .as<uint64_t>();
  }
  return acked;
}

}  // namespace

std::vector<WriteOutcome> PgStore::write_results(const std::vector<const ResultBatch*>& batches) {
  std::vector<WriteOutcome> outcomes(batches.size());
  size_t total = 0;
  uint64_t acknowledged = 0;
  for (const auto* b : batches) {
    total += b->results.size();
    acknowledged = std::max(acknowledged, b->acknowledged_through());
  }
  if (acknowledged == 0) return outcomes;
  return with_connection("storing results", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // Fast path: COPY straight into results. A replayed result makes the
    // unique index refuse the COPY; then (rare) the rows go through a
    // staging table and only the new ones are moved. (Only refused results:
    // nothing to copy, the probe's sequence still moves past them.)
    bool direct = true;
    if (total > 0) {
      try {
        pqxx::subtransaction attempt(tx, "direct_copy");
        copy_rows(attempt, "results", batches);
        attempt.commit();
      } catch (const pqxx::unique_violation&) {
        direct = false;
      }
    }
    std::optional<StoredRows> staged;
    if (!direct) staged = copy_new_rows_through_staging(tx, batches);
    count_stored(batches, staged, outcomes);
    auto acked = advance_probe_sequences(tx, batches);
    tx.commit();
    for (size_t i = 0; i < batches.size(); ++i) outcomes[i].acked_sequence = acked[batches[i]->probe.key];
    return outcomes;
  });
}

std::pair<int, int> PgStore::maintain_partitions(std::chrono::sys_days today, int days_ahead,
                                                 int retention_days) {
  return with_connection("maintaining result partitions", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey + 2);
    auto day_text = [](std::chrono::sys_days d) {
      const std::chrono::year_month_day ymd(d);
      return fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(ymd.year()),
                         static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    };
    int created = 0;
    for (int i = 0; i <= days_ahead; ++i) {
      if (tx.exec_params1("SELECT vantage_ensure_results_partition($1::date)",
                          day_text(today + std::chrono::days(i)))[0]
              .as<bool>()) {
        ++created;
      }
    }
    const int dropped = tx.exec_params1("SELECT vantage_drop_results_before($1::date)",
                                        day_text(today - std::chrono::days(retention_days)))[0]
                            .as<int>();
    tx.commit();
    return std::pair{created, dropped};
  });
}

std::vector<v1::IncidentEvent> PgStore::save_incidents(const std::vector<v1::Incident>& changed,
                                                       const std::vector<v1::IncidentEvent>& events) {
  if (changed.empty() && events.empty()) return {};
  return with_connection("storing incidents", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (v1::Incident incident : changed) {
      incident.clear_timeline();
      // Kind, state and scopes by name (migration 0005); the widest scope is
      // never narrower than the current one.
      incident.set_widest_scope(std::max(incident.widest_scope(), incident.scope()));
      tx.exec_params0(
          "INSERT INTO incidents (id, check_id, kind, state, scope, widest_scope, first_failure_time, resolve_time, "
          "detail) VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz, $9::bytea) "
          "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state, "
          "scope = excluded.scope, widest_scope = excluded.widest_scope, resolve_time = excluded.resolve_time, "
          "detail = excluded.detail, update_time = now()",
          incident.id(), incident.check_id(), incident_kind_name(incident.kind()),
          incident_state_name(incident.state()), scope_name(incident.scope()), scope_name(incident.widest_scope()),
          timestamptz_text(incident.first_failure_time()),
          incident.has_resolve_time() ? std::optional(timestamptz_text(incident.resolve_time())) : std::nullopt,
          serialized(incident));
    }
    std::vector<v1::IncidentEvent> fresh;
    for (const auto& event : events) {
      auto rows = tx.exec_params(
          "INSERT INTO incident_events (incident_id, type, time, scope, detail) "
          "VALUES ($1, $2, $3::timestamptz, $4, $5::bytea) ON CONFLICT DO NOTHING RETURNING id",
          event.incident_id(), incident_event_type_name(event.type()), timestamptz_text(event.time()),
          scope_name(event.scope()), serialized(event));
      if (rows.empty()) continue;
      auto stored = event;
      stored.set_event_id(rows[0][0].as<int64_t>());
      fresh.push_back(std::move(stored));
    }
    tx.commit();
    return fresh;
  });
}

std::vector<v1::Incident> PgStore::load_incidents(std::chrono::system_clock::time_point resolved_since) {
  return with_connection("loading incidents", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    const auto since = timestamptz_text(to_timestamp(resolved_since));
    constexpr const char* kRecent = "coalesce(i.resolve_time, 'infinity'::timestamptz) >= $1::timestamptz";
    std::vector<v1::Incident> out;
    std::map<std::string, size_t> index;
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT i.id, i.detail FROM incidents i WHERE {} ORDER BY i.first_failure_time, i.id",
                         kRecent),
             since)) {
      index[row[0].as<std::string>()] = out.size();
      out.push_back(parsed<v1::Incident>(row[1], "incident"));
    }
    // Their timelines: the correlator counts openings and reopenings in them.
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT e.incident_id, e.id, e.detail FROM incident_events e "
                         "JOIN incidents i ON i.id = e.incident_id WHERE {} ORDER BY e.time, e.id",
                         kRecent),
             since)) {
      auto it = index.find(row[0].as<std::string>());
      if (it == index.end()) continue;  // opened between the two queries
      auto* event = out[it->second].add_timeline();
      *event = parsed<v1::IncidentEvent>(row[2], "incident event");
      event->set_event_id(row[1].as<int64_t>());
    }
    return out;
  });
}

std::optional<v1::Incident> PgStore::get_incident(const std::string& id) {
  return with_connection("reading an incident", [&](pqxx::connection& c) -> std::optional<v1::Incident> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params("SELECT detail FROM incidents WHERE id = $1", id);
    if (rows.empty()) return std::nullopt;
    auto incident = parsed<v1::Incident>(rows[0][0], "incident");
    for (const auto& row : tx.exec_params(
             "SELECT id, detail FROM incident_events WHERE incident_id = $1 ORDER BY time, id", id)) {
      auto* event = incident.add_timeline();
      *event = parsed<v1::IncidentEvent>(row[1], "incident event");
      event->set_event_id(row[0].as<int64_t>());
    }
    return incident;
  });
}

void PgStore::for_each_result_since(std::chrono::system_clock::time_point since,
                                    const std::function<void(StoredResult&&)>& fn) {
  with_connection("reading recent results", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // Failures carry their whole CheckResult; successes are rebuilt from the
    // columns, which hold everything the correlator reads from a success.
    tx.exec_params0(
        "DECLARE recent_results NO SCROLL CURSOR FOR "
        "SELECT p.name, r.region, r.seq, r.check_id, extract(epoch FROM r.start_time)::float8, "
        "r.class, r.origin_class, r.status, r.edge_code, r.colo, r.detail "
        "FROM results r JOIN probes p ON p.id = r.probe_id "
        "WHERE r.start_time >= $1::timestamptz ORDER BY r.start_time, r.probe_id, r.seq",
        timestamptz_text(to_timestamp(since)));
    for (;;) {
      auto rows = tx.exec("FETCH 10000 FROM recent_results");
      if (rows.empty()) break;
      for (const auto& row : rows) {
        StoredResult stored{row[0].as<std::string>(), row[1].as<std::string>(), {}};
        auto& r = stored.result;
        if (!row[10].is_null()) {
          r = parsed<v1::CheckResult>(row[10], "result");
        } else {
          r.set_sequence(row[2].as<uint64_t>());
          r.set_check_id(row[3].as<int64_t>());
          *r.mutable_start_time() = to_timestamp(std::chrono::system_clock::time_point(
              std::chrono::round<std::chrono::microseconds>(std::chrono::duration<double>(row[4].as<double>()))));
          auto* edge = r.mutable_edge();
          edge->set_failure_class(static_cast<v1::FailureClass>(row[5].as<int>()));
          if (!row[7].is_null()) edge->mutable_response()->set_status(row[7].as<uint32_t>());
          if (!row[8].is_null()) edge->mutable_edge()->set_edge_code(row[8].as<uint32_t>());
          if (!row[9].is_null()) edge->mutable_edge()->set_colo(row[9].as<std::string>());
          if (!row[6].is_null()) {
            r.mutable_origin()->set_failure_class(static_cast<v1::FailureClass>(row[6].as<int>()));
          }
        }
        fn(std::move(stored));
      }
    }
    tx.commit();
    return 0;
  });
}

}  // namespace vantage::storage
