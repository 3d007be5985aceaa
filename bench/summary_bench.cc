// vantage-summary-bench: how fast ResultService answers (GetCheckSummary over
// 1 h to 30 d, a page of ListResults) through the real gRPC service, on a
// PostgreSQL of its own filled by COPY with N days x C checks x 3 regions at
// 60 s; measured with a tenth of the days stored, then with all of them.
// See bench/README.md.
#include <CLI/CLI.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <pqxx/pqxx>
#include <random>

#include "bench/support.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "vantage/v1/result_service.grpc.pb.h"

namespace vantage {
namespace {

using Clock = std::chrono::steady_clock;
using bench::run;
using google::protobuf::util::TimeUtil;

constexpr std::array<const char*, 3> kRegions = {"us", "eu", "ap"};
constexpr std::array<const char*, 3> kColos[] = {{"IAD", "EWR", "ORD"}, {"FRA", "AMS", "CDG"}, {"SIN", "NRT", "BOM"}};

struct Fleet {
  std::vector<int32_t> probe_keys;  // one per region
  std::vector<int64_t> check_ids;
  std::vector<uint64_t> sequences;  // per probe, the last one written
};

// COPYs the results of the minutes [first, last) for every check and region:
// 98 % ok (latency 40..400 ms), 2 % 52x with their evidence as detail.
uint64_t generate(const std::string& url, Fleet& fleet, std::chrono::sys_seconds first,
                  std::chrono::sys_seconds last, std::mt19937& rng) {
  pqxx::connection c(url);
  uint64_t rows = 0;
  std::array<std::string, 13> text;
  std::array<const char*, 13> fields;
  // A day per transaction: a partition's rows together.
  for (auto day = first; day < last; day += std::chrono::hours(24)) {
    pqxx::work tx(c);
    pqxx::stream_to copy(tx, "results",
                         std::vector<std::string>{"probe_id", "seq", "check_id", "start_time", "region", "class",
                                                  "origin_class", "status", "edge_code", "colo", "ttfb_us",
                                                  "total_us", "detail"});
    const auto day_end = std::min(last, day + std::chrono::hours(24));
    for (auto minute = day; minute < day_end; minute += std::chrono::seconds(60)) {
      const auto time_text = fmt::format("{:%Y-%m-%d %H:%M:%S}+00", minute);
      for (size_t check = 0; check < fleet.check_ids.size(); ++check) {
        for (size_t region = 0; region < kRegions.size(); ++region) {
          const bool failed = rng() % 50 == 0;
          const uint64_t seq = ++fleet.sequences[region];
          const uint32_t total_us = 40'000 + rng() % 360'000;
          auto set = [&](size_t i, std::string value) {
            text[i] = std::move(value);
            fields[i] = text[i].c_str();
          };
          set(0, std::to_string(fleet.probe_keys[region]));
          set(1, std::to_string(seq));
          set(2, std::to_string(fleet.check_ids[check]));
          set(3, time_text);
          set(4, kRegions[region]);
          fields[6] = nullptr;
          set(10, std::to_string(total_us / 3));
          set(11, std::to_string(total_us));
          if (!failed) {
            set(5, "1");
            set(7, "200");
            fields[8] = nullptr;
            fields[9] = nullptr;
            fields[12] = nullptr;
          } else {
            const uint32_t code = 520 + rng() % 7;
            const char* colo = kColos[region][rng() % 3];
            set(5, std::to_string(static_cast<int>(v1::FAILURE_CLASS_EDGE_ERROR)));
            set(7, std::to_string(code));
            set(8, std::to_string(code));
            set(9, colo);
            v1::CheckResult r;
            r.set_check_id(fleet.check_ids[check]);
            r.set_sequence(seq);
            r.mutable_start_time()->set_seconds(minute.time_since_epoch().count());
            r.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
            r.mutable_edge()->mutable_response()->set_status(code);
            r.mutable_edge()->mutable_edge()->set_edge_code(code);
            r.mutable_edge()->mutable_edge()->set_colo(colo);
            r.mutable_edge()->mutable_edge()->set_ray_id(fmt::format("{:016x}-{}", rng(), colo));
            r.mutable_edge()->mutable_timings()->set_total_us(total_us);
            std::string bytes;
            r.SerializeToString(&bytes);
            std::string hex = "\\x";
            for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
            set(12, std::move(hex));
          }
          copy << fields;
          ++rows;
        }
      }
    }
    copy.complete();
    tx.commit();
    std::fprintf(stderr, "\r%llu rows generated", static_cast<unsigned long long>(rows));
  }
  std::fprintf(stderr, "\n");
  return rows;
}

struct Figure {
  double p50_ms = 0, p99_ms = 0;
};

Figure measure(int calls, const std::function<void()>& call) {
  call();  // a first call outside the figures (connection, plan caches)
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    const auto start = Clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))]; };
  return {at(0.5), at(0.99)};
}

}  // namespace
}  // namespace vantage

