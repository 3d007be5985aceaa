// Never lose a result: real processes through the failures of architecture.md
// "Delivery guarantee". Each test ends with every probe stopped gracefully
// and checks that every sequence number each probe produced is stored
// exactly once (Stack::expect_exactly_once prints the counts).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <thread>

#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/proxy.h"

namespace vantage::testing {
namespace {

using std::chrono::seconds;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

void stop_everything(Stack& stack) {
  for (size_t i = 0; i < stack.probe_count(); ++i) {
    EXPECT_EQ(stack.stop_probe(i, SIGTERM), 0) << stack.probe(i).process->output();
  }
  stack.coordinator().signal(SIGTERM);
  auto code = stack.coordinator().wait(seconds(15));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << stack.coordinator().output();
}

bool all_stored_at_least(Stack& stack, int64_t n) {
  for (size_t i = 0; i < stack.probe_count(); ++i) {
    if (stack.stored(i) < n) return false;
  }
  return true;
}

TEST(Faults, CoordinatorKilledMidStream) {
  Stack stack;
  stack.start_coordinator();
  stack.start_probes();
  ASSERT_TRUE(eventually([&] { return all_stored_at_least(stack, 3); }, seconds(30)));

  // SIGKILL: no goodbye to the probes, nothing flushed, commits cut short.
  stack.coordinator().signal(SIGKILL);
  ASSERT_TRUE(stack.coordinator().wait(seconds(10)));
  std::this_thread::sleep_for(seconds(3));
  const auto grpc = "127.0.0.1:" + std::to_string(stack.grpc_port());
  const auto metrics = "127.0.0.1:" + std::to_string(stack.metrics_port());
  stack.start_coordinator(grpc, metrics);
  ASSERT_TRUE(eventually([&] { return stack.coordinator_connections() == 3 && all_stored_at_least(stack, 8); },
                         seconds(40)))
      << stack.coordinator().output();
  stop_everything(stack);
  stack.expect_exactly_once();
}

TEST(Faults, PostgresRestarted) {
  Stack stack;
  stack.start_coordinator();
  stack.start_probes();
  ASSERT_TRUE(eventually([&] { return all_stored_at_least(stack, 3); }, seconds(30)));

  PostgresEnvironment::stop_server();
  std::this_thread::sleep_for(seconds(8));  // probes keep producing; nothing can be stored
  PostgresEnvironment::start_server();
  const auto after_restart = stack.stored(0);
  ASSERT_TRUE(eventually([&] { return stack.stored(0) >= after_restart + 8 && all_stored_at_least(stack, 12); },
                         seconds(60)))
      << stack.coordinator().output();
  EXPECT_NE(stack.coordinator().output().find("database unavailable"), std::string::npos)
      << "the outage is reported: " << stack.coordinator().output();
  stop_everything(stack);
  stack.expect_exactly_once();
}

TEST(Faults, ProbesRestartedAndKilled) {
  Stack stack;
  stack.start_coordinator();
  stack.start_probes();
  ASSERT_TRUE(eventually([&] { return all_stored_at_least(stack, 3); }, seconds(30)));

  // us-1 stops gracefully and comes back; eu-1 is killed mid-flight and comes
  // back to the spool it left on disk.
  EXPECT_EQ(stack.stop_probe(0, SIGTERM), 0);
  EXPECT_EQ(stack.stop_probe(1, SIGKILL), 128 + SIGKILL);
  std::this_thread::sleep_for(seconds(2));
  const auto us_before = stack.stored(0);
  const auto eu_before = stack.stored(1);
  stack.start_probe(0);
  stack.start_probe(1);
  ASSERT_TRUE(eventually([&] { return stack.stored(0) >= us_before + 4 && stack.stored(1) >= eu_before + 4; },
                         seconds(40)));
  stop_everything(stack);
  stack.expect_exactly_once();
  EXPECT_EQ(stack.query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = 'eu-1'"),
            stack.query_int("SELECT max(seq) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = 'eu-1'"))
      << "numbering went on after the kill without reuse or holes";
}

TEST(Faults, NetworkCutForMinutes) {
  // VANTAGE_NETCUT_SECONDS shortens it for a quick local run; the default is two minutes.
  const char* env = std::getenv("VANTAGE_NETCUT_SECONDS");
  const int cut_seconds = env ? std::atoi(env) : 120;
  Stack stack;
  stack.start_coordinator();
  Proxy proxy(static_cast<uint16_t>(stack.grpc_port()));
  const auto through_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  for (size_t i = 0; i < stack.probe_count(); ++i) stack.start_probe(i, through_proxy);
  ASSERT_TRUE(eventually([&] { return all_stored_at_least(stack, 3); }, seconds(30)));

  proxy.cut();
  const auto during = stack.stored(0);
  std::printf("network cut for %d s\n", cut_seconds);
  std::this_thread::sleep_for(seconds(cut_seconds));
  EXPECT_LE(stack.stored(0), during + 2) << "nothing crosses a cut network (a commit may have been in flight)";
  proxy.restore();

  // Everything spooled during the cut arrives.
  ASSERT_TRUE(eventually([&] { return all_stored_at_least(stack, during + cut_seconds); }, seconds(90)))
      << "us-1 " << stack.stored(0) << "\n" << stack.probe(0).process->output();
  stop_everything(stack);
  stack.expect_exactly_once();
}

}  // namespace
}  // namespace vantage::testing
