// Sustained ingest: many probe streams into the real coordinator and a real
// PostgreSQL (fsync on), next to a raw COPY of the very same rows by psql
// into an identical, empty schema, in the same run. Reports results per
// second of both, their ratio, and bytes per stored result.
//
// With --subscribers N the baseline is the same ingest without them instead:
// phases of --seconds alternate between no WatchIncidents subscriber (a) and
// N of them connected and receiving (b), a b a b ... a, while a further
// probe opens and resolves incidents all along, at --events-per-second, so
// that events flow. The subscribers run in a child process. Reports
// each phase's rate, each b against the a's around it, and the latency of
// the events from their commit (PostgreSQL's commit timestamp) to each
// subscriber during the b phases.
//
//   build/bench/vantage-ingest-bench [--probes 16] [--seconds 20] [--batch 500]
//   build/bench/vantage-ingest-bench --seconds 15 --subscribers 1000 [--rounds 2] [--channels 40]
//                                    [--events-per-second 20] [--coordinator-process]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <thread>
#include <unordered_map>

#include "bench/support.h"
#include "common/log.h"
#include "common/proto_time.h"
#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "tests/support/process.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace {

using namespace vantage;
using Clock = std::chrono::steady_clock;
using bench::run;


// Fills `r` in place (cleared first, its parts kept for reuse): the load
// generator shares the cores with what it measures, so it allocates little.
void make_result(v1::CheckResult& r, std::mt19937& rng, uint64_t sequence, const std::vector<int64_t>& check_ids) {
  r.Clear();
  r.set_sequence(sequence);
  r.set_check_id(check_ids[rng() % check_ids.size()]);
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
}

// A probe's stream: hello and welcome, then results out; a reader thread
// counts the acknowledged results (and ignores assignments and re-checks).
class ProbeStream {
 public:
  ProbeStream(int port, const std::string& id, const std::string& region, const std::string& token,
              std::atomic<uint64_t>& acked_total)
      : stub_(v1::ProbeService::NewStub(
            grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()))),
        acked_total_(acked_total) {
    context_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub_->Connect(&context_);
    v1::ProbeMessage hello;
    hello.mutable_hello()->set_probe_id(id);
    hello.mutable_hello()->set_region(region);
    stream_->Write(hello);
    v1::CoordinatorMessage welcome;
    stream_->Read(&welcome);
    reader_ = std::thread([this] {
      v1::CoordinatorMessage m;
      uint64_t last = 0;
      while (stream_->Read(&m)) {
        if (m.has_ack() && m.ack().sequence() > last) {
          acked_total_ += m.ack().sequence() - last;
          last = m.ack().sequence();
          {
            std::lock_guard lock(mu_);
            acked_ = last;
          }
          acked_cv_.notify_all();
        }
      }
    });
  }
  ~ProbeStream() {
    context_.TryCancel();
    reader_.join();
  }
  bool send(const v1::ProbeMessage& message) { return stream_->Write(message); }
  uint64_t acked() const { return acked_.load(); }
  // Until `sequence` is acknowledged or `limit` passed; whether it was.
  // Woken by the acknowledgement, not by polling: a probe blocked on its
  // window should cost the cores nothing that ingest could use.
  bool wait_acked(uint64_t sequence, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return acked_cv_.wait_for(lock, limit, [&] { return acked_.load() >= sequence; });
  }

 private:
  std::unique_ptr<v1::ProbeService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProbeMessage, v1::CoordinatorMessage>> stream_;
  std::atomic<uint64_t>& acked_total_;
  std::mutex mu_;
  std::condition_variable acked_cv_;
  std::atomic<uint64_t> acked_{0};  // written under mu_
  std::thread reader_;
};

