#include "coordinator/alertmanager_pusher.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.h"
#include "common/option_error.h"
#include "common/url.h"

namespace vantage::coordinator {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Pending snapshots past this are coalesced anyway (by incident id) when
// taken; the bound only caps memory if the loop thread were stuck.
constexpr size_t kMaxPending = 100'000;

}  // namespace

AlertmanagerPusher::AlertmanagerPusher(AlertmanagerOptions options, CoordinatorMetrics& metrics, Timers& timers)
    : options_(std::move(options)),
      metrics_(metrics),
      timers_(timers),
      clock_(timers.clock()),
      alerts_(options_.resend_interval) {
  for (const auto& url : options_.urls) {
    std::string error;
    auto parsed = parse_url(url, &error);
    // Named as CoordinatorOptions names it (the pusher's URLs are its alertmanager_urls).
    if (!parsed) throw OptionError("alertmanager_urls", fmt::format("Alertmanager URL {}: {}", url, error));
    if (parsed->scheme != "http") {
      throw OptionError("alertmanager_urls", fmt::format("Alertmanager URL {}: only http:// is supported", url));
    }
    std::string path = parsed->target;
    if (path.find('?') != std::string::npos) {
      throw OptionError("alertmanager_urls", fmt::format("Alertmanager URL {}: no query string expected", url));
    }
    while (!path.empty() && path.back() == '/') path.pop_back();
    targets_.push_back({url, parsed->host, std::to_string(parsed->port), path + "/api/v2/alerts"});
  }
}

AlertmanagerPusher::~AlertmanagerPusher() { stop(); }

void AlertmanagerPusher::start() {
  if (targets_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void AlertmanagerPusher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AlertmanagerPusher::update(const std::vector<v1::Incident>& incidents) {
  if (targets_.empty() || incidents.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (pending_.size() + incidents.size() > kMaxPending) {
      metrics_.alertmanager_dropped.Increment(static_cast<double>(incidents.size()));
      return;
    }
    pending_.insert(pending_.end(), incidents.begin(), incidents.end());
  }
  cv_.notify_all();
}

void AlertmanagerPusher::loop() {
  auto next_post = clock_.steady_now();
  std::chrono::steady_clock::time_point last_error_log;
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait_until(lock, next_post, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    std::vector<v1::Incident> changed;
    changed.swap(pending_);
    lock.unlock();

    const auto now = clock_.now();
    for (const auto& incident : changed) alerts_.update(incident, now);
    alerts_.expire(now);
    bool all_ok = true;
    if (alerts_.size() > 0) {
      const std::string body = alerts_.payload(now).dump();
      for (const auto& target : targets_) {
        std::string error;
        const bool ok = post(target, body, &error);
        metrics_.alertmanager_posts.Add({{"result", ok ? "ok" : "error"}}).Increment();
        if (!ok) {
          all_ok = false;
          // One line per 10 s at most, however many posts fail.
          if (clock_.steady_now() - last_error_log > std::chrono::seconds(10)) {
            last_error_log = clock_.steady_now();
            log::warn("cannot push incidents to Alertmanager; retrying", "url", target.url, "error", error);
          }
        }
      }
    }
    metrics_.alertmanager_alerts.Set(static_cast<double>(alerts_.size()));
    next_post = clock_.steady_now() + (all_ok ? options_.resend_interval : options_.retry_interval);
    lock.lock();
  }
}

bool AlertmanagerPusher::post(const Target& target, const std::string& body, std::string* error) const {
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    boost::asio::ip::tcp::resolver resolver(io);
    stream.expires_after(options_.timeout);
    stream.connect(resolver.resolve(target.host, target.port));
    http::request<http::string_body> request{http::verb::post, target.path, 11};
    request.set(http::field::host, target.host + ":" + target.port);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::user_agent, "vantage-coordinator");
    request.body() = body;
    request.prepare_payload();
    stream.expires_after(options_.timeout);
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);  // Alertmanager answers briefly; never hold a large reply
    http::read(stream, buffer, parser);
    beast::error_code ignored;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    const auto status = parser.get().result_int();
    if (status / 100 != 2) {
      *error = fmt::format("HTTP {}: {}", status, parser.get().body().substr(0, 200));
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
}

}  // namespace vantage::coordinator
