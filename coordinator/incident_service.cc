#include "coordinator/incident_service.h"

#include <fmt/format.h>

#include <pthread.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "common/check_config.h"
#include "common/log.h"
#include "common/proto_time.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

constexpr std::string_view kPageTokenTag = "incidents.v1:";  // a token of another list or format is refused
constexpr size_t kMaxIncidentIdBytes = 128;                  // ids are "<check id>-<unix ms>"

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

grpc::Status check_filter(const std::string& check) {
  if (check.empty() || valid_check_name(check)) return grpc::Status::OK;
  return invalid("check: not a check name (1 to 63 of a-z, 0-9 and '-', not starting with '-')");
}

grpc::Status check_enum(const char* field, int value, bool (*is_valid)(int), const char* type) {
  if (is_valid(value)) return grpc::Status::OK;
  return invalid(fmt::format("{}: {} is not a {} value", field, value, type));
}

// A page position: "<first failure, microseconds since the epoch>:<incident id>".
std::string key_position(const storage::IncidentKey& key) { return fmt::format("{}:{}", key.first_failure_us, key.id); }

std::optional<storage::IncidentKey> parse_key_position(std::string_view position) {
  const auto colon = position.find(':');
  if (colon == std::string_view::npos || colon + 1 >= position.size()) return std::nullopt;
  storage::IncidentKey key;
  const auto number = position.substr(0, colon);
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), key.first_failure_us);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  key.id = std::string(position.substr(colon + 1));
  return key;
}

}  // namespace

// ---------------------------------------------------------------------------
// WatchIncidents: one Watch per call, on the service's completion queue.
//
// Its state moves forward only: starting (a worker authorizes and
// subscribes), replaying (a worker reads stored events batch by batch, the
// watch writes them), live (the watch writes queued events). One write at a
// time; Finish once, only with no write in flight. gRPC is never called with
// mu_ held. A Watch lives until its call is done (the done tag) and its last
// operation (write or finish) has completed.
class IncidentServiceImpl::Watch final : public std::enable_shared_from_this<Watch> {
 public:
  // A call not yet arrived: asks gRPC for the next WatchIncidents call.
  static void await_next(IncidentServiceImpl& service) {
    auto watch = std::shared_ptr<Watch>(new Watch(service));
    watch->self_ = watch;
    watch->context_.AsyncNotifyWhenDone(&watch->done_);
    service.RequestWatchIncidents(&watch->context_, &watch->request_bytes_, &watch->writer_, service.cq_.get(),
                                  service.cq_.get(), &watch->arrived_);
  }

  // The coordinator stops: end after the write in flight.
  void end_for_shutdown() {
    {
      std::lock_guard lock(mu_);
      shutting_down_ = true;
    }
    pump();
  }

