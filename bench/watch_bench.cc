// WatchIncidents fan-out: many concurrent subscribers over several
// connections (the coordinator allows 32 streams per connection), incident
// events produced by the real IncidentTracker from stored results in a real
// PostgreSQL (fsync on). Reports whether every event reached every
// subscriber, in order, and the latency from the event's commit (the moment
// save_incidents returned, where the tracker publishes) to its arrival at
// each subscriber: p50, p90, p99, max. Subscribers and server both use gRPC's
// asynchronous API, each side on one thread (bench/support.h,
// coordinator/incident_service.h): 1,000 of them need no 1,000 threads.
//
//   build/bench/vantage-watch-bench [--subscribers 1000] [--channels 40] [--outages 150]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/support.h"
#include "common/log.h"
#include "common/proto_time.h"
#include "common/token.h"
#include "coordinator/api_auth.h"
#include "coordinator/incident_feed.h"
#include "coordinator/incident_service.h"
#include "coordinator/incident_tracker.h"
#include "coordinator/metrics.h"
#include "storage/pg_store.h"
#include "vantage/v1/incident_service.grpc.pb.h"

namespace {

using namespace vantage;
using bench::percentile;
using bench::run;
using Steady = std::chrono::steady_clock;

constexpr size_t kMaxEvents = 1 << 16;  // event ids of a fresh database index the commit times
std::array<std::atomic<int64_t>, kMaxEvents> g_commit_us;  // bench::wall_us(); 0: not committed yet

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch()).count();
}

