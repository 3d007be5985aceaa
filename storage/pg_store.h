#pragma once
// PostgreSQL implementation of the storage interfaces (libpqxx 6).

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "storage/store.h"


namespace vantage::storage {

// A small pool: pqxx connections are not thread-safe, and each gRPC stream
// handler borrows one per batch. A broken connection is dropped and replaced
// on the next lease.
class ConnectionPool {
 public:
  ConnectionPool(std::string url, size_t size);
  ~ConnectionPool();

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn);
    Lease(Lease&&) noexcept = default;
    ~Lease();
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_.get(); }
    // The connection failed: do not return it to the pool.
    void discard() { discard_ = true; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    bool discard_ = false;
  };
  // Blocks while every connection is leased. Throws StorageError(kUnavailable).
  Lease lease();

 private:
  void give_back(std::unique_ptr<pqxx::connection> conn);
  std::string url_;
  size_t size_;
  size_t leased_ = 0;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::mutex mu_;
  std::condition_variable cv_;
};

class PgStore final : public ProbeRegistry,
                      public CheckRepository,
                      public ApiCheckStore,
                      public ResultSink,
                      public IncidentStore,
                      public ResultHistory,
                      public ApiTokenStore,
                      public ProbeDirectory,
                      public ResultQueries,
                      public IncidentQueries {
 public:
  // Does not connect yet: call migrate() (or any method) to find out.
  PgStore(const std::string& url, size_t pool_size = 4);

  // Applies pending migrations under an advisory lock, so replicas starting
  // together do not race. Idempotent. Returns how many were applied.
  int migrate();

  // Registers a probe (or gives an existing one a new token) and returns the
  // token, which is not stored anywhere: only its hash is.
  std::string add_probe(const std::string& name, const std::string& region);

  // API tokens (vantage-coordinator add-api-token, list-api-tokens,
  // revoke-api-token). add_api_token returns the token, stored nowhere: only
  // its hash is. A name already taken (revoked tokens included) throws
  // StorageError(kConflict). The name and role are the caller's to validate.
  std::string add_api_token(const std::string& name, const std::string& role);
  std::vector<ApiTokenRecord> list_api_tokens();
  // False when no unrevoked token has this name.
  bool revoke_api_token(const std::string& name);
  std::optional<ApiTokenRecord> find_api_token(std::string_view token_sha256_hex) override;
  void record_api_token_use(int32_t id) override;
  std::vector<ProbeListing> list_probes(std::string_view after_name, std::string_view region,
                                        size_t limit) override;

  std::optional<ProbeRecord> find_probe_by_token(std::string_view token_sha256_hex) override;
  ProbeRecord record_hello(int32_t key, std::string_view version) override;
  std::vector<v1::Check> sync_file_checks(const std::vector<v1::Check>& checks) override;
  std::vector<v1::Check> list_checks() override;
  ApiCheckWrite create_api_check(const v1::Check& check) override;
  ApiCheckWrite update_api_check(const v1::Check& check, int64_t expected_version) override;
  ApiCheckWrite delete_api_check(const std::string& name, int64_t expected_version) override;
  std::vector<WriteOutcome> write_results(const std::vector<const ResultBatch*>& batches) override;
  // One batch alone (tools and tests).
  WriteOutcome write_results(const ResultBatch& batch) { return write_results(std::vector{&batch}).front(); }

  std::vector<v1::IncidentEvent> save_incidents(const std::vector<v1::Incident>& changed,
                                                const std::vector<v1::IncidentEvent>& events) override;
  std::vector<v1::Incident> load_incidents(std::chrono::system_clock::time_point resolved_since) override;
  std::optional<v1::Incident> get_incident(const std::string& id) override;
  void for_each_result_since(std::chrono::system_clock::time_point since,
                             const std::function<void(StoredResult&&)>& fn) override;
  // IncidentQueries: storage/pg_incident_queries.cc.
  std::vector<ListedIncident> list_incidents(const IncidentFilter& filter, const std::optional<IncidentKey>& after,
                                             size_t limit) override;
  std::vector<StoredIncidentEvent> incident_events_after(int64_t after_event_id,
                                                         std::optional<std::chrono::system_clock::time_point> since,
                                                         std::string_view check, size_t limit) override;
  std::vector<v1::StoredResult> incident_evidence(const v1::Incident& incident,
                                                  std::chrono::system_clock::time_point now, size_t limit) override;

  // Creates the day partitions of results from `today` to `days_ahead` days
  // later and drops those older than `retention_days`. Replicas may run it at
  // the same time. Returns {created, dropped}.
  std::pair<int, int> maintain_partitions(std::chrono::sys_days today, int days_ahead, int retention_days);

  // ResultQueries: in pg_result_queries.cc.
  std::optional<ResultCheck> find_result_check(std::string_view name) override;
  std::vector<ListedResult> list_results(const ResultFilter& filter, const std::optional<ResultKey>& after,
                                         size_t limit) override;
  ResultSummary summarize_results(const ResultCheck& check, std::chrono::sys_time<std::chrono::microseconds> start,
                                  std::chrono::sys_time<std::chrono::microseconds> end) override;

 private:
  // Defined in storage/pg_internal.h, shared by the files implementing PgStore.
  template <typename Fn>
  auto with_connection(const char* what, Fn&& fn);
  ConnectionPool pool_;
};

}  // namespace vantage::storage
