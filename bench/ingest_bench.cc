// Sustained ingest: many probe streams into the real coordinator and a real
// PostgreSQL (fsync on), next to a raw COPY of the very same rows by psql
// into an identical, empty schema, in the same run. Reports results per
// second of both, their ratio, and bytes per stored result.
//
//   build/bench/vantage-ingest-bench [--probes 16] [--seconds 20] [--batch 500]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "common/log.h"
#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace {

using namespace vantage;
using Clock = std::chrono::steady_clock;

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  if (pclose(pipe) != 0) throw std::runtime_error("`" + command + "` failed: " + out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

v1::CheckResult make_result(std::mt19937& rng, uint64_t sequence) {
  v1::CheckResult r;
  r.set_sequence(sequence);
  r.set_check_id(1 + static_cast<int64_t>(rng() % 100));
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  r.mutable_start_time()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(now).count());
  auto* edge = r.mutable_edge();
  edge->mutable_timings()->set_first_byte_us(20'000 + rng() % 50'000);
  edge->mutable_timings()->set_total_us(30'000 + rng() % 90'000);
  if (rng() % 20 == 0) {  // 5 % failures, with their full evidence
    edge->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
    edge->mutable_response()->set_status(520);
    edge->mutable_edge()->set_edge_code(520);
    edge->mutable_edge()->set_colo("FRA");
    edge->mutable_edge()->set_ray_id("8f1a2b3c4d5e6f70-FRA");
    edge->set_error("origin returned an empty reply");
  } else {
    edge->set_failure_class(v1::FAILURE_CLASS_OK);
    edge->mutable_response()->set_status(200);
  }
  return r;
}

// One probe stream: sends batches as fast as acknowledgements allow, with up
// to `window` batches in flight.
void probe_stream(int port, const std::string& id, const std::string& token, size_t batch, size_t window,
                  const std::atomic<bool>& stop, std::atomic<uint64_t>& acked_total) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = v1::ProbeService::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Connect(&context);
  v1::ProbeMessage hello;
  hello.mutable_hello()->set_probe_id(id);
  hello.mutable_hello()->set_region("bench");
  stream->Write(hello);
  v1::CoordinatorMessage message;
  stream->Read(&message);  // welcome
  std::atomic<uint64_t> acked{0};
  std::thread reader([&] {
    v1::CoordinatorMessage m;
    uint64_t last = 0;
    while (stream->Read(&m)) {
      if (m.has_ack() && m.ack().sequence() > last) {
        acked_total += m.ack().sequence() - last;
        last = m.ack().sequence();
        acked = last;
      }
    }
  });
  std::mt19937 rng(std::hash<std::string>{}(id));
  uint64_t sequence = 0;
  v1::ProbeMessage out;
  while (!stop) {
    if (sequence - acked >= batch * window) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    out.Clear();
    for (size_t i = 0; i < batch; ++i) *out.mutable_results()->add_results() = make_result(rng, ++sequence);
    if (!stream->Write(out)) break;
  }
  // Let the last acknowledgements arrive.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (acked < sequence && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  context.TryCancel();
  reader.join();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-ingest-bench: results per second into PostgreSQL, next to psql's raw COPY"};
  size_t probes = 16, batch = 500, window = 4;
  int seconds = 20;
  app.add_option("--probes", probes, "concurrent probe streams")->capture_default_str();
  app.add_option("--seconds", seconds, "how long to send")->capture_default_str();
  app.add_option("--batch", batch, "results per message")->capture_default_str();
  app.add_option("--window", window, "messages in flight per stream")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  log::init("bench", "warn");

  char templ[] = "/tmp/vantage-bench-pg-XXXXXX";
  const std::string dir = mkdtemp(templ);
  const std::string script = std::string(VANTAGE_SOURCE_DIR) + "/scripts/local-postgres.sh";
  int exit_code = 0;
  try {
    // fsync stays on: production settings.
    const auto url = run(script + " start " + dir);
    const auto base = url.substr(0, url.rfind('/'));
    {
      pqxx::connection c(url);
      pqxx::nontransaction(c).exec("CREATE DATABASE ingest");
      pqxx::nontransaction(c).exec("CREATE DATABASE raw_copy");
    }
    const auto ingest_url = base + "/ingest";
    const auto raw_url = base + "/raw_copy";
    std::vector<std::pair<std::string, std::string>> tokens;
    {
      storage::PgStore store(ingest_url, 1);
      store.migrate();
      for (size_t i = 0; i < probes; ++i) {
        auto id = fmt::format("bench-{}", i);
        tokens.emplace_back(id, store.add_probe(id, "bench"));
      }
      storage::PgStore raw(raw_url, 1);
      raw.migrate();
      const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
      raw.maintain_partitions(today, 1, 30);
    }

    coordinator::CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.database_url = ingest_url;
    coordinator::Coordinator coordinator(options);
    coordinator.start();

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> acked{0};
    std::vector<std::thread> streams;
    const auto start = Clock::now();
    for (const auto& [id, token] : tokens) {
      streams.emplace_back(probe_stream, coordinator.grpc_port(), id, token, batch, window, std::cref(stop),
                           std::ref(acked));
    }
    for (int s = 1; s <= seconds; ++s) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::fprintf(stderr, "\r%2d/%d s: %llu results stored", s, seconds, static_cast<unsigned long long>(acked.load()));
    }
    stop = true;
    for (auto& t : streams) t.join();
    const double ingest_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "\n");
    coordinator.shutdown();

    pqxx::connection ingest_db(ingest_url);
    const auto stored = pqxx::read_transaction(ingest_db).exec1("SELECT count(*) FROM results")[0].as<uint64_t>();
    const auto bytes = pqxx::read_transaction(ingest_db)
                           .exec1("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                                  "WHERE inhparent = 'results'::regclass")[0]
                           .as<uint64_t>();

    // The same rows, by psql's COPY, into the identical empty schema.
    const auto rows_file = dir + "/rows.copy";
    run(fmt::format("psql '{}' -qc \"\\copy (SELECT * FROM results) TO '{}'\"", ingest_url, rows_file));
    const auto copy_start = Clock::now();
    run(fmt::format("psql '{}' -qc \"\\copy results FROM '{}'\"", raw_url, rows_file));
    const double copy_seconds = std::chrono::duration<double>(Clock::now() - copy_start).count();

    const double ingest_rate = static_cast<double>(stored) / ingest_seconds;
    const double copy_rate = static_cast<double>(stored) / copy_seconds;
    std::printf("probe streams            %zu (batches of %zu, %zu in flight each)\n", probes, batch, window);
    std::printf("results stored           %llu (acknowledged %llu)\n", static_cast<unsigned long long>(stored),
                static_cast<unsigned long long>(acked.load()));
    std::printf("vantage ingest           %.0f results/s over %.1f s\n", ingest_rate, ingest_seconds);
    std::printf("psql raw COPY, same rows %.0f rows/s over %.2f s\n", copy_rate, copy_seconds);
    std::printf("ratio ingest / raw COPY  %.2f\n", ingest_rate / copy_rate);
    std::printf("bytes per stored result  %.1f (table and indexes)\n", static_cast<double>(bytes) / static_cast<double>(stored));
    if (stored != acked.load()) {
      std::printf("MISMATCH: acknowledged %llu but stored %llu\n", static_cast<unsigned long long>(acked.load()),
                  static_cast<unsigned long long>(stored));
      exit_code = 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vantage-ingest-bench: %s\n", e.what());
    exit_code = 1;
  }
  try {
    run(script + " stop " + dir);
  } catch (...) {
  }
  std::filesystem::remove_all(dir);
  return exit_code;
}