  // Decides the next step under mu_, takes it without. On any thread; on
  // the queue's thread (woken by the feed) in the steady state.
  void pump() {
    IncidentFeed::Event next;
    std::optional<grpc::Status> finish;
    bool fetch_more = false;
    {
      std::lock_guard lock(mu_);
      if (finished_ || writing_ || !started_) return;
      if (cancelled_) {
        finish = grpc::Status::CANCELLED;
      } else if (end_) {
        finish = *end_;
      } else if (shutting_down_) {
        finish = grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            fmt::format("the coordinator is shutting down; resume with after_event_id={}", last_sent_));
      } else if (subscription_->dropped()) {
        finish = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              fmt::format("subscriber fell behind: {} events queued; resume with after_event_id={}",
                                          subscription_->queued_when_dropped(), last_sent_));
      } else if (!replay_.empty()) {
        next = std::move(replay_.front());
        replay_.pop_front();
      } else if (!replay_done_) {
        if (fetching_) return;
        fetching_ = fetch_more = true;
      } else {
        while (auto event = subscription_->pop()) {
          if (event->event_id <= last_sent_) continue;  // already sent from storage
          if (!request_.check().empty() && event->check != request_.check()) continue;
          next = std::move(event);
          break;
        }
        if (!next) return;  // woken again by the feed
      }
      if (finish) {
        finished_ = true;
      } else if (next) {
        writing_ = true;
        last_sent_ = std::max(last_sent_, next->event_id);
        in_flight_ = next;
      }
      if (finish || next) ++operations_;
    }
    if (fetch_more) {
      service_.post([self = shared_from_this()] { self->fetch(); });
    } else if (finish) {
      writer_.Finish(*finish, &finished_tag_);
    } else if (next) {
      writer_.Write(next->message, &written_);  // shared bytes: gRPC takes a reference, not a copy
    }
  }

 private:
  explicit Watch(IncidentServiceImpl& service) : service_(service), writer_(&context_) {
    arrived_.done = [this](bool ok) { on_arrived(ok); };
    written_.done = [this](bool ok) { on_written(ok); };
    finished_tag_.done = [this](bool) { on_finished(); };
    done_.done = [this](bool) { on_done(); };
  }

  // On the queue's thread: the call came (or the server shuts down).
  void on_arrived(bool ok) {
    if (!ok) {  // the server is shutting down: no call, and the done tag never comes
      service_.released_.push_back(std::move(self_));
      return;
    }
    await_next(service_);
    request_parsed_ = grpc::SerializationTraits<v1::WatchIncidentsRequest>::Deserialize(&request_bytes_, &request_).ok();
    {
      std::lock_guard lock(service_.watches_mu_);
      service_.watches_[this] = weak_from_this();
    }
    service_.post([self = shared_from_this()] { self->begin(); });
  }

  void on_written(bool ok) {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      in_flight_.reset();
      if (!ok) cancelled_ = true;  // the client is gone
      --operations_;
    }
    pump();
    release_if_over();
  }

  void on_finished() {
    {
      std::lock_guard lock(mu_);
      --operations_;
    }
    release_if_over();
  }

  // The call is over: cancelled by the client, or finished.
  void on_done() {
    {
      std::lock_guard lock(mu_);
      done_seen_ = true;
      if (context_.IsCancelled()) cancelled_ = true;
    }
    pump();  // finishes a cancelled call
    release_if_over();
  }

  // On the queue's thread, after each completion: the watch goes once its
  // call is done, it has started (a worker holds it until then) and no
  // operation of it is in flight, since each completion refers to it.
  void release_if_over() {
    std::shared_ptr<Watch> self;
    std::shared_ptr<IncidentFeed::Subscription> subscription;
    {
      std::lock_guard lock(mu_);
      if (!done_seen_ || !started_ || operations_ > 0) return;
      subscription = std::move(subscription_);
      self = std::move(self_);
    }
    if (subscription) service_.feed_.unsubscribe(subscription);
    {
      std::lock_guard lock(service_.watches_mu_);
      service_.watches_.erase(this);
    }
    service_.released_.push_back(std::move(self));
  }

  // On a worker: authorize, validate, subscribe, then replay or go live.
  void begin() {
    ApiCaller caller;
    auto status = service_.auth_.authorize(&context_, Role::kRead, &caller);
    if (status.ok()) status = validate();
    std::shared_ptr<IncidentFeed::Subscription> subscription;
    if (status.ok()) {
      std::weak_ptr<Watch> weak = weak_from_this();
      // Subscribed before the stored read: see the header. Woken on the
      // queue's thread, so that the writes and their completions stay there.
      subscription = service_.feed_.subscribe([weak, &service = service_] { service.wake(weak); });
    }
    {
      std::lock_guard lock(mu_);
      if (!status.ok()) {
        end_ = status;
      } else {
        subscription_ = std::move(subscription);
        replay_cursor_ = request_.after_event_id();
        if (request_.after_event_id() == 0 && request_.has_since()) since_ = from_timestamp(request_.since());
        replay_done_ = request_.after_event_id() == 0 && !since_;
        last_sent_ = request_.after_event_id();
      }
      started_ = true;
    }
    pump();
  }

  grpc::Status validate() const {
    if (!request_parsed_) return invalid("request: not a WatchIncidentsRequest");
    if (auto s = check_filter(request_.check()); !s.ok()) return s;
    if (request_.after_event_id() < 0) {
      return invalid(fmt::format("after_event_id: {} is negative (the event_id of the last event received, or 0)",
                                 request_.after_event_id()));
    }
    if (request_.has_since()) return time_argument(request_.since(), "since");
    return grpc::Status::OK;
  }

  // On a worker: the next batch of stored events.
  void fetch() {
    int64_t cursor;
    std::optional<std::chrono::system_clock::time_point> since;
    {
      std::lock_guard lock(mu_);
      cursor = replay_cursor_;
      since = since_;
    }
    std::vector<storage::StoredIncidentEvent> batch;
    std::optional<grpc::Status> failed;
    try {
      batch = service_.queries_.incident_events_after(cursor, since, request_.check(), service_.options_.replay_batch);
    } catch (const storage::StorageError& e) {
      log::warn("cannot read stored incident events for a watcher", "error", e.what());
      failed = api_storage_status(e, "cannot read stored incident events");
    }
    // Serialized here, not under mu_, which the writes' completions take.
    std::vector<IncidentFeed::Event> fetched;
    fetched.reserve(batch.size());
    v1::WatchIncidentsResponse response;
    for (auto& stored : batch) {
      *response.mutable_event() = std::move(stored.event);
      *response.mutable_incident() = std::move(stored.incident);
      fetched.push_back(FeedEvent::of(response));
    }
    {
      std::lock_guard lock(mu_);
      fetching_ = false;
      if (failed) {
        end_ = *failed;
      } else {
        if (!fetched.empty()) replay_cursor_ = fetched.back()->event_id;
        replay_.insert(replay_.end(), fetched.begin(), fetched.end());
        if (batch.size() < service_.options_.replay_batch) replay_done_ = true;
      }
    }
    pump();
  }

  IncidentServiceImpl& service_;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_bytes_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  Tag arrived_, written_, finished_tag_, done_;
  v1::WatchIncidentsRequest request_;  // set once, when the call arrives
  bool request_parsed_ = false;

  std::mutex mu_;
  std::shared_ptr<Watch> self_;  // until the call is done and its operations completed
  std::shared_ptr<IncidentFeed::Subscription> subscription_;
  bool started_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool shutting_down_ = false;
  bool writing_ = false;
  bool done_seen_ = false;
  int operations_ = 0;             // write or finish started and not completed
  IncidentFeed::Event in_flight_;  // the message of the write in flight
  std::optional<grpc::Status> end_;
  // Replay of stored events.
  std::optional<std::chrono::system_clock::time_point> since_;
  int64_t replay_cursor_ = 0;  // the last stored event read
  bool fetching_ = false;
  bool replay_done_ = false;
  std::deque<IncidentFeed::Event> replay_;
  int64_t last_sent_ = 0;
};

