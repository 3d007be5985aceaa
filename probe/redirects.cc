#include "probe/redirects.h"

#include <algorithm>
#include <vector>

#include "common/text.h"
#include "probe/classifier.h"
#include "probe/http_check.h"

namespace vantage::probe {

namespace {

namespace asio = boost::asio;

// Bounds of the text kept from a site (bytes, valid UTF-8 after safe_text).
constexpr size_t kUrlBytes = 2048;    // RedirectHop.url, location; LegResult.url
constexpr size_t kErrorBytes = 1024;  // LegResult.error (as http_check.cc)

// The URL a plan requests, as the user wrote it (not where a --resolve or
// --connect-to override connects).
Url requested_url(const LegPlan& plan) {
  std::string ignored;
  return parse_url(url_text(plan.url), &ignored).value_or(plan.url);
}

void add_hop(const Url& url, const v1::LegResult& leg, const std::optional<std::string>& location,
             std::vector<v1::RedirectHop>& hops) {
  auto& hop = hops.emplace_back();
  hop.set_url(safe_text(url_text(url), kUrlBytes));
  hop.set_status(leg.response().status());
  hop.set_location(safe_text(location.value_or(""), kUrlBytes));
  *hop.mutable_timings() = leg.timings();
  hop.set_connected_address(leg.connection().connected_address());
}

}  // namespace

asio::awaitable<v1::LegResult> run_following_redirects(const LegPlan& first, const Clock& clock,
                                                       const AttemptOptions& options, std::optional<LegPlan>& last,
                                                       std::string* body) {
  const uint32_t limit = first.check->follow_redirects();
  const auto deadline = clock.steady_now() + first.timeout;
  std::vector<Url> chain{requested_url(first)};
  std::vector<v1::RedirectHop> hops;
  const LegPlan* plan = &first;
  for (;;) {
    std::optional<std::string> location;
    if (body != nullptr) body->clear();  // a redirect's body is not the final response's
    auto leg = co_await run_leg(*plan, clock, body, &location);
    // Only a complete response can be a redirect (run_leg asks no Location of any other).
    const bool complete = leg.response().transport_end() == v1::TRANSPORT_END_COMPLETE;
    const auto verdict = complete ? judge_redirect(leg.response().status(), location, chain, limit) : RedirectVerdict{};
    if (verdict.action == RedirectVerdict::Action::kFollow) {
      add_hop(chain.back(), leg, location, hops);
      chain.push_back(*verdict.next);
      // Whatever is left of the leg's time (at least a moment: a deadline
      // already past ends the next request as a timeout, judged as one).
      const auto left = std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                    deadline - clock.steady_now()));
      last = redirect_plan(*plan, chain.back(), leg.response().status(), options, left);
      plan = &*last;
      continue;
    }
    if (verdict.action == RedirectVerdict::Action::kFail) {
      leg.set_failure_class(verdict.failure_class);
      leg.set_error(safe_text(verdict.error, kErrorBytes));
    }
    for (auto& hop : hops) *leg.add_redirects() = std::move(hop);
    leg.set_url(safe_text(url_text(chain.back()), kUrlBytes));
    co_return leg;
  }
}

}  // namespace vantage::probe