// One probe stream: sends batches as fast as acknowledgements allow, with up
// to `window` batches in flight.
void probe_stream(int port, const std::string& id, const std::string& token, const std::vector<int64_t>& check_ids,
                  size_t batch, size_t window, const std::atomic<bool>& stop, std::atomic<uint64_t>& acked_total) {
  ProbeStream stream(port, id, "bench", token, acked_total);
  std::mt19937 rng(std::hash<std::string>{}(id));
  uint64_t sequence = 0;
  v1::ProbeMessage out;
  while (!stop) {
    if (sequence - stream.acked() >= batch * window) {
      stream.wait_acked(sequence - batch * window + 1, std::chrono::milliseconds(100));  // then sees `stop`
      continue;
    }
    auto* results = out.mutable_results()->mutable_results();  // the previous batch's, refilled
    while (static_cast<size_t>(results->size()) < batch) results->Add();
    for (auto& result : *results) make_result(result, rng, ++sequence, check_ids);
    if (!stream.send(out)) break;
  }
  stream.wait_acked(sequence);
}

// Outages, one check after another, as vantage-watch-bench makes them: two
// failures open one, two successes resolve it. Each batch makes about one
// event (opened or resolved); batches go out at `events_per_second`, on a
// schedule, so the event rate is the bench's choice and not whatever the
// cores leave over.
void incident_driver(int port, const std::string& token, const std::vector<v1::Check>& checks,
                     double events_per_second, const std::atomic<bool>& stop, std::atomic<uint64_t>& acked) {
  ProbeStream stream(port, "bench-incidents", "eu", token, acked);
  uint64_t sequence = 0;
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / events_per_second));
  auto next = Clock::now();
  auto report = [&](const v1::Check& check, bool ok) {
    v1::ProbeMessage out;
    for (int i = 0; i < 2; ++i) {
      auto* r = out.mutable_results()->add_results();
      r->set_check_id(check.id());
      r->set_check_version(check.version());
      r->set_sequence(++sequence);
      *r->mutable_start_time() = to_timestamp(std::chrono::system_clock::now() + std::chrono::microseconds(i));
      r->mutable_edge()->set_failure_class(ok ? v1::FAILURE_CLASS_OK : v1::FAILURE_CLASS_EDGE_ERROR);
      if (!ok) {
        r->mutable_edge()->mutable_edge()->set_edge_code(520);
        r->mutable_edge()->mutable_edge()->set_colo("FRA");
        r->mutable_edge()->mutable_edge()->set_ray_id(fmt::format("8f{:014x}-FRA", sequence));
      }
    }
    stream.send(out);
    next += period;
    std::this_thread::sleep_until(next);
  };
  for (size_t i = 0; !stop; ++i) {
    report(checks[i % checks.size()], false);
    report(checks[i % checks.size()], true);
  }
  stream.wait_acked(sequence);
}

// The subscribers of a b phase, in a process of their own, as in production
// (where they are other machines): in the bench's process they would share
// gRPC's pollers and callback threads with the load generator and the
// coordinator, which is not what a coordinator's ingest meets. The child is
// this very binary (`watch-child`): it reports on its output the event id
// every subscriber has reached (`caught=N`, whenever it moves) and, on
// SIGTERM, ends its calls and writes each subscriber's arrivals to a file.
class SubscriberProcess {
 public:
  struct Subscriber {
    bool ended_early = false;  // by the server: dropped for falling behind, or an error
    int out_of_order = 0;
    std::vector<bench::WatchSubscriber::Arrival> arrivals;
  };

  SubscriberProcess(int port, const std::string& token_file, int64_t after_event_id, size_t subscribers,
                    size_t channels, const std::string& report_file)
      : report_file_(report_file),
        child_({"/proc/self/exe", "watch-child", "--port", std::to_string(port), "--token-file", token_file,
                "--after", std::to_string(after_event_id), "--subscribers", std::to_string(subscribers),
                "--channels", std::to_string(channels), "--report", report_file}) {}

