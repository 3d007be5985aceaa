#include "probe/report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/enum_label.h"
#include "common/failure_class.h"
#include "common/text.h"

namespace vantage::probe {

namespace {

using nlohmann::json;

// Every string shown comes through here: a result's text is already safe, but
// the URL and origin are the operator's bytes, and nlohmann::json throws on
// invalid UTF-8 (a terminal, for its part, obeys control characters).
constexpr size_t kShownBytes = 4096;
std::string shown(std::string_view text) { return safe_text(text, kShownBytes); }
nlohmann::json shown_or_null(std::string_view text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(shown(text));
}

double ms(uint64_t micros) { return static_cast<double>(micros) / 1000.0; }

json timings_json(const v1::Timings& t) {
  return {{"dns_ms", ms(t.dns_us())},
          {"connect_ms", ms(t.connect_us())},
          {"tls_ms", ms(t.tls_us())},
          {"request_written_ms", ms(t.request_written_us())},
          {"first_byte_ms", ms(t.first_byte_us())},
          {"total_ms", ms(t.total_us())},
          {"time_to_error_ms", t.time_to_error_us() ? json(ms(t.time_to_error_us())) : json(nullptr)}};
}

bool is_header(const v1::Assertion& a) { return a.target() == v1::Assertion::TARGET_HEADER; }

json assertion_failure_json(const v1::AssertionFailure& f) {
  const auto& a = f.assertion();
  return {{"index", f.index()},
          {"target", is_header(a) ? "header" : "body"},
          {"header", is_header(a) ? shown_or_null(a.header_name()) : json(nullptr)},
          {"pattern", shown(a.pattern())},
          {"negate", a.negate()},
          {"reason", shown(f.reason())}};
}

// The assertion as diagnose's flag that makes it: --assert-header-not "Server=nginx".
std::string assertion_flag(const v1::Assertion& a) {
  const auto value = is_header(a) ? a.header_name() + "=" + a.pattern() : a.pattern();
  return fmt::format("--assert-{}{} \"{}\"", is_header(a) ? "header" : "body", a.negate() ? "-not" : "",
                     shown(value));
}

json leg_json(const v1::LegResult& leg) {
  const auto& r = leg.response();
  const auto& e = leg.edge();
  json out;
  out["class"] = failure_class_name(leg.failure_class());
  out["status"] = r.status() ? json(r.status()) : json(nullptr);
  out["edge_code"] = e.edge_code() && (e.edge_generated() || e.edge_code() >= 520) ? json(e.edge_code()) : json(nullptr);
  out["edge_error_code"] = e.edge_error_code() ? json(e.edge_error_code()) : json(nullptr);
  out["edge_generated"] = e.edge_generated();
  out["rule"] = enum_label(v1::EdgeRule_Name(e.rule()), "EDGE_RULE_");
  out["ray_id"] = shown_or_null(e.ray_id());
  out["colo"] = shown_or_null(e.colo());
  // From the body, or a JSON follow-up; the trace's from a trace follow-up.
  out["error_name"] = shown_or_null(e.error_name());
  out["error_category"] = shown_or_null(e.error_category());
  out["trace_colo"] = shown_or_null(e.trace_colo());
  out["trace_loc"] = shown_or_null(e.trace_loc());
  out["retry_after_seconds"] = r.retry_after_seconds() ? json(r.retry_after_seconds()) : json(nullptr);
  out["via_cloudflare"] = e.via_cloudflare();
  out["header_bytes"] = r.header_bytes();
  out["header_count"] = r.header_count();
  out["largest_header_bytes"] = r.largest_header_bytes();
  out["body_bytes"] = r.body_bytes();
  out["transport_end"] = enum_label(v1::TransportEnd_Name(r.transport_end()), "TRANSPORT_END_");
  out["parse_error"] = shown_or_null(r.parse_error());
  out["connected_address"] = shown(leg.connection().connected_address());
  out["cert_problem"] = leg.connection().cert_problem()
                            ? json(enum_label(v1::TlsCertProblem_Name(leg.connection().cert_problem()),
                                              "TLS_CERT_PROBLEM_"))
                            : json(nullptr);
  out["verification_skipped"] = leg.connection().verification_skipped();
  out["error"] = shown_or_null(leg.error());
  out["timings"] = timings_json(leg.timings());
  out["url"] = shown_or_null(leg.url());  // the final request's: after redirects, with any cache-busting parameter
  json hops = json::array();
  for (const auto& hop : leg.redirects()) {
    hops.push_back({{"url", shown(hop.url())},
                    {"status", hop.status()},
                    {"location", shown(hop.location())},
                    {"connected_address", shown(hop.connected_address())},
                    {"timings", timings_json(hop.timings())}});
  }
  out["redirects"] = hops;
  out["assertion_failure"] =
      leg.has_assertion_failure() ? assertion_failure_json(leg.assertion_failure()) : json(nullptr);
  return out;
}

std::string leg_text(const char* name, const std::string& where, const v1::LegResult& leg) {
  const auto& r = leg.response();
  const auto& e = leg.edge();
  const auto& t = leg.timings();
  std::string out = fmt::format("{:<7} {}\n        {}", name, shown(where), failure_class_name(leg.failure_class()));
  if (r.status()) out += fmt::format(", status {}", r.status());
  if (e.edge_code() && e.edge_generated()) out += fmt::format(" (generated by the edge)");
  if (!e.colo().empty()) out += fmt::format(", colo {}", shown(e.colo()));
  if (!e.ray_id().empty()) out += fmt::format(", ray {}", shown(e.ray_id()));
  if (!e.error_name().empty()) out += fmt::format(", {}", shown(e.error_name()));
  if (!e.trace_colo().empty()) out += fmt::format(", trace colo {} ({})", shown(e.trace_colo()), shown(e.trace_loc()));
  // A plain 5xx's error is "status NNN": already on the line above; an
  // assertion's is said below with the flag that made the assertion.
  if (leg.has_assertion_failure()) {
    const auto& f = leg.assertion_failure();
    out += fmt::format("\n        assertions[{}] failed ({}): {}", f.index(), assertion_flag(f.assertion()),
                       shown(f.reason()));
  } else if (!leg.error().empty() && leg.error() != fmt::format("status {}", r.status())) {
    out += fmt::format("\n        {}", shown(leg.error()));
  }
  if (leg.connection().verification_skipped()) {
    const auto problem = leg.connection().cert_problem();
    out += problem ? fmt::format("\n        certificate not required to verify (--insecure): {}",
                                 enum_label(v1::TlsCertProblem_Name(problem), "TLS_CERT_PROBLEM_"))
                   : std::string("\n        certificate not required to verify (--insecure); it verifies anyway");
  }
  // Each redirect followed, in order; then where the chain ended.
  for (int i = 0; i < leg.redirects_size(); ++i) {
    const auto& hop = leg.redirects(i);
    out += fmt::format("\n        redirect {}: {} {}\n            Location: {} ({}, {:.1f} ms)", i + 1, hop.status(),
                       shown(hop.url()), shown(hop.location()),
                       hop.connected_address().empty() ? "no address" : shown(hop.connected_address()),
                       ms(hop.timings().total_us()));
  }
  if (leg.redirects_size() > 0 && leg.url() != leg.redirects(0).url()) {
    out += fmt::format("\n        final URL {}", shown(leg.url()));
  }
  out += fmt::format("\n        dns {:.1f} ms, connect {:.1f} ms, first byte {:.1f} ms, total {:.1f} ms", ms(t.dns_us()),
                     ms(t.connect_us()), ms(t.first_byte_us()), ms(t.total_us()));
  if (r.header_bytes()) out += fmt::format("; headers {} bytes in {} fields", r.header_bytes(), r.header_count());
  return out + "\n";
}

// The edge reuses idle origin connections for about this long (diagnosis.md
// section 5); an origin closing them sooner races it.
constexpr double kEdgeIdleReuseSeconds = 900;

double seconds(const google::protobuf::Duration& d) { return static_cast<double>(d.seconds()) + d.nanos() / 1e9; }

json keep_alive_json(const v1::KeepAliveMeasurement& k) {
  return {{"idle_close_seconds", seconds(k.idle_close_after())},
          {"requests_per_connection", k.requests_per_connection()},
          {"error", shown_or_null(k.error())}};
}

std::string keep_alive_text(const v1::KeepAliveMeasurement& k) {
  if (!k.error().empty()) return fmt::format("\nkeep-alive  not measured: {}\n", shown(k.error()));
  const double idle = seconds(k.idle_close_after());
  std::string out = idle > 0 ? fmt::format("\nkeep-alive  idle connections closed after {:.1f} s", idle)
                             : std::string("\nkeep-alive  idle connections not closed within the window");
  out += k.requests_per_connection() ? fmt::format("; {} requests per connection\n", k.requests_per_connection())
                                     : std::string("; no limit on requests per connection seen\n");
  if (idle > 0 && idle < kEdgeIdleReuseSeconds) {
    out += fmt::format("            shorter than the edge's reuse of idle connections (about {:.0f} s): expect rare "
                       "520s; raise the keep-alive timeout\n",
                       kEdgeIdleReuseSeconds);
  }
  return out;
}

}  // namespace

std::string report_json(const std::string& url, const std::string& origin, const v1::CheckResult& result) {
  json out;
  out["url"] = shown(url);
  out["edge"] = leg_json(result.edge());
  out["origin"] = result.has_origin() ? leg_json(result.origin()) : json(nullptr);
  if (result.has_origin()) out["origin"]["address"] = shown(origin);
  const auto& d = result.diagnosis();
  json evidence = json::array();
  for (const auto& line : d.evidence()) evidence.push_back(shown(line));
  out["diagnosis"] = {{"cause_id", shown_or_null(d.cause_id())},
                      {"cause", shown_or_null(d.cause())},
                      {"advice", shown_or_null(d.advice())},
                      {"evidence", evidence}};
  out["keep_alive"] = result.has_keep_alive() ? keep_alive_json(result.keep_alive()) : json(nullptr);
  return out.dump(2) + "\n";
}

std::string report_text(const std::string& url, const std::string& origin, const v1::CheckResult& result) {
  std::string out = leg_text("edge", url, result.edge());
  if (result.has_origin()) out += leg_text("origin", origin, result.origin());
  const auto& d = result.diagnosis();
  if (d.cause().empty()) {
    out += "\nno problem found\n";
  } else {
    out += fmt::format("\ncause   {}\nadvice  {}\n", shown(d.cause()), shown(d.advice()));
  }
  // What the edge follow-ups did; the other evidence lines repeat the legs above.
  for (const auto& line : d.evidence()) {
    if (line.find("follow-up") != std::string::npos) out += fmt::format("        {}\n", shown(line));
  }
  if (result.has_keep_alive()) out += keep_alive_text(result.keep_alive());
  return out;
}

}  // namespace vantage::probe
