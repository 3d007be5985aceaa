#include "coordinator/incident_service.h"

#include <fmt/format.h>

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
// WatchIncidents: one reactor per call.
//
// Its state moves forward only: starting (a worker authorizes and
// subscribes), replaying (a worker reads stored events batch by batch, the
// reactor writes them), live (the reactor writes queued events). One write at
// a time; Finish once, only with no write in flight. gRPC is never called
// with mu_ held (a completion may run inline on the calling thread).
class IncidentServiceImpl::Watch final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  static Watch* start(IncidentServiceImpl& service, grpc::CallbackServerContext* context,
                      const grpc::ByteBuffer& request) {
    auto watch = std::shared_ptr<Watch>(new Watch(service, context, request));
    watch->self_ = watch;
    {
      std::lock_guard lock(service.watches_mu_);
      service.watches_[watch.get()] = watch;
    }
    service.post([watch] { watch->begin(); });
    return watch.get();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      in_flight_.reset();
      if (!ok) cancelled_ = true;  // the client is gone
    }
    pump();
  }

  void OnCancel() override {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    pump();
  }

  void OnDone() override {
    std::shared_ptr<Watch> self;
    std::shared_ptr<IncidentFeed::Subscription> subscription;
    {
      std::lock_guard lock(mu_);
      subscription = std::move(subscription_);
      self = std::move(self_);  // the last reference may be a queued task's
    }
    if (subscription) service_.feed_.unsubscribe(subscription);
    std::lock_guard lock(service_.watches_mu_);
    service_.watches_.erase(this);
  }

  // The coordinator stops: end after the write in flight.
  void end_for_shutdown() {
    {
      std::lock_guard lock(mu_);
      shutting_down_ = true;
    }
    pump();
  }

 private:
  Watch(IncidentServiceImpl& service, grpc::CallbackServerContext* context, const grpc::ByteBuffer& request)
      : service_(service), context_(context), request_parsed_(parse(request, &request_)) {}

  static bool parse(grpc::ByteBuffer bytes, v1::WatchIncidentsRequest* request) {  // a copy: parsing consumes it
    return grpc::SerializationTraits<v1::WatchIncidentsRequest>::Deserialize(&bytes, request).ok();
  }

  // On a worker: authorize, validate, subscribe, then replay or go live.
  void begin() {
    ApiCaller caller;
    auto status = service_.auth_.authorize(context_, Role::kRead, &caller);
    if (status.ok()) status = validate();
    std::shared_ptr<IncidentFeed::Subscription> subscription;
    if (status.ok()) {
      std::weak_ptr<Watch> weak = self_weak();
      // Subscribed before the stored read: see the header.
      subscription = service_.feed_.subscribe([weak] {
        if (auto watch = weak.lock()) watch->pump();
      });
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

  std::weak_ptr<Watch> self_weak() {
    std::lock_guard lock(mu_);
    return self_;
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

  // Decides the next step under mu_, takes it without.
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
    }
    if (fetch_more) {
      service_.post([self = self_weak().lock()] {
        if (self) self->fetch();
      });
    } else if (finish) {
      Finish(*finish);
    } else if (next) {
      StartWrite(&next->message);  // shared bytes: gRPC takes a reference, not a copy
    }
  }

  IncidentServiceImpl& service_;
  grpc::CallbackServerContext* const context_;
  v1::WatchIncidentsRequest request_;  // set once, by the constructor
  const bool request_parsed_;

  std::mutex mu_;
  std::shared_ptr<Watch> self_;  // until OnDone
  std::shared_ptr<IncidentFeed::Subscription> subscription_;
  bool started_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool shutting_down_ = false;
  bool writing_ = false;
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

IncidentServiceImpl::~IncidentServiceImpl() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& worker : workers_) worker.join();
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

grpc::ServerWriteReactor<grpc::ByteBuffer>* IncidentServiceImpl::WatchIncidents(grpc::CallbackServerContext* context,
                                                                           const grpc::ByteBuffer* request) {
  return Watch::start(*this, context, *request);
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
