#pragma once
// A raw probe stream for tests of the coordinator: says hello, then a thread
// keeps every message the coordinator sends, with when it arrived.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage::testing {

class RawProbe {
 public:
  struct Received {
    v1::CoordinatorMessage message;
    std::chrono::steady_clock::time_point at;
  };

  RawProbe(int port, const std::string& token, const std::string& id, const std::string& region) {
    stub_ = v1::ProbeService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    context_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub_->Connect(&context_);
    v1::ProbeMessage hello;
    hello.mutable_hello()->set_probe_id(id);
    hello.mutable_hello()->set_region(region);
    hello.mutable_hello()->set_accepts_assignment_parts(true);
    stream_->Write(hello);
    reader_ = std::thread([this] {
      v1::CoordinatorMessage m;
      while (stream_->Read(&m)) {
        std::lock_guard lock(mu_);
        received_.push_back({m, std::chrono::steady_clock::now()});
        cv_.notify_all();
      }
      std::lock_guard lock(mu_);
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~RawProbe() {
    context_.TryCancel();
    reader_.join();
  }

  // Sends a message on the stream (from one thread at a time).
  bool send(const v1::ProbeMessage& message) { return stream_->Write(message); }

  // The next message of the kind, waiting for it at most `timeout`. A diff
  // of phases alone (probes joined or left: coordinator/phases.h) is not a
  // change of checks, and is passed over.
  std::optional<Received> next(bool (v1::CoordinatorMessage::*has)() const, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return next_where(
        [has](const v1::CoordinatorMessage& m) {
          return (m.*has)() && !(m.has_assignment_diff() && phases_alone(m.assignment_diff()));
        },
        timeout);
  }
  // The next message for which `want` holds; those before it are dropped.
  template <class Predicate>
  std::optional<Received> next_where(Predicate want, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    std::optional<Received> found;
    cv_.wait_for(lock, timeout, [&] {
      while (!received_.empty()) {
        auto r = std::move(received_.front());
        received_.pop_front();
        if (want(r.message)) {
          found = std::move(r);
          return true;
        }
      }
      return ended_;
    });
    return found;
  }
  static bool phases_alone(const v1::CheckAssignmentDiff& d) {
    return d.added_size() == 0 && d.updated_size() == 0 && d.removed_check_ids_size() == 0 && d.phases_size() > 0;
  }
  // The checks of the whole assignment sent at connection, by name.
  std::map<std::string, v1::Check> assignment() {
    std::map<std::string, v1::Check> checks;
    for (;;) {
      auto part = next(&v1::CoordinatorMessage::has_assignment);
      if (!part) return checks;
      for (const auto& c : part->message.assignment().checks()) checks[c.name()] = c;
      if (!part->message.assignment().more()) return checks;
    }
  }

 private:
  std::unique_ptr<v1::ProbeService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProbeMessage, v1::CoordinatorMessage>> stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Received> received_;
  bool ended_ = false;
  std::thread reader_;
};

}  // namespace vantage::testing
