#pragma once
// What several benchmarks share: running a command, percentiles, the
// machine's load average, and WatchIncidents subscribers that record when
// each event arrived.

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "vantage/v1/incident_service.pb.h"

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

// CPU time spent so far, in seconds: by one process (its utime and stime in
// /proc/PID/stat, all its threads), and by the whole machine (/proc/stat:
// every state but idle and iowait). Differences over a phase, divided by
// its length, are cores in use.
inline double process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto after_name = text.rfind(')');  // the name may hold spaces
  if (after_name == std::string::npos) return 0;
  std::istringstream fields(text.substr(after_name + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15 of proc(5)
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long value = 0, busy = 0;
  in >> cpu;
  for (int i = 0; i < 8 && in >> value; ++i) {  // user nice system idle iowait irq softirq steal
    if (i != 3 && i != 4) busy += value;
  }
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Microseconds since the epoch: comparable with PostgreSQL's timestamps.
inline int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `n` generic stubs (for WatchSubscriber), each on a connection of its own
// (the coordinator allows 32 streams per connection).
inline std::vector<std::unique_ptr<grpc::GenericStub>> incident_stubs(int port, size_t n) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (size_t c = 0; c < n; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("vantage.bench.connection", static_cast<int>(c));  // not shared with the others
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// The event_id of a serialized WatchIncidentsResponse (its field 1 `event`,
// that message's field 2 `event_id`), read without parsing the rest: 0 when
// the event has none (proto3's default, as a parse gives), -1 when the bytes
// are not a message.
inline int64_t watch_event_id(const uint8_t* data, size_t size) {
  using google::protobuf::internal::WireFormatLite;
  constexpr uint32_t kEventTag = (1 << 3) | WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
  constexpr uint32_t kEventIdTag = (2 << 3) | WireFormatLite::WIRETYPE_VARINT;
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  int64_t event_id = 0;
  while (const uint32_t tag = in.ReadTag()) {
    if (tag != kEventTag) {
      if (!WireFormatLite::SkipField(&in, tag)) return -1;
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return -1;
    const auto limit = in.PushLimit(static_cast<int>(length));
    while (const uint32_t inner = in.ReadTag()) {
      if (inner == kEventIdTag) {
        uint64_t id = 0;
        if (!in.ReadVarint64(&id)) return -1;
        event_id = static_cast<int64_t>(id);  // the last one wins, as in a parse
      } else if (!WireFormatLite::SkipField(&in, inner)) {
        return -1;
      }
    }
    if (!in.ConsumedEntireMessage()) return -1;
    in.PopLimit(limit);
  }
  return in.ConsumedEntireMessage() ? event_id : -1;
}

// A completion queue and the one thread that polls it, for WatchSubscriber:
// each completion is handled on the thread that found it, where gRPC's
// callback API hands each one to another thread.
class CompletionThread {
 public:
  // A completion's tag: what to do with its outcome.
  struct Op {
    std::function<void(bool ok)> done;
  };
  CompletionThread() : thread_([this] { poll(); }) {}
  // After every call on it has finished.
  ~CompletionThread() {
    cq_.Shutdown();
    thread_.join();
  }
  grpc::CompletionQueue* cq() { return &cq_; }

 private:
  void poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) static_cast<Op*>(tag)->done(ok);
  }
  grpc::CompletionQueue cq_;
  std::thread thread_;
};

// One WatchIncidents call as a cheap client makes it: gRPC's asynchronous
// API on the generic stub, reading each response as bytes and taking only
// its event_id, not parsing the incident: on the bench's cores, what the
// subscribers spend is taken from what is measured. Records each event's id
// and the moment it arrived.
class WatchSubscriber {
 public:
  struct Arrival {
    int64_t event_id;
    int64_t at_us;  // wall_us()
  };

  WatchSubscriber(grpc::GenericStub& stub, CompletionThread& poller, const std::string& token,
                  int64_t after_event_id = 0) {
    context_.AddMetadata("authorization", "Bearer " + token);
    v1::WatchIncidentsRequest request;
    request.set_after_event_id(after_event_id);
    const std::string bytes = request.SerializeAsString();
    grpc::Slice slice(bytes);
    request_ = grpc::ByteBuffer(&slice, 1);
    last_ = after_event_id;
    // A server-streaming method is a stream of one request on the wire.
    call_ = stub.PrepareCall(&context_, "/vantage.v1.IncidentService/WatchIncidents", poller.cq());
    // The write and the first read once the call has started: a batch
    // started earlier may ask for what the start's batch has in hand.
    started_.done = [this](bool) {
      call_->WriteLast(request_, grpc::WriteOptions(), &written_);
      call_->Read(&response_, &read_);
    };
    written_.done = [this](bool) { settle(); };
    read_.done = [this](bool ok) { on_read(ok); };
    finished_.done = [this](bool) { settle(); };
    pending_ = 2;  // written, finished (the reads lead to it)
    call_->StartCall(&started_);
  }
  // Its completions refer to it: it goes only once the call has ended.
  ~WatchSubscriber() {
    cancel();
    wait();
  }
  void cancel() { context_.TryCancel(); }
  // Until the call has ended (after cancel(), or when the server ends it).
  grpc::Status wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return pending_ == 0; });
    return status_;
  }
  size_t received() const { return received_.load(); }
  int64_t last_event_id() const { return last_.load(); }
  // Read only after wait().
  const std::vector<Arrival>& arrivals() const { return arrivals_; }
  int out_of_order() const { return out_of_order_; }  // repeated, going back, or not a response

 private:
  void on_read(bool ok) {
    if (!ok) {
      call_->Finish(&status_, &finished_);
      return;
    }
    const int64_t at = wall_us();
    int64_t id = -1;
    grpc::Slice slice;
    if (response_.TrySingleSlice(&slice).ok() || response_.DumpToSingleSlice(&slice).ok()) {
      id = watch_event_id(slice.begin(), slice.size());
    }
    arrivals_.push_back({id, at});
    if (id <= last_) ++out_of_order_;  // also a response that is not a message (-1)
    last_ = id;
    received_.fetch_add(1);
    call_->Read(&response_, &read_);
  }
  void settle() {
    std::lock_guard lock(mu_);
    if (--pending_ == 0) cv_.notify_all();
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  CompletionThread::Op started_, written_, read_, finished_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::atomic<int64_t> last_{0};
  int out_of_order_ = 0;
  std::vector<Arrival> arrivals_;
  std::atomic<size_t> received_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  grpc::Status status_;
};

}  // namespace vantage::bench
