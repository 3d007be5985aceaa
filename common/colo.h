#pragma once
// Cloudflare data centre (colo) codes. A colo comes from what a site sends
// (cf-ray, /cdn-cgi/trace), and becomes a metric label and evidence, so only
// the known codes (data/cloudflare/colos.txt, built in) are kept as they are.

#include <string>
#include <string_view>

namespace vantage {

// The code when it names a known colo; "" for ""; "other" for anything else.
std::string colo_or_other(std::string_view code);
bool is_known_colo(std::string_view code);

}  // namespace vantage
