#include "probe/streamer.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/backoff.h"
#include "common/log.h"
#include "common/option_error.h"
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
      auto cert = read_pem_file(options.tls_client_cert_file, "CERTIFICATE", &error);
      if (!cert) log::error("cannot read this probe's client certificate", "error", error);
      auto key = read_pem_file(options.tls_client_key_file, "PRIVATE KEY", &error);
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

std::optional<std::string> read_pem_file(const std::string& path, std::string_view kind, std::string* error) {
  const std::string what = kind == "CERTIFICATE" ? "certificate" : "private key";
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    *error = path + ": is a directory, not a PEM file";
    return std::nullopt;
  }
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream pem;
  pem << in.rdbuf();
  if (in.bad()) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return std::nullopt;
  }
  if (pem.str().find(std::string(kind) + "-----") == std::string::npos) {
    *error = path + ": no PEM " + what + " in the file";
    return std::nullopt;
  }
  return pem.str();
}

std::optional<std::string> read_ca_file(const std::string& path, std::string* error) {
  return read_pem_file(path, "CERTIFICATE", error);
}

void check_tls_options(const StreamerOptions& options) {
  if (options.tls_client_cert_file.empty() != options.tls_client_key_file.empty()) {
    const char* missing =
        options.tls_client_cert_file.empty() ? "stream.tls_client_cert_file" : "stream.tls_client_key_file";
    throw OptionError(missing, "a client certificate and its key go together: one is missing");
  }
  if (!options.tls_client_cert_file.empty() && options.tls_ca_file.empty()) {
    throw OptionError("stream.tls_ca_file",
                      "a client certificate needs the coordinator's CA bundle (it is sent only over TLS)");
  }
  std::string error;
  if (!options.tls_ca_file.empty() && !read_ca_file(options.tls_ca_file, &error)) {
    throw OptionError("stream.tls_ca_file", "CA bundle " + error);
  }
  if (options.tls_client_cert_file.empty()) return;
  if (!read_pem_file(options.tls_client_cert_file, "CERTIFICATE", &error)) {
    throw OptionError("stream.tls_client_cert_file", "client certificate " + error);
  }
  if (!read_pem_file(options.tls_client_key_file, "PRIVATE KEY", &error)) {
    throw OptionError("stream.tls_client_key_file", "client key " + error);
  }
}

Streamer::Streamer(StreamerOptions options, Spool& spool, AssignmentSink& sink, Timers& timers,
                   std::function<double()> uniform)
    : options_(std::move(options)), spool_(spool), sink_(sink), timers_(timers), uniform_(std::move(uniform)) {}

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
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  state_ = State::kIdle;
}

bool Streamer::sleep_until(TimePoint deadline) {
  std::unique_lock lock(mu_);
  return !wake_.wait_until(lock, deadline, [&] { return stopping_.load(); });
}

bool Streamer::wait_until_drained(TimePoint deadline) {
  std::unique_lock lock(mu_);
  return wake_.wait_until(lock, deadline, [&] { return spool_.size() == 0; });
}

void Streamer::loop() {
  ReconnectPolicy policy(options_.backoff_initial, options_.backoff_max, options_.healthy_session, uniform_);
  while (!stopping_) {
    run_session();
    if (stopping_) break;
    state_ = State::kBackingOff;
    const auto delay = policy.after(last_session_);
    log_stream_end(policy, delay);
    sleep_until(now() + delay);
  }
}

