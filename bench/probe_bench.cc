// Probe efficiency: checks per CPU-second, CPU microseconds per check and
// peak memory of the real vantage-probe (a child process, fed by an
// in-process fake coordinator), next to Prometheus blackbox_exporter probing
// the same local origin at the same rate (driven the way Prometheus drives
// it, by /probe requests from an in-process load generator), in the same run.
// For each number of checks N, each tool runs one after the other against
// the same fresh vantage-lab origin; each is measured over the same window
// after the same warm-up: its own CPU time (utime + stime) and its peak RSS
// (VmHWM). The fake coordinator and the load generator stand for the other
// side (coordinator, Prometheus) and are not counted.
//
// Before and after in one run: --baseline-probe PATH measures a second
// vantage-probe binary (e.g. one built from an older commit) first, then the
// current one (--probe-bin), then blackbox_exporter (skipped, with a note,
// when it is not installed), and prints the CPU per check of each and the
// ratio current/baseline.
//
//   build/bench/vantage-probe-bench [--checks 1000,10000] [--seconds 60] [--interval 10]
//   build/bench/vantage-probe-bench --baseline-probe /path/to/old/vantage-probe [--checks 1000,10000]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/assignment.h"
#include "common/check_config.h"
#include "tests/support/process.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace v1 = vantage::v1;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kInstallHint = "apt-get install -y --no-install-recommends prometheus-blackbox-exporter";

// ---------------------------------------------------------------------------
// What a child process costs
// ---------------------------------------------------------------------------

using vantage::testing::Process;

// SIGTERM, then (the destructor) SIGKILL if it is still there after `grace`.
void stop(Process& process, std::chrono::milliseconds grace = 10s) {
  process.signal(SIGTERM);
  process.wait(grace);
}

struct Usage {
  double cpu_seconds = 0;  // utime + stime, all threads
  uint64_t peak_rss_kib = 0;  // VmHWM
};

Usage usage_of(pid_t pid) {
  Usage usage;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) throw std::runtime_error(fmt::format("cannot read /proc/{}/stat", pid));
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string s; fields >> s;) f.push_back(s);
  if (f.size() < 13) throw std::runtime_error(fmt::format("unexpected /proc/{}/stat: {}", pid, line));
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  usage.cpu_seconds = static_cast<double>(std::stoull(f[11]) + std::stoull(f[12])) / ticks;
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) usage.peak_rss_kib = std::stoull(line.substr(6));
  }
  return usage;
}

// The 1-, 5- and 15-minute load averages.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string utc_time() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &tm);
  return text;
}

uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

bool can_connect(uint16_t port) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string url_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string origin_url(uint16_t port, size_t i) { return fmt::format("http://127.0.0.1:{}/?c={}", port, i); }

// ---------------------------------------------------------------------------
// The fake coordinator: Welcome, the assignment (in parts), an Ack per batch
// ---------------------------------------------------------------------------

