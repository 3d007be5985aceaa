// Correlator throughput on one core: 10,000 checks x 10 regions (one probe
// per region), results in time order as probes would send them, 1 % failing
// (through some colos, with origin legs), next to a baseline measured in the
// same run: the least any correlator does per result (find the check, keep
// the probe's latest result). Reports results per second of both and their
// ratio, and the peak resident memory.
//
//   build/bench/vantage-correlator-bench [--checks 10000] [--regions 10] [--rounds 20]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <unordered_map>

#include "coordinator/correlator.h"

namespace {

using namespace vantage;
using Clock = std::chrono::steady_clock;

// The minimum: per (check, probe) the latest time and verdict.
struct Baseline {
  struct Latest {
    correlation::TimePoint time;
    bool ok = true;
  };
  std::unordered_map<int64_t, std::vector<Latest>> checks;
  uint64_t failing = 0;
  void observe(const correlation::Observation& o, size_t probe_index) {
    auto& latest = checks[o.check_id];
    if (latest.size() <= probe_index) latest.resize(probe_index + 1);
    auto& l = latest[probe_index];
    if (o.time <= l.time) return;
    if (l.ok != o.ok) failing += o.ok ? -1 : 1;
    l = {o.time, o.ok};
  }
};

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-correlator-bench: correlator results per second on one core"};
  int checks = 10'000;
  int regions = 10;
  int rounds = 20;
  double failure_rate = 0.01;
  app.add_option("--checks", checks)->check(CLI::PositiveNumber);
  app.add_option("--regions", regions)->check(CLI::Range(1, 100));
  app.add_option("--rounds", rounds, "intervals simulated (each: every check from every region)")
      ->check(CLI::PositiveNumber);
  app.add_option("--failure-rate", failure_rate)->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> colos{"IAD", "FRA", "SIN", "LHR", "NRT", "SYD", "GRU", "AMS", "ORD", "BOM"};
  std::vector<std::string> region_names, probe_names;
  for (int r = 0; r < regions; ++r) {
    region_names.push_back(fmt::format("region-{}", r));
    probe_names.push_back(fmt::format("probe-{}", r));
  }

  // Inputs built before timing: the benchmark measures the correlator only.
  std::mt19937 rng(42);
  std::bernoulli_distribution fails(failure_rate);
  const auto t0 = correlation::TimePoint(std::chrono::seconds(1'790'000'000));
  const auto interval = std::chrono::seconds(60);
  std::vector<correlation::Observation> observations;
  std::vector<size_t> probe_of;
  observations.reserve(static_cast<size_t>(checks) * regions * rounds);
  for (int round = 0; round < rounds; ++round) {
    for (int c = 0; c < checks; ++c) {
      for (int r = 0; r < regions; ++r) {
        correlation::Observation o;
        o.check_id = c + 1;
        o.probe_id = probe_names[r];
        o.region = region_names[r];
        // Spread over the interval as the probes' jitter would.
        o.time = t0 + interval * round +
                 std::chrono::milliseconds((static_cast<int64_t>(c) * 6'007 + r * 97) % 60'000);
        o.colo = colos[(c + r) % colos.size()];
        o.ok = !fails(rng);
        o.failure_class = o.ok ? v1::FAILURE_CLASS_OK : v1::FAILURE_CLASS_EDGE_ERROR;
        if (!o.ok) {
          o.edge_code = 520;
          o.ray_id = fmt::format("{:016x}-{}", rng(), o.colo);
          o.origin_class = v1::FAILURE_CLASS_OK;
          o.cause_id = "origin_empty_reply";
        }
        observations.push_back(std::move(o));
        probe_of.push_back(static_cast<size_t>(r));
      }
    }
    // Time order, as results arrive.
    const auto begin = observations.end() - static_cast<long>(checks) * regions;
    std::vector<size_t> order(static_cast<size_t>(checks) * regions);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return begin[a].time < begin[b].time; });
    std::vector<correlation::Observation> sorted;
    std::vector<size_t> sorted_probes;
    const size_t base = observations.size() - order.size();
    for (size_t i : order) {
      sorted.push_back(std::move(begin[i]));
      sorted_probes.push_back(probe_of[base + i]);
    }
    std::move(sorted.begin(), sorted.end(), begin);
    std::copy(sorted_probes.begin(), sorted_probes.end(), probe_of.begin() + static_cast<long>(base));
  }
  const long rss_inputs = peak_rss_kib();

  Baseline baseline;
  auto start = Clock::now();
  for (size_t i = 0; i < observations.size(); ++i) baseline.observe(observations[i], probe_of[i]);
  const double baseline_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  correlation::Correlator correlator;
  for (int c = 0; c < checks; ++c) {
    correlator.upsert_check(c + 1, fmt::format("check-{}", c + 1), interval, correlation::Settings{});
  }
  size_t events = 0, rechecks = 0;
  start = Clock::now();
  for (const auto& o : observations) {
    auto out = correlator.observe(o);
    events += out.events.size();
    rechecks += out.rechecks.size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const long rss_after = peak_rss_kib();

  const double n = static_cast<double>(observations.size());
  fmt::print("results: {} ({} checks x {} regions x {} rounds, {:.1f} % failing)\n", observations.size(), checks,
             regions, rounds, failure_rate * 100);
  fmt::print("baseline (latest result per probe): {:.0f} results/s\n", n / baseline_seconds);
  fmt::print("correlator:                         {:.0f} results/s  ({} events, {} re-check requests, {} open)\n",
             n / seconds, events, rechecks, correlator.open_incidents().size());
  fmt::print("ratio correlator / baseline: {:.3f}\n", baseline_seconds / seconds);
  fmt::print("peak RSS: {} MiB with the inputs, {} MiB after correlating (+{} MiB)\n", rss_inputs / 1024,
             rss_after / 1024, (rss_after - rss_inputs) / 1024);
  return 0;
}
