#pragma once
// Check.cache_busting_param: every attempt's URL gets NAME=<fresh random
// value> in its query, so a CDN's cache never answers for the origin (Grafana
// SM's cacheBustingQueryParamName). The plan adds it once per attempt
// (plan.cc), so both legs and the JSON follow-up ask for the same resource;
// /cdn-cgi/trace and redirect locations are sent as they are. A check
// without the parameter pays nothing.

#include <string>
#include <string_view>

#include "common/url.h"

namespace vantage::probe {

// 64 random bits as 16 lower-case hex digits, from a generator of this
// thread's (seeded once from the system's entropy): no system call per
// attempt, and no two threads or probes on the same sequence.
std::string cache_busting_value();

// `target` (a path and query) with NAME=VALUE added to the query: after '?'
// when it has no query, after '&' when it has one (nothing between when the
// target already ends in '?' or '&').
std::string with_query_parameter(std::string_view target, std::string_view name, std::string_view value);

// The URL's target with `name` and a fresh value (the two above).
void add_cache_busting(Url& url, std::string_view name);

// LegResult.url: the URL a leg requested (scheme://Host header/path?query,
// as sent, so with any cache-busting parameter), valid UTF-8 and at most
// 2048 bytes.
std::string requested_url_text(const Url& url);

}  // namespace vantage::probe
