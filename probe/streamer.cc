#include "probe/streamer.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/backoff.h"
#include "common/log.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage::probe {

namespace {

std::shared_ptr<grpc::Channel> make_channel(const StreamerOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls_ca_file.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    // Checked at start-up; read again per stream, so a renewed bundle is
    // picked up. If it went away since, say so rather than trust nothing quietly.
    std::string error;
    auto pem = read_ca_file(options.tls_ca_file, &error);
    if (!pem) log::error("cannot read the coordinator's CA bundle", "error", error);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.value_or("");
    if (!options.tls_client_cert_file.empty()) {
      auto cert = read_pem_file(options.tls_client_cert_file, "--tls-client-cert", "CERTIFICATE", &error);
      if (!cert) log::error("cannot read this probe's client certificate", "error", error);
      auto key = read_pem_file(options.tls_client_key_file, "--tls-client-key", "PRIVATE KEY", &error);
      if (!key) log::error("cannot read this probe's client key", "error", error);
      if (cert && key) {
        ssl.pem_cert_chain = std::move(*cert);
        ssl.pem_private_key = std::move(*key);
      }
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  // Notice a dead coordinator (or a dead path to it) within about 30 s even
  // when no results are flowing.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Our backoff (with jitter) paces reconnects: every stream gets a channel
  // of its own, with its own subchannel, so gRPC's reconnect backoff from an
  // earlier failure cannot add to ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(options.coordinator, credentials, args);
}

}  // namespace

std::string_view grpc_code_name(int code) {
  static constexpr std::string_view kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",       "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(std::size(kNames)) ? kNames[code] : "UNKNOWN";
}

StreamEnd classify_stream_end(int code, bool welcomed) {
  switch (static_cast<grpc::StatusCode>(code)) {
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return StreamEnd::kRefused;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return StreamEnd::kTooLarge;
    case grpc::StatusCode::UNAVAILABLE:
      return welcomed ? StreamEnd::kLost : StreamEnd::kUnreachable;
    // Codes a coordinator ends a stream with (OK: it closed the stream without a reason).
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::UNIMPLEMENTED:
      return StreamEnd::kEnded;
    default:
      return StreamEnd::kFailed;
  }
}

ReconnectPolicy::ReconnectPolicy(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                 std::chrono::milliseconds healthy_session, std::function<double()> uniform)
    : backoff_(initial, max, std::move(uniform)), healthy_session_(healthy_session) {}

std::chrono::milliseconds ReconnectPolicy::after(const Session& session) {
  // A welcome alone proves little: a coordinator that cannot take this
  // probe's results may welcome it and end the stream at once, every time.
  if (session.welcomed && (session.acked || session.lasted >= healthy_session_)) backoff_.reset();
  return backoff_.next();
}

std::optional<std::string> read_pem_file(const std::string& path, std::string_view flag, std::string_view kind,
                                         std::string* error) {
  const std::string named = std::string(flag) + " " + path;
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    *error = named + ": is a directory, not a PEM file";
    return std::nullopt;
  }
  std::ifstream in(path);
  if (!in) {
    *error = named + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream pem;
  pem << in.rdbuf();
  if (in.bad()) {
    *error = named + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  if (pem.str().find(std::string(kind) + "-----") == std::string::npos) {
    *error = named + ": no PEM " + std::string(kind == "CERTIFICATE" ? "certificate" : "private key") + " in the file";
    return std::nullopt;
  }
  return pem.str();
}

std::optional<std::string> read_ca_file(const std::string& path, std::string* error) {
  return read_pem_file(path, "--tls-ca", "CERTIFICATE", error);
}

std::string check_tls_options(const StreamerOptions& options) {
  if (options.tls_client_cert_file.empty() != options.tls_client_key_file.empty()) {
    return "--tls-client-cert and --tls-client-key go together";
  }
  if (!options.tls_client_cert_file.empty() && options.tls_ca_file.empty()) {
    return "--tls-client-cert needs --tls-ca (a client certificate is sent only over TLS)";
  }
  std::string error;
  if (!options.tls_ca_file.empty() && !read_ca_file(options.tls_ca_file, &error)) return error;
  if (!options.tls_client_cert_file.empty() &&
      (!read_pem_file(options.tls_client_cert_file, "--tls-client-cert", "CERTIFICATE", &error) ||
       !read_pem_file(options.tls_client_key_file, "--tls-client-key", "PRIVATE KEY", &error))) {
    return error;
  }
  return {};
}

Streamer::Streamer(StreamerOptions options, Spool& spool, Scheduler& scheduler,
                   std::function<double()> uniform)
    : options_(std::move(options)), spool_(spool), scheduler_(scheduler), uniform_(std::move(uniform)) {}

Streamer::~Streamer() { stop(); }

void Streamer::start() {
  thread_ = std::thread([this] { loop(); });
}

void Streamer::stop() {
  stopping_ = true;
  {
    std::lock_guard lock(mu_);
    if (context_) context_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  state_ = State::kIdle;
}

void Streamer::sleep_interruptibly(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

void Streamer::loop() {
  ReconnectPolicy policy(options_.backoff_initial, options_.backoff_max, options_.healthy_session, uniform_);
  while (!stopping_) {
    run_session();
    if (stopping_) break;
    state_ = State::kBackingOff;
    const auto delay = policy.after(last_session_);
    const auto end = classify_stream_end(last_code_, last_session_.welcomed);
    // Quiet while the same thing keeps happening: the first failure, a
    // different one, and every tenth are worth a line, the rest only in debug.
    const int attempt = policy.failures();
    if (attempt == 1 || attempt % 10 == 0 || end != last_logged_end_) {
      last_logged_end_ = end;
      bool operator_must_act = false;  // refused and oversized do not heal by retrying
      std::string_view message;
      switch (end) {
        case StreamEnd::kRefused:
          operator_must_act = true;
          message = "the coordinator refused this probe; check --probe-id and the token";
          break;
        case StreamEnd::kTooLarge:
          operator_must_act = true;
          message = "a message to or from the coordinator is over gRPC's size limit, retrying";
          break;
        case StreamEnd::kUnreachable: message = "cannot reach the coordinator, retrying"; break;
        case StreamEnd::kLost: message = "lost the connection to the coordinator, retrying"; break;
        case StreamEnd::kEnded: message = "the coordinator ended the stream, retrying"; break;
        case StreamEnd::kFailed: message = "the stream to the coordinator failed, retrying"; break;
      }
      const auto code = grpc_code_name(last_code_);
      if (operator_must_act) {
        log::error(message, "code", code, "error", last_error_, "welcomed", last_session_.welcomed, "probe",
                   options_.probe_id, "coordinator", options_.coordinator, "attempt", attempt, "next_in_ms",
                   delay.count());
      } else {
        log::warn(message, "code", code, "error", last_error_, "welcomed", last_session_.welcomed, "coordinator",
                  options_.coordinator, "attempt", attempt, "next_in_ms", delay.count());
      }
    } else {
      log::debug("retrying", "code", grpc_code_name(last_code_), "error", last_error_, "attempt", attempt,
                 "next_in_ms", delay.count());
    }
    sleep_interruptibly(delay);
  }
}

void Streamer::run_session() {
  state_ = State::kConnecting;
  auto stub = v1::ProbeService::NewStub(make_channel(options_));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + options_.token);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    context_ = &context;
  }
  auto stream = stub->Connect(&context);

  v1::ProbeMessage hello_message;
  auto* hello = hello_message.mutable_hello();
  hello->set_probe_id(options_.probe_id);
  hello->set_region(options_.region);
  hello->set_version(options_.version);
  const auto spooled = spool_.stats();
  hello->set_last_acked_sequence(spooled.acked_sequence);
  hello->set_oldest_unacked_sequence(spooled.oldest_sequence);
  hello->set_accepts_assignment_parts(true);

  std::thread reader;
  std::atomic<bool> reader_done{false};
  std::atomic<bool> acked{false};
  auto welcomed_at = std::chrono::steady_clock::now();
  auto heartbeat_interval = std::chrono::milliseconds(15'000);
  bool welcomed = false;
  if (stream->Write(hello_message)) {
    v1::CoordinatorMessage first;
    if (stream->Read(&first) && first.has_welcome()) {
      welcomed = true;
      welcomed_at = std::chrono::steady_clock::now();
      const auto& welcome = first.welcome();
      spool_.continue_after(welcome.last_stored_sequence());
      spool_.rewind();
      if (welcome.has_heartbeat_interval() && welcome.heartbeat_interval().seconds() > 0) {
        heartbeat_interval = std::chrono::seconds(welcome.heartbeat_interval().seconds());
      }
      ++sessions_;
      state_ = State::kConnected;
      log::info("connected", "coordinator", options_.coordinator, "stored_sequence",
                welcome.last_stored_sequence(), "unacked", spool_.size());
      reader = std::thread([&] {
        v1::CoordinatorMessage message;
        bool assignment_continues = false;  // the last part of an assignment has not come yet
        while (stream->Read(&message)) {
          switch (message.message_case()) {
            case v1::CoordinatorMessage::kAssignment: {
              const bool more = message.assignment().more();
              // Moved out, not copied: the message is done with them. The
              // next part is read once this one is applied.
              scheduler_
                  .assign(std::move(*message.mutable_assignment()->mutable_checks()),
                          /*first=*/!assignment_continues, /*last=*/!more)
                  .wait();
              assignment_continues = more;
              break;
            }
            case v1::CoordinatorMessage::kAssignmentDiff:
              scheduler_.apply(message.assignment_diff());
              break;
            case v1::CoordinatorMessage::kAck:
              spool_.ack(message.ack().sequence());
              acked = true;
              break;
            case v1::CoordinatorMessage::kRecheck:
              scheduler_.recheck(message.recheck().check_id(), message.recheck().request_id());
              break;
            default:
              break;  // heartbeats, and fields added by newer coordinators
          }
        }
        reader_done = true;  // the stream is over: the writer stops too
      });
    }
  }

  if (welcomed) {
    auto last_write = std::chrono::steady_clock::now();
    bool last_full = false;
    while (!stopping_ && !reader_done) {
      if (!last_full) {
        const auto since = std::chrono::steady_clock::now() - last_write;
        if (since < options_.batch_linger) {
          sleep_interruptibly(std::chrono::ceil<std::chrono::milliseconds>(options_.batch_linger - since));
          if (stopping_) break;
        }
      }
      auto batch = spool_.next_unsent(options_.max_batch, options_.batch_wait);
      last_full = batch.size() >= options_.max_batch;
      v1::ProbeMessage message;
      if (!batch.empty()) {
        for (auto& r : batch) *message.mutable_results()->add_results() = std::move(r);
        // Read after the batch was taken: never below its last sequence.
        message.mutable_results()->set_produced_sequence(spool_.stats().last_sequence);
      } else if (std::chrono::steady_clock::now() - last_write >= heartbeat_interval) {
        // The coordinator shows produced minus stored as this probe's backlog.
        message.mutable_heartbeat()->set_produced_sequence(spool_.stats().last_sequence);
      } else {
        continue;
      }
      if (!stream->Write(message)) break;
      last_write = std::chrono::steady_clock::now();
    }
  }
  if (welcomed) {
    // Half-close; a stop cancels so the reader need not wait for the server.
    stream->WritesDone();
    if (stopping_) context.TryCancel();
    reader.join();
  }
  auto status = stream->Finish();
  {
    std::lock_guard lock(mu_);
    context_ = nullptr;
  }
  if (stopping_) return;
  last_code_ = static_cast<int>(status.error_code());
  last_error_ = status.error_message();
  last_session_ = {welcomed, acked.load(),
                   welcomed ? std::chrono::steady_clock::now() - welcomed_at : std::chrono::steady_clock::duration{}};
}

}  // namespace vantage::probe
