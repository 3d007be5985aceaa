#pragma once
// What the end-to-end tests with a real Prometheus share (alerting_test,
// dashboards_test): a scratch directory for the servers' files, the edge
// stack started with results stored from every probe, and the scrape job of
// its coordinator.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "tests/e2e/stack.h"
#include "tests/support/process.h"
#include "tests/support/prometheus.h"

namespace vantage::testing {

// A new directory named `name-XXXXXX` in the system's temporary directory.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::string pattern = (std::filesystem::temp_directory_path() / (name + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
  return pattern;
}

// Starts the coordinator and the probes of `stack`, and waits until each
// probe has more than one result stored (a fatal failure after 30 s).
inline void start_with_results(Stack& stack) {
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  stack.start_probes();
  const bool stored = eventually(
      [&] { return stack.stored(0) > 1 && stack.stored(1) > 1 && stack.stored(2) > 1; }, std::chrono::seconds(30));
  if (stored) return;
  std::string probes;
  for (size_t i = 0; i < stack.probe_count(); ++i) {
    auto& probe = stack.probe(i);
    probes += "--- " + probe.id + ": " + std::to_string(stack.stored(i)) + " stored\n" +
              (probe.process ? probe.process->output() : std::string("(not running)\n"));
  }
  FAIL() << "not every probe had two results stored within 30 s\n--- coordinator\n"
         << stack.coordinator().output() << probes;
}

// The coordinator's metrics, under the job name the alert rules use.
inline ScrapeJob coordinator_scrape_job(const Stack& stack) {
  return ScrapeJob{"vantage-coordinator", {stack.metrics_port()}, {}};
}

}  // namespace vantage::testing