void Streamer::log_stream_end(const ReconnectPolicy& policy, std::chrono::milliseconds delay) {
  const auto end = classify_stream_end(last_code_, last_session_.welcomed);
  // Quiet while the same thing keeps happening: the first failure, a
  // different one, and every tenth are worth a line, the rest only in debug.
  const int attempt = policy.failures();
  if (attempt != 1 && attempt % 10 != 0 && end == last_logged_end_) {
    log::debug("retrying", "code", grpc_code_name(last_code_), "error", last_error_, "attempt", attempt,
               "next_in_ms", delay.count());
    return;
  }
  last_logged_end_ = end;
  bool operator_must_act = false;  // refused and oversized do not heal by retrying
  std::string_view message;
  switch (end) {
    case StreamEnd::kRefused:
      operator_must_act = true;
      message = "the coordinator refused this probe; check its probe id and token";
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
}

struct Streamer::Session {
  std::unique_ptr<v1::ProbeService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProbeMessage, v1::CoordinatorMessage>> stream;
  bool welcomed = false;
  TimePoint welcomed_at{};
  std::chrono::milliseconds heartbeat_interval{15'000};  // until the welcome says
  std::atomic<bool> reader_done{false};                  // the stream is over: the writer stops too
  std::atomic<bool> acked{false};                        // at least one ack came
};

void Streamer::run_session() {
  state_ = State::kConnecting;
  Session session;
  session.stub = v1::ProbeService::NewStub(make_channel(options_));
  session.context.AddMetadata("authorization", "Bearer " + options_.token);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    context_ = &session.context;
  }
  if (handshake(session)) {
    std::thread reader([&] { read_messages(session); });
    write_messages(session);
    // Half-close; a stop cancels so the reader need not wait for the server.
    session.stream->WritesDone();
    if (stopping_) session.context.TryCancel();
    reader.join();
  }
  const auto status = session.stream->Finish();
  {
    std::lock_guard lock(mu_);
    context_ = nullptr;
  }
  if (stopping_) return;
  last_code_ = static_cast<int>(status.error_code());
  last_error_ = status.error_message();
  last_session_ = {session.welcomed, session.acked.load(),
                   session.welcomed ? now() - session.welcomed_at : std::chrono::steady_clock::duration{}};
}

bool Streamer::handshake(Session& session) {
  session.stream = session.stub->Connect(&session.context);
  v1::ProbeMessage hello_message;
  auto* hello = hello_message.mutable_hello();
  hello->set_probe_id(options_.probe_id);
  hello->set_region(options_.region);
  hello->set_version(options_.version);
  const auto spooled = spool_.stats();
  hello->set_last_acked_sequence(spooled.acked_sequence);
  hello->set_oldest_unacked_sequence(spooled.oldest_sequence);
  hello->set_accepts_assignment_parts(true);
  v1::CoordinatorMessage first;
  if (!session.stream->Write(hello_message) || !session.stream->Read(&first) || !first.has_welcome()) return false;

  session.welcomed = true;
  session.welcomed_at = now();
  const auto& welcome = first.welcome();
  spool_.continue_after(welcome.last_stored_sequence());
  spool_.rewind();
  if (welcome.has_heartbeat_interval() && welcome.heartbeat_interval().seconds() > 0) {
    session.heartbeat_interval = std::chrono::seconds(welcome.heartbeat_interval().seconds());
  }
  ++sessions_;
  state_ = State::kConnected;
  log::info("connected", "coordinator", options_.coordinator, "stored_sequence", welcome.last_stored_sequence(),
            "unacked", spool_.size());
  return true;
}

void Streamer::read_messages(Session& session) {
  v1::CoordinatorMessage message;
  bool assignment_continues = false;  // the last part of an assignment has not come yet
  while (session.stream->Read(&message)) {
    switch (message.message_case()) {
      case v1::CoordinatorMessage::kAssignment: {
        const bool more = message.assignment().more();
        // Moved out, not copied: the message is done with them. The next
        // part is read once this one is applied.
        sink_.assign(std::move(*message.mutable_assignment()->mutable_checks()), /*first=*/!assignment_continues,
                     /*last=*/!more, std::move(*message.mutable_assignment()->mutable_phases()))
            .wait();
        assignment_continues = more;
        break;
      }
      case v1::CoordinatorMessage::kAssignmentDiff:
        sink_.apply(message.assignment_diff());
        break;
      case v1::CoordinatorMessage::kAck: {
        spool_.ack(message.ack().sequence());
        session.acked = true;
        std::lock_guard lock(mu_);  // a drain waiter between its check and its wait still hears it
        wake_.notify_all();
        break;
      }
      case v1::CoordinatorMessage::kRecheck:
        sink_.recheck(message.recheck().check_id(), message.recheck().request_id());
        break;
      default:
        break;  // heartbeats, and fields added by newer coordinators
    }
  }
  session.reader_done = true;
}

void Streamer::write_messages(Session& session) {
  auto last_write = now();
  bool last_full = false;
  while (!stopping_ && !session.reader_done) {
    // After a batch that was not full, linger: one message per linger, not per result.
    if (!last_full && !sleep_until(last_write + options_.batch_linger)) break;
    auto batch = spool_.next_unsent(options_.max_batch, options_.batch_wait);
    last_full = batch.size() >= options_.max_batch;
    v1::ProbeMessage message;
    if (!batch.empty()) {
      for (auto& r : batch) *message.mutable_results()->add_results() = std::move(r);
      // Read after the batch was taken: never below its last sequence.
      message.mutable_results()->set_produced_sequence(spool_.stats().last_sequence);
    } else if (now() - last_write >= session.heartbeat_interval) {
      // The coordinator shows produced minus stored as this probe's backlog.
      message.mutable_heartbeat()->set_produced_sequence(spool_.stats().last_sequence);
    } else {
      continue;
    }
    if (!session.stream->Write(message)) break;
    last_write = now();
  }
}

}  // namespace vantage::probe
