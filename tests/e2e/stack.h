#pragma once
// The whole stack as real processes for end-to-end tests: the lab origin, a
// coordinator, and probes us-1, eu-1 and ap-1 (each with a disk spool), on a
// fresh database of the test PostgreSQL; plus the exactly-once verdict.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace vantage::testing {

// What varies between scenarios; the defaults give the plain stack.
struct StackOptions {
  std::vector<std::string> lab_args;  // extra vantage-lab flags (e.g. a fake edge)
  // The checks file, from the lab's start-up log (its ports). Default: one
  // check "home" of the lab origin every second.
  std::function<std::string(const std::string& lab_log)> checks;
  // Extra flags of probe `i`, from the lab's start-up log.
  std::function<std::vector<std::string>(size_t i, const std::string& lab_log)> probe_args;
  // Extra flags of the coordinator's `serve`.
  std::vector<std::string> coordinator_args;
};

class Stack {
 public:
  struct Probe {
    std::string id;
    std::string region;
    std::string token;
    std::filesystem::path spool;
    std::unique_ptr<Process> process;
  };

  explicit Stack(StackOptions options = {});
  ~Stack();
  Process& lab() { return *lab_; }
  const std::string& database() const { return db_; }

  // Starts the coordinator on `listen` (its ports are read from its log).
  void start_coordinator(const std::string& listen = "127.0.0.1:0", const std::string& metrics = "127.0.0.1:0");
  Process& coordinator() { return *coordinator_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

  // Starts probe `i`, connecting to `address` (default: the coordinator).
  void start_probe(size_t i, const std::string& address = "");
  void start_probes();
  // Sends `sig` and waits for the exit; returns the exit code.
  int stop_probe(size_t i, int sig);
  Probe& probe(size_t i) { return probes_[i]; }
  size_t probe_count() const { return probes_.size(); }

  int64_t query_int(const std::string& sql) const;
  int64_t stored(size_t i) const;
  // How many "msg=\"probe connected\"" lines the current coordinator logged.
  size_t coordinator_connections() const;

  // After every probe has stopped gracefully: prints, per probe, the numbers
  // produced, stored, duplicated and missing, and fails the test on any gap,
  // duplicate or loss.
  void expect_exactly_once() const;


 private:
  StackOptions options_;
  std::string db_;
  std::unique_ptr<Process> lab_;
  std::filesystem::path dir_;
  std::filesystem::path checks_;
  std::unique_ptr<Process> coordinator_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::vector<Probe> probes_;
};

// The edge scenario of the incident tests: the lab's fake Cloudflare edge
// with colos IAD, FRA and SIN; one check "shop" of "shop.test" through the
// edge every 2 s, with the origin leg straight at the lab origin; probe us-1
// reaches the edge's IAD, eu-1 FRA, ap-1 SIN (each probe's "DNS" sends it to
// its own colo, as anycast would). `correlation`: the check's correlation
// settings as YAML (thresholds shortened so a scenario takes seconds).
inline const std::vector<std::string> kEdgeColos{"IAD", "FRA", "SIN"};
StackOptions edge_stack(const std::string& correlation);
int64_t edge_port(const std::string& lab_log, const std::string& colo);
int64_t origin_port(const std::string& lab_log);
// Sets the lab origin's fault for requests that come through the edge
// (`/lab/fault?QUERY`, e.g. "name=empty-reply&colo=FRA", "name=none"); a
// test failure if the lab refuses it.
void set_fault(Stack& stack, const std::string& query);

}  // namespace vantage::testing