class FakeCoordinator final : public v1::ProbeService::Service {
 public:
  explicit FakeCoordinator(std::vector<v1::Check> checks) : checks_(std::move(checks)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) throw std::runtime_error("the fake coordinator cannot listen on 127.0.0.1");
  }
  ~FakeCoordinator() override { server_->Shutdown(std::chrono::system_clock::now() + 2s); }

  int port() const { return port_; }
  uint64_t sessions() const { return sessions_; }
  uint64_t ok() const { return ok_; }
  uint64_t failed() const { return failed_; }
  uint64_t batches() const { return batches_; }

  grpc::Status Connect(grpc::ServerContext*,
                       grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::ProbeMessage>* stream) override {
    v1::ProbeMessage in;
    if (!stream->Read(&in) || !in.has_hello()) return {grpc::StatusCode::INVALID_ARGUMENT, "Hello first"};
    v1::CoordinatorMessage out;
    auto* welcome = out.mutable_welcome();
    welcome->set_last_stored_sequence(highest_);
    welcome->set_coordinator_version("probe-bench");
    welcome->mutable_heartbeat_interval()->set_seconds(15);
    welcome->set_max_batch_results(500);
    if (!stream->Write(out)) return grpc::Status::OK;
    for (const auto& part : vantage::assignment_messages(checks_, in.hello().accepts_assignment_parts())) {
      if (!stream->Write(part)) return grpc::Status::OK;
    }
    ++sessions_;
    while (stream->Read(&in)) {
      if (!in.has_results()) continue;  // heartbeats
      ++batches_;
      for (const auto& r : in.results().results()) {
        if (r.sequence() <= highest_) continue;  // a replay after a reconnect: counted once
        highest_ = r.sequence();
        ++(r.edge().failure_class() == v1::FAILURE_CLASS_OK ? ok_ : failed_);
      }
      out.Clear();
      out.mutable_ack()->set_sequence(highest_);
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

 private:
  std::vector<v1::Check> checks_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<uint64_t> sessions_{0};
  std::atomic<uint64_t> highest_{0};  // one stream at a time
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> batches_{0};
};

// ---------------------------------------------------------------------------
// The load generator: what Prometheus does with blackbox_exporter
// ---------------------------------------------------------------------------

// For each of N targets, GET /probe?module=http_2xx&target=... once per
// interval, the N spread evenly over it, over a pool of keep-alive
// connections to the exporter; at most `max_in_flight` at once (more are
// counted as skipped). One thread.
class LoadGenerator {
 public:
  LoadGenerator(uint16_t exporter_port, uint16_t origin_port, size_t targets, std::chrono::nanoseconds interval,
                size_t max_in_flight)
      : exporter_({asio::ip::make_address("127.0.0.1"), exporter_port}),
        host_(fmt::format("127.0.0.1:{}", exporter_port)),
        interval_(interval),
        max_in_flight_(max_in_flight) {
    paths_.reserve(targets);
    for (size_t i = 0; i < targets; ++i) {
      paths_.push_back("/probe?module=http_2xx&target=" + url_encode(origin_url(origin_port, i)));
    }
  }
  ~LoadGenerator() { stop(); }

  void start() {
    asio::co_spawn(io_, dispatch(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint64_t ok() const { return ok_; }
  uint64_t failed() const { return failed_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t connections() const { return connections_; }

 private:
  struct Connection {
    explicit Connection(asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
  };

  asio::awaitable<void> dispatch() {
    asio::steady_timer timer(io_);
    const auto start = Clock::now();
    const auto n = static_cast<int64_t>(paths_.size());
    for (int64_t k = 0;; ++k) {
      const auto due = start + std::chrono::nanoseconds(interval_.count() * k / n);
      if (due > Clock::now()) {
        timer.expires_at(due);
        boost::system::error_code ignored;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
      if (in_flight_ >= max_in_flight_) {
        ++skipped_;
        continue;
      }
      ++in_flight_;
      asio::co_spawn(io_, probe(static_cast<size_t>(k % n)), asio::detached);
    }
  }

  asio::awaitable<void> probe(size_t target) {
    boost::system::error_code ec;
    std::unique_ptr<Connection> connection;
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    } else {
      connection = std::make_unique<Connection>(io_);
      connection->stream.expires_after(10s);
      co_await connection->stream.async_connect(exporter_, asio::redirect_error(asio::use_awaitable, ec));
      ++connections_;
    }
    http::request<http::empty_body> request(http::verb::get, paths_[target], 11);
    request.set(http::field::host, host_);
    request.set(http::field::user_agent, "vantage-probe-bench (standing for Prometheus)");
    request.set("X-Prometheus-Scrape-Timeout-Seconds", "10");
    http::response<http::string_body> response;
    if (!ec) {
      connection->stream.expires_after(30s);
      co_await http::async_write(connection->stream, request, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec) {
      co_await http::async_read(connection->stream, connection->buffer, response,
                                asio::redirect_error(asio::use_awaitable, ec));
    }
    const bool ok = !ec && response.result_int() == 200 &&
                    response.body().find("\nprobe_success 1\n") != std::string::npos;
    ++(ok ? ok_ : failed_);
    if (!ec && response.keep_alive()) idle_.push_back(std::move(connection));
    --in_flight_;
  }

  asio::io_context io_;
  tcp::endpoint exporter_;
  std::string host_;
  std::chrono::nanoseconds interval_;
  size_t max_in_flight_;
  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<Connection>> idle_;  // io_ thread only
  size_t in_flight_ = 0;                           // io_ thread only
  std::atomic<uint64_t> ok_{0}, failed_{0}, skipped_{0}, connections_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// One phase: a process measured over a window
// ---------------------------------------------------------------------------

struct Phase {
  std::string tool;
  size_t checks = 0;
  double intended = 0;  // checks/s
  double seconds = 0;   // the window
  uint64_t ok = 0;      // successful checks in the window
  uint64_t failed = 0;
  double cpu_seconds = 0;
  uint64_t peak_rss_kib = 0;
  double achieved() const { return static_cast<double>(ok) / seconds; }
  double per_cpu_second() const { return static_cast<double>(ok) / cpu_seconds; }
  // CPU microseconds per successful check (issue 13's figure).
  double us_per_check() const { return cpu_seconds * 1e6 / static_cast<double>(ok); }
  double kib_per_check() const { return static_cast<double>(peak_rss_kib) / static_cast<double>(checks); }
};

struct Counts {
  uint64_t ok, failed;
};

// Warm-up, then the window: CPU time and successful checks are deltas over
// the window; the peak RSS is the process's whole life, read at its end.
template <typename CountFn>
Phase measure(const std::string& tool, Process& process, size_t checks, double intended, std::chrono::seconds warmup,
              int seconds, CountFn count) {
  auto progress = [&](const char* what, long s, long of) {
    std::fprintf(stderr, "\r%-20s N=%-6zu %s %3ld/%ld s   ", tool.c_str(), checks, what, s, of);
  };
  auto at = Clock::now();
  for (long s = 1; s <= warmup.count(); ++s) {
    std::this_thread::sleep_until(at += 1s);
    if (!process.running()) throw std::runtime_error(tool + " exited:\n" + process.output());
    progress("warm-up", s, warmup.count());
  }
  const auto u0 = usage_of(process.pid());
  const Counts c0 = count();
  const auto t0 = Clock::now();
  const auto started_at = utc_time();
  const auto load_at_start = load_average();
  at = t0;
  for (long s = 1; s <= seconds; ++s) {
    std::this_thread::sleep_until(at += 1s);
    if (!process.running()) throw std::runtime_error(tool + " exited:\n" + process.output());
    progress("measuring", s, seconds);
  }
  const auto u1 = usage_of(process.pid());
  const Counts c1 = count();
  const auto t1 = Clock::now();
  // The machine is shared: when the window ran and how busy it was.
  std::fprintf(stderr, "\n%s N=%zu: window %s to %s UTC, load average %s at its start, %s at its end\n",
               tool.c_str(), checks, started_at.c_str(), utc_time().c_str(), load_at_start.c_str(),
               load_average().c_str());
  Phase phase;
  phase.tool = tool;
  phase.checks = checks;
  phase.intended = intended;
  phase.seconds = std::chrono::duration<double>(t1 - t0).count();
  phase.ok = c1.ok - c0.ok;
  phase.failed = c1.failed - c0.failed;
  phase.cpu_seconds = u1.cpu_seconds - u0.cpu_seconds;
  phase.peak_rss_kib = u1.peak_rss_kib;
  return phase;
}

struct Settings {
  std::string probe_bin, lab_bin, blackbox_bin;
  std::string baseline_probe_bin;  // empty: no baseline
  bool blackbox = true;            // false: not installed, skipped (only with a baseline)
  std::chrono::milliseconds interval;
  std::chrono::milliseconds timeout;  // 5 s, or the interval when shorter
  std::chrono::seconds warmup;
  int seconds;
  size_t max_in_flight;
  std::string dir;  // temp files
};

// `tool` names the phase; `probe_bin` is the vantage-probe binary measured.
Phase run_vantage(const Settings& s, const std::string& tool, const std::string& probe_bin, size_t n,
                  uint16_t origin_port) {
  std::vector<v1::Check> checks;
  checks.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    v1::Check check;
    check.set_name(fmt::format("bench-{}", i));
    check.set_id(static_cast<int64_t>(i) + 1);
    check.set_version(1);
    check.set_url(origin_url(origin_port, i));
    check.set_method("GET");
    *check.mutable_interval() = vantage::to_duration(s.interval);
    *check.mutable_timeout() = vantage::to_duration(s.timeout);
    // As the coordinator does: defaults filled (expected status 200-399).
    if (std::string problem; !vantage::normalize_check(check, &problem)) throw std::runtime_error(problem);
    checks.push_back(std::move(check));
  }
  FakeCoordinator coordinator(std::move(checks));
  Process probe({probe_bin, "--coordinator", fmt::format("127.0.0.1:{}", coordinator.port()), "--probe-id", "bench",
                 "--region", "bench", "--keepalive-interval", "0"},
                {{"VANTAGE_PROBE_TOKEN", "bench-token"}});
  const auto deadline = Clock::now() + 15s;
  while (coordinator.sessions() == 0) {
    if (!probe.running()) throw std::runtime_error(tool + " exited:\n" + probe.output());
    if (Clock::now() > deadline) throw std::runtime_error(tool + " did not connect:\n" + probe.output());
    std::this_thread::sleep_for(10ms);
  }
  // For profiling a phase by hand, e.g. perf record -g -p PID -- sleep 20.
  std::fprintf(stderr, "%s: %s, pid %d\n", tool.c_str(), probe_bin.c_str(), static_cast<int>(probe.pid()));
  const double intended = static_cast<double>(n) * 1000.0 / static_cast<double>(s.interval.count());
  uint64_t batches0 = 0;
  auto phase = measure(tool, probe, n, intended, s.warmup, s.seconds, [&] {
    const auto batches = coordinator.batches();
    if (batches0 == 0) batches0 = batches;
    return Counts{coordinator.ok(), coordinator.failed()};
  });
  std::fprintf(stderr, "note: %s sent %.1f results per ResultBatch in the window\n", tool.c_str(),
               static_cast<double>(phase.ok + phase.failed) /
                   static_cast<double>(std::max<uint64_t>(1, coordinator.batches() - batches0)));
  if (coordinator.sessions() != 1) {
    std::fprintf(stderr, "note: %s connected %llu times (results counted once)\n", tool.c_str(),
                 static_cast<unsigned long long>(coordinator.sessions()));
  }
  stop(probe);
  return phase;
}

Phase run_blackbox(const Settings& s, size_t n, uint16_t origin_port) {
  const auto config = fmt::format("{}/blackbox.yml", s.dir);
  std::ofstream(config) << "modules:\n"
                           "  http_2xx:\n"
                           "    prober: http\n"
                        << fmt::format("    timeout: {}ms\n", s.timeout.count())
                        << "    http:\n"
                           "      method: GET\n"
                           "      preferred_ip_protocol: ip4\n";
  const auto port = free_port();
  Process exporter({s.blackbox_bin, "--config.file=" + config, fmt::format("--web.listen-address=127.0.0.1:{}", port)});
  const auto deadline = Clock::now() + 15s;
  while (!can_connect(port)) {
    if (!exporter.running()) throw std::runtime_error("blackbox_exporter exited:\n" + exporter.output());
    if (Clock::now() > deadline) throw std::runtime_error("blackbox_exporter did not listen:\n" + exporter.output());
    std::this_thread::sleep_for(20ms);
  }
  LoadGenerator load(port, origin_port, n, s.interval, s.max_in_flight);
  load.start();
  const double intended = static_cast<double>(n) * 1000.0 / static_cast<double>(s.interval.count());
  auto phase = measure("blackbox_exporter", exporter, n, intended, s.warmup, s.seconds,
                       [&] { return Counts{load.ok(), load.failed()}; });
  load.stop();
  if (load.skipped() > 0) {
    std::fprintf(stderr, "note: the load generator skipped %llu probes (%zu already in flight)\n",
                 static_cast<unsigned long long>(load.skipped()), s.max_in_flight);
  }
  std::fprintf(stderr, "note: %llu keep-alive connections to blackbox_exporter\n",
               static_cast<unsigned long long>(load.connections()));
  stop(exporter);
  return phase;
}

std::string mib(uint64_t kib) { return fmt::format("{:.1f} MiB", static_cast<double>(kib) / 1024.0); }

void print_row(const Phase& p) {
  std::printf("%7zu  %-18s %10.1f %10.1f %7llu %8.2f %12.0f %12.1f %11s %10.2f\n", p.checks, p.tool.c_str(),
              p.intended, p.achieved(), static_cast<unsigned long long>(p.failed), p.cpu_seconds, p.per_cpu_second(),
              p.us_per_check(), mib(p.peak_rss_kib).c_str(), p.kib_per_check());
}

// One number of checks: the phases run for it (baseline and blackbox optional).
struct Row {
  std::optional<Phase> baseline;
  Phase vantage;
  std::optional<Phase> blackbox;
};

std::string self_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-probe-bench: checks per CPU-second and peak memory of vantage-probe, next to "
               "blackbox_exporter probing the same local origin at the same rate"};
  std::vector<size_t> sizes{1000, 10000};
  int seconds = 60;
  double interval_seconds = 10;
  double warmup_seconds = 0;
  size_t max_in_flight = 256;
  // The build tree: bench/ sits next to probe/ and tools/lab/.
  const std::filesystem::path build = std::filesystem::path(self_dir()).parent_path();
  Settings settings;
  settings.probe_bin = (build / "probe" / "vantage-probe").string();
  settings.lab_bin = (build / "tools" / "lab" / "vantage-lab").string();
  settings.blackbox_bin = "/usr/bin/prometheus-blackbox-exporter";
  app.add_option("--checks", sizes, "numbers of checks, one phase of each tool per number")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--seconds", seconds, "measured seconds per phase")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--interval", interval_seconds, "each check's interval, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--warmup", warmup_seconds, "seconds before measuring (default: one interval)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-in-flight", max_in_flight,
                 "the load generator's /probe requests in flight at most (vantage-probe's --max-concurrent is 256)")
      ->capture_default_str();
  app.add_option("--probe-bin", settings.probe_bin, "vantage-probe")->capture_default_str();
  app.add_option("--baseline-probe", settings.baseline_probe_bin,
                 "a second vantage-probe binary (e.g. an older build) measured first for each N, on the same origin "
                 "and window; prints CPU per check of both and current/baseline; blackbox_exporter becomes optional");
  app.add_option("--lab-bin", settings.lab_bin, "vantage-lab")->capture_default_str();
  app.add_option("--blackbox-bin", settings.blackbox_bin, "blackbox_exporter")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<std::pair<const char*, std::string>> binaries{{"--probe-bin", settings.probe_bin},
                                                             {"--lab-bin", settings.lab_bin}};
  if (!settings.baseline_probe_bin.empty()) binaries.emplace_back("--baseline-probe", settings.baseline_probe_bin);
  for (const auto& [flag, path] : binaries) {
    if (access(path.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "vantage-probe-bench: %s not found (%s): build it (cmake --build BUILD --target vantage-probe "
                   "vantage-lab) or pass %s\n",
                   path.c_str(), std::strerror(errno), flag);
      return 2;
    }
  }
  if (access(settings.blackbox_bin.c_str(), X_OK) != 0) {
    if (settings.baseline_probe_bin.empty()) {
      std::fprintf(stderr, "vantage-probe-bench: %s not found: install it with `%s`\n", settings.blackbox_bin.c_str(),
                   kInstallHint);
      return 2;
    }
    std::fprintf(stderr, "note: %s not found, blackbox_exporter skipped (install it with `%s`)\n",
                 settings.blackbox_bin.c_str(), kInstallHint);
    settings.blackbox = false;
  }
  settings.interval = std::chrono::milliseconds(static_cast<long long>(interval_seconds * 1000));
  settings.timeout = std::min(settings.interval, std::chrono::milliseconds(5000));
  settings.warmup = std::chrono::seconds(
      static_cast<long long>(std::ceil(warmup_seconds > 0 ? warmup_seconds : interval_seconds)));
  settings.seconds = seconds;
  settings.max_in_flight = max_in_flight;
  char templ[] = "/tmp/vantage-probe-bench-XXXXXX";
  if (!mkdtemp(templ)) {
    std::perror("mkdtemp");
    return 1;
  }
  settings.dir = templ;

  {
    std::ifstream loadavg("/proc/loadavg");
    std::string load;
    std::getline(loadavg, load);
    std::fprintf(stderr, "%ld CPUs, load average at start: %s\n", sysconf(_SC_NPROCESSORS_ONLN), load.c_str());
  }
  std::vector<Row> results;
  int exit_code = 0;
  try {
    for (const auto n : sizes) {
      if (n == 0) throw std::runtime_error("--checks: each number must be at least 1");
      Process lab({settings.lab_bin, "--listen", "127.0.0.1:0"});
      if (!lab.wait_for_output("msg=listening", 10s)) throw std::runtime_error("vantage-lab did not start:\n" + lab.output());
      const auto origin_port = static_cast<uint16_t>(vantage::testing::number_after(lab.output(), "address=127.0.0.1:"));
      Row row;
      if (!settings.baseline_probe_bin.empty()) {
        row.baseline = run_vantage(settings, "vantage (baseline)", settings.baseline_probe_bin, n, origin_port);
      }
      row.vantage = run_vantage(settings, "vantage-probe", settings.probe_bin, n, origin_port);
      if (settings.blackbox) row.blackbox = run_blackbox(settings, n, origin_port);
      results.push_back(std::move(row));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nvantage-probe-bench: %s\n", e.what());
    exit_code = 1;
  }
  std::error_code ignored;
  std::filesystem::remove_all(settings.dir, ignored);
  if (results.empty()) return exit_code;

  std::printf("interval %.1f s, timeout %.1f s, warm-up %lld s, measured %d s per phase; plain HTTP to a local "
              "vantage-lab; failed = checks that did not succeed\n",
              interval_seconds, static_cast<double>(settings.timeout.count()) / 1000.0,
              static_cast<long long>(settings.warmup.count()), seconds);
  std::printf("%7s  %-18s %10s %10s %7s %8s %12s %12s %11s %10s\n", "checks", "tool", "intended/s", "achieved/s",
              "failed", "CPU s", "checks/CPU-s", "CPU us/check", "peak RSS", "KiB/check");
  for (const auto& row : results) {
    if (row.baseline) print_row(*row.baseline);
    print_row(row.vantage);
    if (row.blackbox) print_row(*row.blackbox);
  }
  std::printf("\n");
  auto warn_short = [](const Phase& p) {
    if (p.achieved() < 0.9 * p.intended) {
      std::printf("WARNING: %s at N=%zu achieved %.1f checks/s of the intended %.1f (more than 10 %% short)\n",
                  p.tool.c_str(), p.checks, p.achieved(), p.intended);
    }
    if (p.failed > 0) {
      std::printf("WARNING: %s at N=%zu: %llu checks failed in the window\n", p.tool.c_str(), p.checks,
                  static_cast<unsigned long long>(p.failed));
    }
  };
  for (const auto& row : results) {
    const auto& v = row.vantage;
    if (row.baseline) {
      const auto& base = *row.baseline;
      std::printf("N=%-6zu CPU per check: baseline %.1f us, current %.1f us, current/baseline %.3f; peak RSS "
                  "current/baseline %.3f\n",
                  v.checks, base.us_per_check(), v.us_per_check(), v.us_per_check() / base.us_per_check(),
                  static_cast<double>(v.peak_rss_kib) / static_cast<double>(base.peak_rss_kib));
    }
    if (row.blackbox) {
      const auto& b = *row.blackbox;
      const double cpu_ratio = v.per_cpu_second() / b.per_cpu_second();
      const double memory_ratio = b.kib_per_check() / v.kib_per_check();
      std::printf("N=%-6zu checks per CPU-second vantage/blackbox %.2fx (target >= 3x: %s); memory per check "
                  "blackbox/vantage %.2fx (target >= 3x: %s)\n",
                  v.checks, cpu_ratio, cpu_ratio >= 3 ? "met" : "MISSED", memory_ratio,
                  memory_ratio >= 3 ? "met" : "MISSED");
    }
    if (v.checks == 10000) {
      std::printf("N=%-6zu CPU per check vantage %.1f us (issue 13 target <= 80 us: %s)\n", v.checks,
                  v.us_per_check(), v.us_per_check() <= 80 ? "met" : "MISSED");
    }
    if (row.baseline) warn_short(*row.baseline);
    warn_short(v);
    if (row.blackbox) warn_short(*row.blackbox);
  }
  // The fixed size of each process (its libraries, runtime, threads) weighs
  // on peak RSS / N; between two sizes it cancels out, leaving what each
  // added check costs.
  for (size_t i = 1; i < results.size(); ++i) {
    const auto& r0 = results[i - 1];
    const auto& r1 = results[i];
    const double added = static_cast<double>(r1.vantage.checks) - static_cast<double>(r0.vantage.checks);
    if (added <= 0) continue;
    auto per_added = [added](const Phase& from, const Phase& to) {
      return (static_cast<double>(to.peak_rss_kib) - static_cast<double>(from.peak_rss_kib)) / added;
    };
    const double v_kib = per_added(r0.vantage, r1.vantage);
    std::printf("N=%zu -> %zu: peak RSS per added check vantage %.2f KiB", r0.vantage.checks, r1.vantage.checks, v_kib);
    if (r0.baseline && r1.baseline) std::printf(", baseline %.2f KiB", per_added(*r0.baseline, *r1.baseline));
    if (r0.blackbox && r1.blackbox) {
      const double b_kib = per_added(*r0.blackbox, *r1.blackbox);
      std::printf(", blackbox %.2f KiB, blackbox/vantage %.2fx", b_kib, v_kib > 0 ? b_kib / v_kib : 0.0);
    }
    std::printf("\n");
  }
  return exit_code;
}