int main(int argc, char** argv) {
  using namespace vantage;
  CLI::App app{"vantage-summary-bench: ResultService latency on N days x C checks x 3 regions at 60 s"};
  int days = 30, checks = 300, calls = 100;
  app.add_option("--days", days, "days of results stored")->capture_default_str()->check(CLI::Range(1, 31));
  app.add_option("--checks", checks, "checks")->capture_default_str()->check(CLI::Range(1, 10'000));
  app.add_option("--calls", calls, "calls per figure")->capture_default_str()->check(CLI::Range(1, 100'000));
  bool keep = false;
  std::string reuse;
  app.add_option("--reuse", reuse, "measure the data a run with --keep left in this directory (same --days, --checks)");
  app.add_flag("--keep", keep, "leave the PostgreSQL running with its data (prints its URL and directory)");
  CLI11_PARSE(app, argc, argv);
  log::init("bench", "warn");

  char templ[] = "/var/tmp/vantage-summary-bench-XXXXXX";
  const std::string dir = reuse.empty() ? std::string(mkdtemp(templ)) : reuse;
  const std::string script = std::string(VANTAGE_SOURCE_DIR) + "/scripts/local-postgres.sh";
  int exit_code = 0;
  try {
    // fsync off: the figures are of reads; it only makes the load faster.
    const auto url = run(script + " start " + dir + " --fast");
    storage::PgStore store(url, 1);
    store.migrate();
    Fleet fleet;
    for (const char* region : kRegions) {
      if (!reuse.empty()) break;
      store.add_probe(fmt::format("bench-{}", region), region);
    }
    {
      pqxx::connection c(url);
      pqxx::read_transaction tx(c);
      for (const auto& row : tx.exec("SELECT id FROM probes ORDER BY id")) fleet.probe_keys.push_back(row[0].as<int32_t>());
    }
    fleet.sequences.assign(kRegions.size(), 0);
    std::vector<v1::Check> wanted;
    for (int i = 0; i < checks; ++i) {
      v1::Check check;
      check.set_name(fmt::format("site-{}", i));
      check.set_url(fmt::format("https://site-{}.example/", i));
      *check.mutable_interval() = TimeUtil::SecondsToDuration(60);
      *check.mutable_timeout() = TimeUtil::SecondsToDuration(10);
      check.add_regions("nowhere");  // no probe runs them: the bench's rows are the only ones
      check.set_source(v1::CHECK_SOURCE_FILE);
      wanted.push_back(check);
    }
    if (reuse.empty()) {
      for (const auto& c : store.sync_file_checks(wanted)) fleet.check_ids.push_back(c.id());
    }

    auto now = std::chrono::floor<std::chrono::minutes>(std::chrono::system_clock::now());
    if (!reuse.empty()) {
      // The data end where the run that stored them began.
      pqxx::connection c(url);
      now = std::chrono::floor<std::chrono::minutes>(std::chrono::system_clock::time_point(
                std::chrono::microseconds(pqxx::read_transaction(c)
                                              .exec1("SELECT (extract(epoch FROM max(start_time)) * 1e6)::bigint "
                                                     "FROM results WHERE check_id = (SELECT min(id) FROM checks)")[0]
                                              .as<int64_t>()))) +
            std::chrono::minutes(1);
    }
    const auto first = std::chrono::sys_seconds(now - std::chrono::days(days));
    store.maintain_partitions(std::chrono::floor<std::chrono::days>(first), days + 3, days + 30);

    coordinator::CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.database_url = url;
    options.retention_days = days + 30;
    const auto token = store.add_api_token(fmt::format("bench-{}", getpid()), "read");
    auto channel_for = [&](int port) {
      return v1::ResultService::NewStub(
          grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    };

    std::mt19937 rng(42);
    const int recent_days = std::max(1, days / 10);
    std::printf("checks %d, regions 3, interval 60 s, %d calls per figure (p50 / p99 in ms)\n", checks, calls);
    std::unique_ptr<coordinator::Coordinator> coordinator;
    std::unique_ptr<v1::ResultService::Stub> stub;
    uint64_t stored = 0;
    std::vector<int> phases = {recent_days};
    if (days > recent_days) phases.push_back(days);
    if (!reuse.empty()) phases = {days};
    for (const int phase_days : phases) {
      // The newest days first; then the older ones.
      const auto from = std::chrono::sys_seconds(now - std::chrono::days(phase_days));
      const auto to = phase_days == recent_days ? std::chrono::sys_seconds(now)
                                                 : std::chrono::sys_seconds(now - std::chrono::days(recent_days));
      const auto load_start = Clock::now();
      if (reuse.empty()) stored += generate(url, fleet, from, to, rng);
      const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
      const auto vacuum_start = Clock::now();
      {
        // What autovacuum does to insert-only partitions: the visibility map
        // that index-only scans need, and the statistics.
        pqxx::connection c(url);
        pqxx::nontransaction(c).exec("VACUUM ANALYZE results");
      }
      const double vacuum_s = std::chrono::duration<double>(Clock::now() - vacuum_start).count();
      uint64_t bytes = 0;
      if (!reuse.empty()) {
        pqxx::connection c(url);
        stored = pqxx::read_transaction(c)
                     .exec1("SELECT sum(c.reltuples)::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'results'::regclass")[0]
                     .as<uint64_t>();
      }
      {
        pqxx::connection c(url);
        bytes = pqxx::read_transaction(c)
                    .exec1("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                           "WHERE inhparent = 'results'::regclass")[0]
                    .as<uint64_t>();
      }
      std::printf("\nstored %llu rows (%d days; %.1f GB with indexes; COPY %.0f s, VACUUM ANALYZE %.0f s)\n",
                  static_cast<unsigned long long>(stored), phase_days, static_cast<double>(bytes) / 1e9, load_s,
                  vacuum_s);
      if (!coordinator) {
        coordinator = std::make_unique<coordinator::Coordinator>(options);
        coordinator->start();
        stub = channel_for(coordinator->grpc_port());
      }
      // The windows end where the data do.
      const auto end_time = TimeUtil::SecondsToTimestamp(std::chrono::sys_seconds(now).time_since_epoch().count());
      auto random_check = [&] { return fmt::format("site-{}", rng() % static_cast<unsigned>(checks)); };
      auto summary = [&](std::chrono::hours window) {
        return measure(calls, [&, window] {
          v1::GetCheckSummaryRequest request;
          request.set_check(random_check());
          *request.mutable_end_time() = end_time;
          *request.mutable_window() = TimeUtil::SecondsToDuration(std::chrono::seconds(window).count());
          v1::GetCheckSummaryResponse response;
          grpc::ClientContext context;
          context.AddMetadata("authorization", "Bearer " + token);
          auto status = stub->GetCheckSummary(&context, request, &response);
          if (!status.ok()) throw std::runtime_error("GetCheckSummary: " + status.error_message());
          if (response.summary().attempts() == 0) throw std::runtime_error("GetCheckSummary: no attempts");
        });
      };
      auto page = [&](bool failures_only) {
        return measure(calls, [&, failures_only] {
          v1::ListResultsRequest request;
          request.set_check(random_check());
          *request.mutable_end_time() = end_time;
          request.set_failures_only(failures_only);
          v1::ListResultsResponse response;
          grpc::ClientContext context;
          context.AddMetadata("authorization", "Bearer " + token);
          auto status = stub->ListResults(&context, request, &response);
          if (!status.ok()) throw std::runtime_error("ListResults: " + status.error_message());
          if (response.results_size() == 0) throw std::runtime_error("ListResults: an empty page");
        });
      };
      auto print = [](const char* what, Figure f) { std::printf("  %-34s %8.1f %8.1f\n", what, f.p50_ms, f.p99_ms); };
      std::printf("  %-34s %8s %8s\n", "", "p50", "p99");
      print("summary, window 1 h", summary(std::chrono::hours(1)));
      print("summary, window 24 h", summary(std::chrono::hours(24)));
      if (phase_days >= 7) print("summary, window 7 d", summary(std::chrono::hours(24 * 7)));
      if (phase_days > 7) print(fmt::format("summary, window {} d", phase_days).c_str(), summary(std::chrono::hours(24 * phase_days)));
      print("results page (100, newest)", page(false));
      print("results page (100, failures only)", page(true));
      std::fflush(stdout);
    }
    coordinator->shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vantage-summary-bench: %s\n", e.what());
    exit_code = 1;
  }
  if (keep) {
    std::printf("kept: %s (stop: scripts/local-postgres.sh stop %s)\n", run(script + " url " + dir).c_str(), dir.c_str());
    return exit_code;
  }
  try {
    run(script + " stop " + dir);
  } catch (...) {
  }
  if (reuse.empty()) std::filesystem::remove_all(dir);
  return exit_code;
}