  // The event id every subscriber has reached; -1 before the first report.
  int64_t caught_up_to() const { return testing::number_after(child_.output(), "caught="); }
  bool running() { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  std::string output() const { return child_.output(); }

  // Ends every call and reads what each subscriber got.
  std::vector<Subscriber> finish() {
    child_.signal(SIGTERM);
    const auto code = child_.wait(std::chrono::seconds(60));
    if (code != 0) throw std::runtime_error("watch-child failed: " + child_.output());
    std::ifstream in(report_file_);
    size_t count = 0;
    in >> count;
    std::vector<Subscriber> subscribers(count);
    for (auto& s : subscribers) {
      size_t arrivals = 0;
      in >> s.ended_early >> s.out_of_order >> arrivals;
      s.arrivals.resize(arrivals);
      for (auto& a : s.arrivals) in >> a.event_id >> a.at_us;
    }
    if (!in) throw std::runtime_error("watch-child: unreadable report " + report_file_);
    return subscribers;
  }

 private:
  std::string report_file_;
  testing::Process child_;
};

int watch_child(int argc, char** argv) {
  CLI::App app{"vantage-ingest-bench watch-child: the WatchIncidents subscribers of a b phase"};
  int port = 0;
  int64_t after = 0;
  size_t subscribers = 0, channels = 1;
  std::string token_file, report_file;
  app.add_option("--port", port)->required();
  app.add_option("--token-file", token_file)->required();
  app.add_option("--after", after)->required();
  app.add_option("--subscribers", subscribers)->required();
  app.add_option("--channels", channels)->required();
  app.add_option("--report", report_file)->required();
  CLI11_PARSE(app, argc, argv);
  // Blocked before gRPC starts its threads, so that only sigwait sees it.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  std::string token;
  std::ifstream(token_file) >> token;

  const auto stubs = bench::incident_stubs(port, channels);
  bench::CompletionThread poller;  // outlives the calls on it
  std::vector<std::unique_ptr<bench::WatchSubscriber>> subs;
  for (size_t i = 0; i < subscribers; ++i) {
    subs.push_back(std::make_unique<bench::WatchSubscriber>(*stubs[i % channels], poller, token, after));
  }
  std::atomic<bool> stop{false};
  std::thread progress([&] {
    int64_t reported = -1;
    while (!stop) {
      int64_t caught = std::numeric_limits<int64_t>::max();
      for (const auto& s : subs) caught = std::min(caught, s->last_event_id());
      if (caught != reported) {
        std::printf("caught=%lld\n", static_cast<long long>(caught));
        std::fflush(stdout);
        reported = caught;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  int signal = 0;
  sigwait(&term, &signal);
  stop = true;
  progress.join();
  for (auto& s : subs) s->cancel();
  FILE* out = std::fopen(report_file.c_str(), "w");
  if (!out) return 1;
  fmt::print(out, "{}\n", subs.size());
  for (auto& s : subs) {
    const bool ended_early = s->wait().error_code() != grpc::StatusCode::CANCELLED;
    fmt::print(out, "{} {} {}\n", ended_early ? 1 : 0, s->out_of_order(), s->arrivals().size());
    for (const auto& a : s->arrivals()) fmt::print(out, "{} {}\n", a.event_id, a.at_us);
  }
  return std::fclose(out) == 0 ? 0 : 1;
}

// The coordinator measured: in this process (as the raw COPY comparison was
// recorded), or with --coordinator-process the real vantage-coordinator
// binary in a process of its own, as in production, where it shares gRPC's
// threads and pollers with no load generator and its cores are counted
// apart.
class BenchCoordinator {
 public:
  BenchCoordinator(const std::string& database_url, bool own_process) {
    if (!own_process) {
      coordinator::CoordinatorOptions options;
      options.listen = "127.0.0.1:0";
      options.metrics_listen = "127.0.0.1:0";
      options.database_url = database_url;
      in_process_ = std::make_unique<coordinator::Coordinator>(options);
      in_process_->start();
      port_ = in_process_->grpc_port();
      return;
    }
    const auto binary = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "coordinator" /
                        "vantage-coordinator";
    process_ = std::make_unique<testing::Process>(std::vector<std::string>{
        binary.string(), "serve", "--database", database_url, "--listen", "127.0.0.1:0", "--metrics-listen",
        "127.0.0.1:0", "--log-level", "info"});
    if (!process_->wait_for_output("grpc_port=", std::chrono::seconds(60))) {
      throw std::runtime_error("vantage-coordinator did not start: " + process_->output());
    }
    port_ = static_cast<int>(testing::number_after(process_->output(), "grpc_port="));
  }
  int port() const { return port_; }
  pid_t pid() const { return process_ ? process_->pid() : 0; }  // 0: this process
  void shutdown() {
    if (in_process_) in_process_->shutdown();
    if (process_) {
      process_->signal(SIGTERM);
      if (process_->wait(std::chrono::seconds(60)) != 0) {
        throw std::runtime_error("vantage-coordinator did not stop cleanly: " + process_->output());
      }
    }
  }

 private:
  std::unique_ptr<coordinator::Coordinator> in_process_;
  std::unique_ptr<testing::Process> process_;
  int port_ = 0;
};

struct WatchOptions {
  size_t subscribers = 0;  // 0: no watch phases, the raw COPY baseline
  size_t channels = 40;    // connections the subscribers share
  int rounds = 2;          // b phases, each between two a phases
  int seconds = 20;        // per phase
  std::string token_file;  // the API token the subscribers present
  std::string work_dir;    // where the subscribers' process writes its report
};

// One phase's rate, the results acknowledged (so committed) per second, and
// the cores in use meanwhile: the machine's, this process's (the load
// generator, and the coordinator unless it has its own), the coordinator's
// process's and, in a b phase, the subscribers' process's.
struct Phase {
  double rate, machine_cores, bench_cores, coordinator_cores, subscriber_cores;
  std::string cores() const {
    return fmt::format(
        "cores busy {:.2f}: bench process {:.2f}, coordinator process {:.2f}, subscribers {:.2f}, "
        "the rest (PostgreSQL) {:.2f}",
        machine_cores, bench_cores, coordinator_cores, subscriber_cores,
        machine_cores - bench_cores - coordinator_cores - subscriber_cores);
  }
};

class PhaseMeter {
 public:
  // `coordinator_pid` 0: the coordinator is in this process.
  PhaseMeter(const std::atomic<uint64_t>& acked, pid_t coordinator_pid, int seconds)
      : acked_(acked), coordinator_pid_(coordinator_pid), seconds_(seconds) {}

  // Waits the phase out, showing its progress; `subscribers_pid` 0: none.
  Phase measure(int phase, pid_t subscribers_pid) const {
    const uint64_t before = acked_.load();
    const double machine_before = bench::machine_busy_seconds(), bench_before = cpu(getpid());
    const double coordinator_before = cpu(coordinator_pid_), child_before = cpu(subscribers_pid);
    const auto start = Clock::now();
    for (int s = 1; s <= seconds_; ++s) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::fprintf(stderr, "\rphase %d: %2d/%d s", phase, s, seconds_);
    }
    std::fprintf(stderr, "\n");
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return Phase{
        static_cast<double>(acked_.load() - before) / seconds,
        (bench::machine_busy_seconds() - machine_before) / seconds,
        (cpu(getpid()) - bench_before) / seconds,
        (cpu(coordinator_pid_) - coordinator_before) / seconds,
        (cpu(subscribers_pid) - child_before) / seconds,
    };
  }

 private:
  static double cpu(pid_t pid) { return pid ? bench::process_cpu_seconds(pid) : 0.0; }
  const std::atomic<uint64_t>& acked_;
  const pid_t coordinator_pid_;
  const int seconds_;
};

// What the subscribers of one b phase got of the events stored after `from`
// up to `last`: how many got every one, in order, without being ended by the
// server; and each delivery's latency from its event's commit, for the
// events in `committed_us` (event id -> commit, wall_us()).
struct Deliveries {
  size_t complete = 0;
  int out_of_order = 0;
  std::vector<int64_t> latencies;  // µs, sorted
};

Deliveries tally(const std::vector<SubscriberProcess::Subscriber>& subscribers, int64_t from, int64_t last,
                 size_t expected, const std::unordered_map<int64_t, int64_t>& committed_us) {
  Deliveries out;
  for (const auto& s : subscribers) {
    size_t got = 0;
    for (const auto& arrival : s.arrivals) {
      if (arrival.event_id <= from || arrival.event_id > last) continue;
      ++got;
      if (auto it = committed_us.find(arrival.event_id); it != committed_us.end()) {
        out.latencies.push_back(arrival.at_us - it->second);
      }
    }
    if (got == expected && s.out_of_order == 0 && !s.ended_early) ++out.complete;
    out.out_of_order += s.out_of_order;
  }
  std::sort(out.latencies.begin(), out.latencies.end());
  return out;
}

// Phases a b a b ... a on the running coordinator, ingest never pausing: a
// with no subscriber, b with o.subscribers connected and receiving. Prints
// each phase and the ratios; returns false when an event of a b phase did not
// reach every subscriber, in order.
bool alternate(const WatchOptions& o, int port, pid_t coordinator_pid, const std::string& db_url,
               const std::atomic<uint64_t>& acked) {
  pqxx::connection db(db_url);
  auto query = [&](const std::string& sql) { return pqxx::read_transaction(db).exec(sql); };
  auto max_event_id = [&] { return query("SELECT coalesce(max(id), 0) FROM incident_events")[0][0].as<int64_t>(); };
  auto events_between = [&](int64_t after, int64_t upto) {  // (after, upto]
    return query(fmt::format("SELECT count(*) FROM incident_events WHERE id > {} AND id <= {}", after, upto))[0][0]
        .as<size_t>();
  };
  auto wait_until = [](const auto& done, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  };
  const PhaseMeter meter(acked, coordinator_pid, o.seconds);
  std::vector<double> without, with;  // results/s of the a and of the b phases
  std::vector<int64_t> latencies;     // µs, every delivery of every b phase
  bool every_event_everywhere = true;
  // Streams started and the database's first commits behind us.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (int phase = 1; phase <= 2 * o.rounds + 1; ++phase) {
    if (phase % 2 == 1) {
      const int64_t first = max_event_id();
      const auto measured = meter.measure(phase, 0);
      without.push_back(measured.rate);
      std::printf("phase %d a: no subscribers     %8.0f results/s; %zu events; %s\n", phase, without.back(),
                  events_between(first, max_event_id()), measured.cores().c_str());
      continue;
    }
    // From the last stored event: none is missed while they connect.
    const int64_t from = max_event_id();
    const auto connect_start = Clock::now();
    SubscriberProcess child(port, o.token_file, from, o.subscribers, o.channels, o.work_dir + "/watch-report");
    // Live once each has what was stored after they all called.
    int64_t stored_after_calls = 0;
    const bool live = wait_until([&] { return (stored_after_calls = max_event_id()) > from; }, std::chrono::seconds(60)) &&
                      wait_until([&] { return child.caught_up_to() >= stored_after_calls || !child.running(); },
                                 std::chrono::seconds(60)) &&
                      child.running();
    if (!live) {
      throw std::runtime_error(
          fmt::format("phase {}: subscribers not caught up after 60 s; watch-child said: {}", phase, child.output()));
    }
    const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();

    const int64_t first = max_event_id();
    const auto measured = meter.measure(phase, child.pid());
    with.push_back(measured.rate);
    const int64_t last = max_event_id();
    wait_until([&] { return child.caught_up_to() >= last || !child.running(); }, std::chrono::seconds(30));
    const auto subs = child.finish();
    const size_t ended_early =
        static_cast<size_t>(std::count_if(subs.begin(), subs.end(), [](const auto& s) { return s.ended_early; }));

    // Every event since `from` to every subscriber, in order; the latency of
    // those of the measured phase from their commit.
    const size_t expected = events_between(from, last);
    std::unordered_map<int64_t, int64_t> committed_us;
    for (const auto& row : query(fmt::format("SELECT id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1e6)::bigint "
                                              "FROM incident_events WHERE id > {} AND id <= {}",
                                              first, last))) {
      committed_us[row[0].as<int64_t>()] = row[1].as<int64_t>();
    }
    const auto delivered = tally(subs, from, last, expected, committed_us);
    std::printf("phase %d b: %zu subscribers %8.0f results/s; %zu events (%zu since they called, %.1f s to connect); "
                "subscribers that got every one in order: %zu of %zu (ended early %zu, out of order %d); "
                "latency from commit p50 %.1f ms, p99 %.1f ms, max %.1f ms over %zu deliveries; %s\n",
                phase, o.subscribers, with.back(), committed_us.size(), expected, connect_s, delivered.complete, subs.size(),
                ended_early, delivered.out_of_order, bench::percentile(delivered.latencies, 0.50) / 1000.0,
                bench::percentile(delivered.latencies, 0.99) / 1000.0,
                delivered.latencies.empty() ? 0.0 : delivered.latencies.back() / 1000.0, delivered.latencies.size(),
                measured.cores().c_str());
    if (delivered.complete != subs.size()) every_event_everywhere = false;
    latencies.insert(latencies.end(), delivered.latencies.begin(), delivered.latencies.end());
  }

  // Each b against the mean of the a's on either side: a steady drift (the
  // table grows) cancels out.
  double sum = 0;
  std::printf("b / a around it:");
  for (size_t b = 0; b < with.size(); ++b) {
    const double ratio = with[b] / ((without[b] + without[b + 1]) / 2);
    sum += ratio;
    std::printf(" %.3f", ratio);
  }
  std::printf("\nratio with / without subscribers %.3f (mean of the above)\n", sum / static_cast<double>(with.size()));
  std::sort(latencies.begin(), latencies.end());
  std::printf("latency from commit, every b phase: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms "
              "over %zu deliveries\n",
              bench::percentile(latencies, 0.50) / 1000.0, bench::percentile(latencies, 0.90) / 1000.0,
              bench::percentile(latencies, 0.99) / 1000.0, latencies.empty() ? 0.0 : latencies.back() / 1000.0,
              latencies.size());
  return every_event_everywhere;
}

// A fresh PostgreSQL in `dir` with the databases `ingest` and `raw_copy`;
// the URL of its server, without a database. fsync stays on: production
// settings. With `commit_stamps`, PostgreSQL stamps each commit's time
// (track_commit_timestamp, which takes a restart): the events' latency is
// measured from it.
std::string start_postgres(const std::string& script, const std::string& dir, bool commit_stamps) {
  auto url = run(script + " start " + dir);
  if (commit_stamps) {
    {
      pqxx::connection c(url);
      pqxx::nontransaction(c).exec("ALTER SYSTEM SET track_commit_timestamp = on");
    }
    run(script + " stop " + dir);
    url = run(script + " start " + dir);
  }
  pqxx::connection c(url);
  pqxx::nontransaction(c).exec("CREATE DATABASE ingest");
  pqxx::nontransaction(c).exec("CREATE DATABASE raw_copy");
  return url.substr(0, url.rfind('/'));
}

// What the bench stores before the coordinator starts: the probes and their
// tokens, 100 checks for the ingest streams and, with `incident_checks`, the
// incident probe, its checks and a read token for the subscribers; and the
// raw COPY's empty schema with today's partition.
struct Fleet {
  std::vector<std::pair<std::string, std::string>> probe_tokens;  // id, token
  std::vector<int64_t> ingest_check_ids;
  std::string incident_probe_token;
  std::vector<v1::Check> incident_checks;
  std::string api_token;
};

Fleet set_up(const std::string& ingest_url, const std::string& raw_url, size_t probes, size_t incident_checks) {
  Fleet fleet;
  storage::PgStore store(ingest_url, 1);
  store.migrate();
  for (size_t i = 0; i < probes; ++i) {
    auto id = fmt::format("bench-{}", i);
    fleet.probe_tokens.emplace_back(id, store.add_probe(id, "bench"));
  }
  auto create_check = [&](const std::string& name, const std::string& region) {
    v1::Check check;
    check.set_name(name);
    check.set_url("http://127.0.0.1:9/");
    check.mutable_interval()->set_seconds(60);
    check.mutable_timeout()->set_seconds(5);
    check.add_regions(region);  // the coordinator refuses results of a check the region does not run
    if (region == "bench") {
      // The random failures open no incident (one region, never this
      // many in a row): the events come from the incident probe alone.
      check.mutable_correlation()->set_confirm_consecutive(1'000'000);
      check.mutable_correlation()->set_recurring_min(1'000'000);
    }
    auto created = store.create_api_check(check);
    if (created.outcome != storage::ApiCheckWrite::Outcome::kOk) throw std::runtime_error("cannot create " + name);
    return created.check;
  };
  for (int i = 0; i < 100; ++i) fleet.ingest_check_ids.push_back(create_check(fmt::format("ingest-{}", i), "bench").id());
  if (incident_checks > 0) {
    fleet.incident_probe_token = store.add_probe("bench-incidents", "eu");
    fleet.api_token = store.add_api_token("bench", "read");
    for (size_t i = 0; i < incident_checks; ++i) {
      fleet.incident_checks.push_back(create_check(fmt::format("incidents-{}", i), "eu"));
    }
  }
  storage::PgStore raw(raw_url, 1);
  raw.migrate();
  const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  raw.maintain_partitions(today, 1, 30);
  return fleet;
}

// The same rows as the ingest stored, by psql's COPY into the identical
// empty schema: prints both rates, their ratio and bytes per stored result.
void compare_with_raw_copy(const std::string& ingest_url, const std::string& raw_url, const std::string& dir,
                           uint64_t stored, double ingest_seconds) {
  pqxx::connection ingest_db(ingest_url);
  const auto bytes = pqxx::read_transaction(ingest_db)
                         .exec1("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                                "WHERE inhparent = 'results'::regclass")[0]
                         .as<uint64_t>();
  const auto rows_file = dir + "/rows.copy";
  run(fmt::format("psql '{}' -qc \"\\copy (SELECT * FROM results) TO '{}'\"", ingest_url, rows_file));
  const auto copy_start = Clock::now();
  run(fmt::format("psql '{}' -qc \"\\copy results FROM '{}'\"", raw_url, rows_file));
  const double copy_seconds = std::chrono::duration<double>(Clock::now() - copy_start).count();
  const double ingest_rate = static_cast<double>(stored) / ingest_seconds;
  const double copy_rate = static_cast<double>(stored) / copy_seconds;
  std::printf("vantage ingest           %.0f results/s over %.1f s\n", ingest_rate, ingest_seconds);
  std::printf("psql raw COPY, same rows %.0f rows/s over %.2f s\n", copy_rate, copy_seconds);
  std::printf("ratio ingest / raw COPY  %.2f\n", ingest_rate / copy_rate);
  std::printf("bytes per stored result  %.1f (table and indexes)\n",
              static_cast<double>(bytes) / static_cast<double>(stored));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "watch-child") return watch_child(argc - 1, argv + 1);
  CLI::App app{"vantage-ingest-bench: results per second into PostgreSQL, next to psql's raw COPY "
               "or to the same ingest with WatchIncidents subscribers"};
  size_t probes = 16, batch = 500, window = 4, incident_checks = 10;
  int seconds = 20;
  double events_per_second = 20;
  WatchOptions watch;
  bool coordinator_process = false;
  app.add_option("--probes", probes, "concurrent probe streams")->capture_default_str();
  app.add_option("--seconds", seconds, "how long to send (with --subscribers: each phase)")->capture_default_str();
  app.add_option("--batch", batch, "results per message")->capture_default_str();
  app.add_option("--window", window, "messages in flight per stream")->capture_default_str();
  app.add_option("--subscribers", watch.subscribers, "WatchIncidents subscribers in the b phases (0: none)")
      ->capture_default_str();
  app.add_option("--channels", watch.channels, "connections they share (32 streams each at most)")
      ->capture_default_str();
  app.add_option("--rounds", watch.rounds, "b phases, each between two a phases")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--events-per-second", events_per_second,
                 "with --subscribers: the incident probe's batches a second (each opens or resolves one)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--incident-checks", incident_checks, "with --subscribers: checks the outages rotate over")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--coordinator-process", coordinator_process,
               "run the vantage-coordinator binary in a process of its own (built beside this one)");
  CLI11_PARSE(app, argc, argv);
  const bool watching = watch.subscribers > 0;
  watch.seconds = seconds;
  if (watch.subscribers > watch.channels * 32) {
    std::fprintf(stderr, "--subscribers %zu needs at least %zu channels (32 streams each)\n", watch.subscribers,
                 (watch.subscribers + 31) / 32);
    return 2;
  }
  log::init("bench", "warn");
  std::printf("load average at start    %s\n", bench::load_average().c_str());

  char templ[] = "/tmp/vantage-bench-pg-XXXXXX";
  const std::string dir = mkdtemp(templ);
  const std::string script = std::string(VANTAGE_SOURCE_DIR) + "/scripts/local-postgres.sh";
  int exit_code = 0;
  try {
    const auto base = start_postgres(script, dir, watching);
    const auto ingest_url = base + "/ingest";
    const auto raw_url = base + "/raw_copy";
    const auto fleet = set_up(ingest_url, raw_url, probes, watching ? incident_checks : 0);
    if (watching) {
      // A file the subscribers' process reads: not on its command line.
      watch.token_file = dir + "/api-token";
      watch.work_dir = dir;
      std::ofstream(watch.token_file) << fleet.api_token;
    }

    BenchCoordinator coordinator(ingest_url, coordinator_process);

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> acked{0}, incident_probe_acked{0};
    std::vector<std::thread> streams;
    const auto start = Clock::now();
    for (const auto& [id, token] : fleet.probe_tokens) {
      streams.emplace_back(probe_stream, coordinator.port(), id, token, std::cref(fleet.ingest_check_ids), batch,
                           window, std::cref(stop), std::ref(acked));
    }
    if (watching) {
      streams.emplace_back(incident_driver, coordinator.port(), fleet.incident_probe_token, std::cref(fleet.incident_checks),
                           events_per_second, std::cref(stop), std::ref(incident_probe_acked));
    }
    try {
      if (watching) {
        if (!alternate(watch, coordinator.port(), coordinator.pid(), ingest_url, acked)) exit_code = 1;
      } else {
        for (int s = 1; s <= seconds; ++s) {
          std::this_thread::sleep_for(std::chrono::seconds(1));
          std::fprintf(stderr, "\r%2d/%d s: %llu results stored", s, seconds,
                       static_cast<unsigned long long>(acked.load()));
        }
        std::fprintf(stderr, "\n");
      }
    } catch (...) {
      stop = true;
      for (auto& t : streams) t.join();
      throw;
    }
    stop = true;
    for (auto& t : streams) t.join();
    const double ingest_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    coordinator.shutdown();

    pqxx::connection ingest_db(ingest_url);
    const auto stored = pqxx::read_transaction(ingest_db).exec1("SELECT count(*) FROM results")[0].as<uint64_t>();
    const uint64_t sent_and_acked = acked.load() + incident_probe_acked.load();
    if (!watching) {
      std::printf("probe streams            %zu (batches of %zu, %zu in flight each)\n", probes, batch, window);
      std::printf("results stored           %llu (acknowledged %llu)\n", static_cast<unsigned long long>(stored),
                  static_cast<unsigned long long>(sent_and_acked));
      compare_with_raw_copy(ingest_url, raw_url, dir, stored, ingest_seconds);
    } else {
      std::printf("probe streams %zu (batches of %zu, %zu in flight each) and one opening and resolving incidents; "
                  "results stored %llu over %.1f s\n",
                  probes, batch, window, static_cast<unsigned long long>(stored), ingest_seconds);
    }
    if (stored != sent_and_acked) {
      std::printf("MISMATCH: acknowledged %llu but stored %llu\n", static_cast<unsigned long long>(sent_and_acked),
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
  std::printf("load average at end      %s\n", bench::load_average().c_str());
  return exit_code;
}
