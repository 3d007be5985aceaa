#pragma once
// The edge leg of a check that follows redirects (Check.follow_redirects > 0):
// each 301, 302, 303, 307 or 308 with a usable Location is followed, as a
// plan derived from the one before (plan.h redirect_plan), until a response
// that is not one, within the leg's one deadline (Check.timeout) for the
// whole chain. Each redirect followed is a RedirectHop of the leg (with its
// own timings: the leg's are the final request's); the final response is
// judged as any response; the chain itself can fail with
// too_many_redirects, redirect_loop or bad_redirect (classifier.h
// judge_redirect). Only the edge leg follows redirects: the origin leg
// connects to one fixed address, and a redirect would lead away from it
// (diagnosis.md section 3).

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "common/clock.h"
#include "probe/plan.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// The edge leg from `first` (the attempt's edge plan), redirects followed.
// `last`, when a redirect was followed, receives the plan of the final
// request (the follow-ups after a 5xx ask where the chain ended). The leg's
// url is the final request's. `body` as for run_leg (the final response's).
// Never throws.
boost::asio::awaitable<v1::LegResult> run_following_redirects(const LegPlan& first, const Clock& clock,
                                                              const AttemptOptions& options,
                                                              std::optional<LegPlan>& last,
                                                              std::string* body = nullptr);

}  // namespace vantage::probe