int process_threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Threads:")) return std::stoi(line.substr(8));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-watch-bench: WatchIncidents fan-out to many subscribers, latency from commit"};
  size_t subscribers = 1000, channels = 40, outages = 150, checks = 10;
  int pace_ms = 20;
  app.add_option("--subscribers", subscribers, "concurrent WatchIncidents calls")->capture_default_str();
  app.add_option("--channels", channels, "client connections they share (32 streams each at most)")
      ->capture_default_str();
  app.add_option("--outages", outages, "outages opened and resolved (about 2 events each)")->capture_default_str();
  app.add_option("--checks", checks, "checks the outages rotate over")->capture_default_str();
  app.add_option("--pace-ms", pace_ms, "pause between result batches")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (subscribers > channels * 32) {
    std::fprintf(stderr, "--subscribers %zu needs at least %zu channels (32 streams each)\n", subscribers,
                 (subscribers + 31) / 32);
    return 2;
  }
  log::init("bench", "warn");

  char templ[] = "/tmp/vantage-watch-bench-pg-XXXXXX";
  const std::string dir = mkdtemp(templ);
  const std::string script = std::string(VANTAGE_SOURCE_DIR) + "/scripts/local-postgres.sh";
  int exit_code = 0;
  try {
    const auto url = run(script + " start " + dir);  // fsync on: production settings
    storage::PgStore store(url, 8);
    store.migrate();
    const auto probe_token = store.add_probe("bench-1", "eu");
    const auto probe = *store.find_probe_by_token(token_sha256_hex(probe_token));
    const auto token = store.add_api_token("bench", "read");
    std::vector<v1::Check> wanted;
    for (size_t i = 0; i < checks; ++i) {
      v1::Check check;
      check.set_name(fmt::format("bench-{}", i));
      check.set_url("http://127.0.0.1:9/");
      check.mutable_interval()->set_seconds(60);
      check.mutable_timeout()->set_seconds(5);
      wanted.push_back(check);
    }
    const auto stored_checks = store.sync_file_checks(wanted);

    coordinator::CoordinatorMetrics metrics(std::make_shared<prometheus::Registry>());
    coordinator::IncidentFeed feed;
    coordinator::IncidentTrackerOptions tracker_options;
    std::atomic<size_t> events_committed{0};
    std::atomic<int64_t> publish_ns_total{0}, publish_ns_max{0};
    std::atomic<size_t> publishes{0};
    tracker_options.on_events_stored = [&](const auto& events, const auto& incidents) {
      if (events.empty()) return;  // only snapshots changed
      const int64_t now = steady_ns();
      const int64_t committed = bench::wall_us();  // save_incidents has just committed
      for (const auto& e : events) {
        if (static_cast<size_t>(e.event_id()) < kMaxEvents) g_commit_us[static_cast<size_t>(e.event_id())] = committed;
      }
      events_committed += events.size();
      feed.publish(events, incidents);
      // What publishing costs the tracker's thread (correlation waits meanwhile).
      const int64_t spent = steady_ns() - now;
      publish_ns_total += spent;
      publish_ns_max = std::max(publish_ns_max.load(), spent);
      ++publishes;
    };
    coordinator::IncidentTracker tracker(store, store, metrics, RealTimers::instance(), tracker_options, nullptr);
    tracker.set_checks(stored_checks);
    tracker.start();
    coordinator::ApiAuthorizer auth(store, metrics.api_auth_failures, RealClock::instance());
    coordinator::IncidentServiceImpl service(store, store, auth, feed, RealClock::instance());

    // As coordinator.cc builds its server.
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    grpc::ResourceQuota quota("watch-bench");
    quota.SetMaxThreads(1000);
    builder.SetResourceQuota(quota);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 32);
    service.register_with(builder);
    auto server = builder.BuildAndStart();
    service.start_watching();
    const int threads_before = process_threads();

    const auto stubs = bench::incident_stubs(port, channels);
    bench::CompletionThread poller;  // outlives the calls on it
  std::vector<std::unique_ptr<bench::WatchSubscriber>> subs;
    const auto connect_start = Steady::now();
    for (size_t i = 0; i < subscribers; ++i) {
      subs.push_back(std::make_unique<bench::WatchSubscriber>(*stubs[i % channels], poller, token));
    }
    while (feed.subscribers() < subscribers) {
      if (Steady::now() - connect_start > std::chrono::seconds(60)) {
        throw std::runtime_error(fmt::format("only {} of {} subscribed after 60 s", feed.subscribers(), subscribers));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const double connect_s = std::chrono::duration<double>(Steady::now() - connect_start).count();
    const int threads_subscribed = process_threads();

    // Outages, one check after another: two failures open one, two
    // successes resolve it.
    uint64_t sequence = 0;
    auto report = [&](int64_t check_id, bool ok) {
      storage::ResultBatch batch;
      batch.probe = probe;
      for (int i = 0; i < 2; ++i) {
        v1::CheckResult r;
        r.set_check_id(check_id);
        r.set_check_version(1);
        r.set_sequence(++sequence);
        *r.mutable_start_time() = to_timestamp(std::chrono::system_clock::now() + std::chrono::microseconds(i));
        r.mutable_edge()->set_failure_class(ok ? v1::FAILURE_CLASS_OK : v1::FAILURE_CLASS_EDGE_ERROR);
        if (!ok) {
          r.mutable_edge()->mutable_edge()->set_edge_code(520);
          r.mutable_edge()->mutable_edge()->set_colo("FRA");
          r.mutable_edge()->mutable_edge()->set_ray_id(fmt::format("8f{:014x}-FRA", sequence));
        }
        batch.results.push_back(r);
      }
      store.write_results(batch);
      tracker.add({&batch});
      std::this_thread::sleep_for(std::chrono::milliseconds(pace_ms));
    };
    const auto produce_start = Steady::now();
    for (size_t i = 0; i < outages; ++i) {
      const auto& check = stored_checks[i % stored_checks.size()];
      report(check.id(), false);
      report(check.id(), true);
    }
    // Every event to every subscriber.
    const auto deadline = Steady::now() + std::chrono::seconds(60);
    auto all_received = [&] {
      const size_t expected = events_committed.load();
      return std::all_of(subs.begin(), subs.end(), [&](const auto& s) { return s->received() >= expected; });
    };
    while (!all_received() && Steady::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const double produce_s = std::chrono::duration<double>(Steady::now() - produce_start).count();
    const size_t events = events_committed.load();

    size_t complete = 0;
    int out_of_order = 0;
    std::vector<int64_t> latencies;
    for (auto& s : subs) {
      if (s->received() == events) ++complete;
      s->cancel();
    }
    for (auto& s : subs) {
      s->wait();
      out_of_order += s->out_of_order();
      for (const auto& arrival : s->arrivals()) {
        if (arrival.event_id <= 0 || static_cast<size_t>(arrival.event_id) >= kMaxEvents) continue;
        const int64_t committed = g_commit_us[static_cast<size_t>(arrival.event_id)].load();
        if (committed > 0) latencies.push_back(arrival.at_us - committed);
      }
    }
    std::sort(latencies.begin(), latencies.end());
    std::printf("subscribers %zu over %zu connections (subscribed in %.2f s); "
                "process threads: %d before, %d with them\n",
                subscribers, channels, connect_s, threads_before, threads_subscribed);
    std::printf("events committed %zu in %.1f s; subscribers that got every event: %zu of %zu; out of order: %d\n",
                events, produce_s, complete, subscribers, out_of_order);
    std::printf("deliveries %zu; latency from commit: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                latencies.size(), percentile(latencies, 0.50) / 1000.0, percentile(latencies, 0.90) / 1000.0,
                percentile(latencies, 0.99) / 1000.0, latencies.empty() ? 0.0 : latencies.back() / 1000.0);
    std::printf("dropped subscribers: %llu; publishing on the tracker's thread: %zu publishes, "
                "mean %.2f ms, max %.2f ms\n",
                static_cast<unsigned long long>(feed.dropped_total()), publishes.load(),
                publishes ? publish_ns_total.load() / 1e6 / static_cast<double>(publishes.load()) : 0.0,
                publish_ns_max.load() / 1e6);
    if (complete != subscribers || out_of_order != 0) exit_code = 1;

    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server->Wait();
    service.stop_watching();
    tracker.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vantage-watch-bench: %s\n", e.what());
    exit_code = 1;
  }
  try {
    run(script + " stop " + dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  std::filesystem::remove_all(dir);
  return exit_code;
}
