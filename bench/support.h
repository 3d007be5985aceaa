#pragma once
// What several benchmarks share: running a command, percentiles, the
// machine's load average, and WatchIncidents subscribers that record when
// each event arrived.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "vantage/v1/incident_service.grpc.pb.h"

namespace vantage::bench {

// Runs a shell command; its output (stderr too) without the trailing
// newlines. Throws with the output when the command fails.
inline std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  if (pclose(pipe) != 0) throw std::runtime_error("`" + command + "` failed: " + out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The nearest-rank percentile (0 < p <= 1) of sorted values; 0 when empty.
inline int64_t percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(rank, sorted.size() - 1)];
}

// The 1, 5 and 15-minute load averages, as /proc/loadavg has them: the
// machine is shared, and a figure measured while it was busy is noted so.
inline std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0, five = 0, fifteen = 0;
  in >> one >> five >> fifteen;
  char text[64];
  std::snprintf(text, sizeof text, "%.2f %.2f %.2f", one, five, fifteen);
  return text;
}

// Microseconds since the epoch: comparable with PostgreSQL's timestamps.
inline int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `n` stubs, each on a connection of its own (the coordinator allows 32
// streams per connection).
inline std::vector<std::unique_ptr<v1::IncidentService::Stub>> incident_stubs(int port, size_t n) {
  std::vector<std::unique_ptr<v1::IncidentService::Stub>> stubs;
  for (size_t c = 0; c < n; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("vantage.bench.connection", static_cast<int>(c));  // not shared with the others
    stubs.push_back(v1::IncidentService::NewStub(
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// One WatchIncidents call on gRPC's callback API (as the server serves it),
// so 1,000 of them need no 1,000 threads. Records each event's id and the
// moment it arrived.
class WatchSubscriber final : public grpc::ClientReadReactor<v1::WatchIncidentsResponse> {
 public:
  struct Arrival {
    int64_t event_id;
    int64_t at_us;  // wall_us()
  };

  WatchSubscriber(v1::IncidentService::Stub& stub, const std::string& token, int64_t after_event_id = 0) {
    context_.AddMetadata("authorization", "Bearer " + token);
    request_.set_after_event_id(after_event_id);
    last_ = after_event_id;
    stub.async()->WatchIncidents(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t id = response_.event().event_id();
    arrivals_.push_back({id, wall_us()});
    if (id <= last_) ++out_of_order_;
    last_ = id;
    received_.fetch_add(1);
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }
  void cancel() { context_.TryCancel(); }
  grpc::Status wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return status_;
  }
  size_t received() const { return received_.load(); }
  int64_t last_event_id() const { return last_.load(); }
  // Read only after wait().
  const std::vector<Arrival>& arrivals() const { return arrivals_; }
  int out_of_order() const { return out_of_order_; }  // repeated or going back

 private:
  grpc::ClientContext context_;
  v1::WatchIncidentsRequest request_;
  v1::WatchIncidentsResponse response_;
  std::atomic<int64_t> last_{0};
  int out_of_order_ = 0;
  std::vector<Arrival> arrivals_;
  std::atomic<size_t> received_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

}  // namespace vantage::bench