// ---------------------------------------------------------------------------

IncidentServiceImpl::IncidentServiceImpl(storage::IncidentStore& incidents, storage::IncidentQueries& queries,
                                         ApiAuthorizer& auth, IncidentFeed& feed, const Clock& clock,
                                         IncidentServiceOptions options)
    : incidents_(incidents), queries_(queries), auth_(auth), feed_(feed), clock_(clock), options_(options) {
  for (size_t i = 0; i < std::max<size_t>(1, options_.replay_workers); ++i) {
    workers_.emplace_back([this] { work(); });
  }
}

IncidentServiceImpl::~IncidentServiceImpl() { stop_watching(); }

void IncidentServiceImpl::stop_watching() {
  // Workers first: a task of theirs may start a call's operation, which must
  // not reach a queue already shut down.
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  if (!cq_) return;
  {
    std::lock_guard lock(wake_mu_);
    if (queue_closed_) return;
    queue_closed_ = true;
  }
  cq_->Shutdown();  // the server was shut down first: what is queued drains, the thread ends
  if (watcher_.joinable()) watcher_.join();
}

void IncidentServiceImpl::register_with(grpc::ServerBuilder& builder) {
  builder.RegisterService(this);
  cq_ = builder.AddCompletionQueue();
}

void IncidentServiceImpl::start_watching() {
  Watch::await_next(*this);
  watcher_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "vantage-watch");
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) {
      static_cast<Tag*>(tag)->done(ok);
      released_.clear();  // a watch is destroyed only once its handler has returned
    }
  });
}

void IncidentServiceImpl::wake(const std::weak_ptr<Watch>& watch) {
  {
    std::lock_guard lock(wake_mu_);
    if (queue_closed_) return;
    to_pump_.push_back(watch);
    if (wake_pending_) return;
    wake_pending_ = true;
    // Under wake_mu_, so that the queue is not shut down meanwhile.
    wake_alarm_.Set(cq_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &woken_);
  }
}

void IncidentServiceImpl::pump_woken() {
  std::vector<std::weak_ptr<Watch>> woken;
  {
    std::lock_guard lock(wake_mu_);
    woken.swap(to_pump_);
    wake_pending_ = false;
  }
  for (const auto& weak : woken) {
    if (auto watch = weak.lock()) watch->pump();
  }
}

void IncidentServiceImpl::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void IncidentServiceImpl::work() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      // Tasks catch what they expect; this keeps the worker alive.
      log::error("incident watch task failed", "error", e.what());
    }
  }
}

void IncidentServiceImpl::end_watches() {
  std::vector<std::shared_ptr<Watch>> watches;
  {
    std::lock_guard lock(watches_mu_);
    for (const auto& [key, weak] : watches_) {
      if (auto watch = weak.lock()) watches.push_back(std::move(watch));
    }
  }
  for (const auto& watch : watches) watch->end_for_shutdown();
}

grpc::Status IncidentServiceImpl::ListIncidents(grpc::ServerContext* context, const v1::ListIncidentsRequest* request,
                                                v1::ListIncidentsResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;

  size_t page_size = 0;
  if (auto status = coordinator::page_size(request->page_size(), options_.pages, &page_size); !status.ok()) {
    return status;
  }
  if (auto status = check_filter(request->check()); !status.ok()) return status;
  if (auto s = check_enum("state", request->state(), v1::IncidentState_IsValid, "IncidentState");
      !s.ok()) {
    return s;
  }
  if (auto s = check_enum("kind", request->kind(), v1::IncidentKind_IsValid, "IncidentKind");
      !s.ok()) {
    return s;
  }
  if (auto s = check_enum("scope", request->scope(), v1::Scope_IsValid, "Scope"); !s.ok()) return s;
  storage::IncidentFilter filter;
  filter.check = request->check();
  filter.state = request->state();
  filter.kind = request->kind();
  filter.widest_scope = request->scope();
  if (request->has_start_time()) {
    if (auto s = time_argument(request->start_time(), "start_time"); !s.ok()) return s;
    filter.opened_from = from_timestamp(request->start_time());
  }
  if (request->has_end_time()) {
    if (auto s = time_argument(request->end_time(), "end_time"); !s.ok()) return s;
    filter.opened_until = from_timestamp(request->end_time());
  }
  if (filter.opened_from && filter.opened_until && *filter.opened_until < *filter.opened_from) {
    return invalid("end_time: before start_time");
  }
  std::string position;
  if (auto status = page_position(kPageTokenTag, request->page_token(), &position); !status.ok()) return status;
  std::optional<storage::IncidentKey> after;
  if (!position.empty()) {
    after = parse_key_position(position);
    if (!after) return invalid("page_token: not a token this API gave (pass next_page_token unchanged)");
  }

  std::vector<storage::ListedIncident> listed;
  try {
    // One more than the page: whether there is a next page.
    listed = queries_.list_incidents(filter, after, page_size + 1);
  } catch (const storage::StorageError& e) {
    log::warn("cannot list incidents", "caller", caller.name, "error", e.what());
    return api_storage_status(e, "cannot list incidents");
  }
  const bool more = listed.size() > page_size;
  if (more) listed.resize(page_size);
  for (auto& item : listed) *response->add_incidents() = std::move(item.incident);
  if (more) response->set_next_page_token(encode_page_token(kPageTokenTag, key_position(listed.back().key)));
  return grpc::Status::OK;
}

grpc::Status IncidentServiceImpl::GetIncident(grpc::ServerContext* context, const v1::GetIncidentRequest* request,
                                              v1::GetIncidentResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;

  const auto& id = request->id();
  if (id.empty()) return invalid("id: required (an incident id, as ListIncidents gives)");
  if (id.size() > kMaxIncidentIdBytes) {
    return invalid(
        fmt::format("id: {} bytes, more than the {} an incident id may have", id.size(), kMaxIncidentIdBytes));
  }
  if (!is_valid_utf8(id) || id.find('\0') != std::string::npos) return invalid("id: not valid UTF-8 text");
  if (request->evidence_limit() < 0 || request->evidence_limit() > options_.max_evidence) {
    return invalid(fmt::format("evidence_limit: {} is out of range: 0 (the default, {}) to {}",
                               request->evidence_limit(), options_.default_evidence, options_.max_evidence));
  }
  const size_t evidence_limit =
      static_cast<size_t>(request->evidence_limit() == 0 ? options_.default_evidence : request->evidence_limit());

  try {
    auto incident = incidents_.get_incident(id);
    if (!incident) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, fmt::format("incident \"{}\" not found", id));
    }
    auto evidence = queries_.incident_evidence(*incident, clock_.now(), evidence_limit);
    *response->mutable_incident() = std::move(*incident);
    for (auto& result : evidence) *response->add_evidence() = std::move(result);
  } catch (const storage::StorageError& e) {
    log::warn("cannot read an incident", "caller", caller.name, "incident", id, "error", e.what());
    return api_storage_status(e, "cannot read the incident");
  }
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
